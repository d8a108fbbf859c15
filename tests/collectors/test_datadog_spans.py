"""Datadog APM span events into span columns: two real pages, then bad input derived from them.

The fixtures are real recorded Datadog API responses (vcrpy cassettes of
``POST /api/v2/spans/events/search`` and ``GET /api/v2/spans/events`` against
api.datadoghq.com), from DataDog/datadog-api-client-python, Apache-2.0; they are read in place
from ``tests/fixtures/datadog`` (provenance in ``PROVENANCE.md`` there).
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import yaml

from collectors.datadog_spans import page_cursor, spans_from_events
from collectors.otlp.codec import UNKNOWN_SERVICE
from mapper.core.errors import SourceError
from mapper.core.spans import KIND_CLIENT, KIND_CONSUMER, KIND_INTERNAL, KIND_PRODUCER, KIND_SERVER, KIND_UNSPECIFIED
from tests.servers import FIXTURES

CASSETTES = FIXTURES / "datadog" / "cassettes" / "v2"
SEARCH = "test_search_spans_returns_ok_response.yaml"
LIST = "test_get_a_list_of_spans_returns_ok_response.yaml"
WHERE = "https://api.datadoghq.com/api/v2/spans/events/search page 1"


def recorded_body(name: str) -> dict[str, Any]:
    """The JSON body of the cassette's one recorded response."""
    cassette = yaml.safe_load((CASSETTES / name).read_text())
    body: dict[str, Any] = json.loads(cassette["interactions"][0]["response"]["body"]["string"])
    return body


def ns(text: str) -> int:
    """An ISO 8601 UTC time with at most microseconds, as ns since the epoch (exact, no floats)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


@pytest.fixture(scope="module")
def search() -> dict[str, Any]:
    return recorded_body(SEARCH)


@pytest.fixture
def event(search: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy of the first real span event (python ``GET /``), to break one field of."""
    return copy.deepcopy(search["data"][0])


def convert(*events: dict[str, Any]) -> tuple[Any, Counter[str]]:
    return spans_from_events(list(events), WHERE)


# --------------------------------------------------------------------------- real pages


def test_search_page_first_span_exact(search: dict[str, Any]) -> None:
    batch, set_aside = spans_from_events(search["data"], WHERE)
    assert len(batch) == 25 and set_aside == Counter()
    start = ns("2023-06-29T09:50:52.472Z")
    assert start == 1_688_032_252_472_000_000
    row = {name: column[0] for name, column in batch.columns().items()}
    assert row == {
        "trace_hi": 0, "trace_lo": 3740652481065462946, "span_id": 9270756141854228302, "parent_id": 0,
        "link_trace_hi": 0, "link_trace_lo": 0, "link_span_id": 0,
        "start_ns": start, "end_ns": start + 3402932, "kind": KIND_SERVER, "status": 0,
        "service": "python-sample-app-spartancrimson", "name": "GET /",
        "destination": None, "messaging_system": None, "peer_service": None, "db_system": None,
        "sampling_th": -1, "tail_policy": None, "instance": None, "exceptions": -1,
    }
    assert batch.trace_lo.dtype == np.uint64 and batch.start_ns.dtype == np.int64


def test_search_page_columns(search: dict[str, Any]) -> None:
    batch, _ = spans_from_events(search["data"], WHERE)
    assert (batch.trace_hi == 0).all() and (batch.link_span_id == 0).all()
    assert (batch.kind == KIND_SERVER).all() and (batch.status == 0).all()
    assert sorted(set(batch.service)) == [
        "go-sample-app-spartancrimson", "java-sample-app-spartancrimson", "nodejs-sample-app-macaroniandcheese",
        "nodejs-sample-app-spartancrimson", "python-sample-app-spartancrimson",
    ]
    assert set(batch.name) == {"GET /", "GET", "Controller.index"}
    # The exact duration is used; the millisecond end_timestamp agrees with it to within 1 ms.
    recorded_end = np.array([ns(e["attributes"]["end_timestamp"]) for e in search["data"]])
    assert (np.abs(batch.end_ns - recorded_end) < 1_000_000).all()
    assert batch.trace_lo.max() == 17478897124928621820  # past 2**63: needs uint64


def test_child_span_parent_is_the_server_span_of_its_trace(search: dict[str, Any]) -> None:
    batch, _ = spans_from_events(search["data"], WHERE)
    child = np.flatnonzero((batch.trace_lo == 6252933144469107600) & (batch.name == "Controller.index"))
    parent = np.flatnonzero((batch.trace_lo == 6252933144469107600) & (batch.name == "GET /"))
    assert child.size == 1 and parent.size == 1
    c, p = child[0], parent[0]
    assert batch.service[c] == batch.service[p] == "java-sample-app-spartancrimson"
    assert batch.span_id[c] == 2283986807028514392
    assert batch.parent_id[c] == 5407116910258794847 == batch.span_id[p]
    assert batch.parent_id[p] == 0
    assert batch.start_ns[c] == ns("2023-06-29T09:50:53.833Z") and batch.end_ns[c] - batch.start_ns[c] == 1027645
    # Every Controller.index span on the page is the child of the java GET / span of its trace.
    children = np.flatnonzero(batch.name == "Controller.index")
    assert children.size == 4
    for i in children:
        same_trace = np.flatnonzero((batch.trace_lo == batch.trace_lo[i]) & (batch.name == "GET /"))
        assert batch.span_id[same_trace].tolist() == [batch.parent_id[i]]


def test_two_decimal_timestamp_is_hundreds_of_milliseconds(search: dict[str, Any]) -> None:
    assert search["data"][13]["attributes"]["start_timestamp"] == "2023-06-29T09:51:03.54Z"
    batch, _ = spans_from_events(search["data"], WHERE)
    assert batch.start_ns[13] == ns("2023-06-29T09:51:03.540Z") == 1_688_032_263_540_000_000
    assert batch.end_ns[13] == batch.start_ns[13] + 279541


def test_page_cursor_is_the_recorded_after(search: dict[str, Any]) -> None:
    after = search["meta"]["page"]["after"]
    assert page_cursor(search) == after
    assert after.startswith("eyJhZnRlciI6") and after in search["links"]["next"].replace("%3D", "=")
    assert page_cursor({"meta": {"elapsed": 3, "status": "done"}}) is None
    assert page_cursor({"meta": {"page": {}}}) is None
    assert page_cursor({}) is None


def test_list_page() -> None:
    body = recorded_body(LIST)
    batch, set_aside = spans_from_events(body["data"], "list")
    assert len(batch) == 10 and set_aside == Counter()
    assert set(batch.name) == {"Controller.index"} and set(batch.service) == {"java-sample-app-spartancrimson"}
    assert (batch.parent_id != 0).all() and (batch.kind == KIND_SERVER).all()
    assert batch.trace_lo[0] == 7817822160947910556 and batch.span_id[0] == 3601830290946202752
    assert batch.parent_id[0] == 449167507436699662
    assert batch.start_ns[0] == ns("2023-06-29T10:48:56.164Z") and batch.end_ns[0] == batch.start_ns[0] + 514696
    assert batch.start_ns[1] == ns("2023-06-29T10:48:51.120Z")  # recorded as "...:51.12Z"
    assert page_cursor(body) == body["meta"]["page"]["after"]


# --------------------------------------------------------------------------- bad spans are set aside


def test_missing_trace_id_is_set_aside(event: dict[str, Any]) -> None:
    good = copy.deepcopy(event)
    del event["attributes"]["trace_id"]
    batch, set_aside = convert(event, good)
    assert set_aside == Counter({"no trace_id": 1})
    assert batch.span_id.tolist() == [9270756141854228302]


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("span_id", "abc", "span_id not a 64-bit number"),
    ("span_id", "-5", "span_id not a 64-bit number"),
    ("span_id", "0x1f", "span_id not a 64-bit number"),
    ("span_id", str(2**64), "span_id not a 64-bit number"),
    ("span_id", "0", "span_id is 0"),
    ("span_id", None, "no span_id"),
    ("trace_id", "1" * 5000, "trace_id not a 64-bit number"),
    ("trace_id", 1.5, "trace_id not a 64-bit number"),
    ("parent_id", "root", "parent_id not a 64-bit number"),
])
def test_bad_id_is_set_aside(event: dict[str, Any], field: str, value: Any, reason: str) -> None:
    event["attributes"][field] = value
    batch, set_aside = convert(event)
    assert len(batch) == 0 and set_aside == Counter({reason: 1})


def test_largest_ids_and_json_integers_are_kept(event: dict[str, Any]) -> None:
    event["attributes"]["span_id"] = str(2**64 - 1)
    event["attributes"]["trace_id"] = 12345
    event["attributes"]["parent_id"] = 7
    batch, set_aside = convert(event)
    assert set_aside == Counter()
    assert batch.span_id.tolist() == [2**64 - 1] and batch.trace_lo.tolist() == [12345]
    assert batch.parent_id.tolist() == [7]


@pytest.mark.parametrize(("value", "reason"), [
    ("yesterday", "bad start_timestamp"),
    ("2023-06-29T09:50:52.472", "bad start_timestamp"),  # no zone: not known to be UTC
    ("2023-06-29T09:50:52.472+02:00", "bad start_timestamp"),
    ("2023-06-29T25:50:52Z", "bad start_timestamp"),
    ("2023-06-29Z", "bad start_timestamp"),
    ("9999-06-29T09:50:52.472Z", "bad start_timestamp"),  # past 2262: would wrap in int64 ns
    (1688032252472, "bad start_timestamp"),
    ("", "no start_timestamp"),
    (None, "no start_timestamp"),
])
def test_bad_start_timestamp_is_set_aside(event: dict[str, Any], value: Any, reason: str) -> None:
    good = copy.deepcopy(event)
    event["attributes"]["start_timestamp"] = value
    batch, set_aside = convert(good, event, good)
    assert set_aside == Counter({reason: 1})
    assert batch.start_ns.tolist() == [ns("2023-06-29T09:50:52.472Z")] * 2


def test_utc_offset_and_nanoseconds_are_read(event: dict[str, Any]) -> None:
    event["attributes"]["start_timestamp"] = "2023-06-29T09:50:52.123456789+00:00"
    batch, set_aside = convert(event)
    assert set_aside == Counter() and batch.start_ns.tolist() == [1_688_032_252_123_456_789]


def test_negative_duration_is_set_aside(event: dict[str, Any]) -> None:
    event["attributes"]["custom"]["duration"] = -1
    batch, set_aside = convert(event)
    assert len(batch) == 0 and set_aside == Counter({"negative duration": 1})


@pytest.mark.parametrize(("value", "reason"), [
    ("fast", "duration not a number"),
    (True, "duration not a number"),
    (2**63, "duration too large"),
    (2**63 - 1, "duration too large"),  # start + duration does not fit int64 ns
])
def test_unusable_duration_is_set_aside(event: dict[str, Any], value: Any, reason: str) -> None:
    event["attributes"]["custom"]["duration"] = value
    batch, set_aside = convert(event)
    assert len(batch) == 0 and set_aside == Counter({reason: 1})


def test_without_duration_the_end_timestamp_is_used(event: dict[str, Any]) -> None:
    del event["attributes"]["custom"]["duration"]
    batch, set_aside = convert(event)
    assert set_aside == Counter()
    assert batch.end_ns.tolist() == [ns("2023-06-29T09:50:52.475Z")]
    event["attributes"]["end_timestamp"] = "2023-06-29T09:50:52.471Z"
    assert convert(event)[1] == Counter({"end_timestamp before start_timestamp": 1})
    event["attributes"]["end_timestamp"] = "soon"
    assert convert(event)[1] == Counter({"bad end_timestamp": 1})
    del event["attributes"]["end_timestamp"]
    assert convert(event)[1] == Counter({"no end_timestamp": 1})


def test_reasons_are_counted_per_reason(event: dict[str, Any]) -> None:
    no_trace, bad_time, negative = (copy.deepcopy(event) for _ in range(3))
    del no_trace["attributes"]["trace_id"]
    bad_time["attributes"]["start_timestamp"] = "never"
    negative["attributes"]["custom"]["duration"] = -3
    batch, set_aside = convert(no_trace, event, bad_time, negative, bad_time, no_trace)
    assert len(batch) == 1
    assert set_aside == Counter({"no trace_id": 2, "bad start_timestamp": 2, "negative duration": 1})


# --------------------------------------------------------------------------- attributes, kind, status, name


def test_messaging_attributes_nested_and_dotted(event: dict[str, Any]) -> None:
    nested, dotted = copy.deepcopy(event), copy.deepcopy(event)
    nested["attributes"]["custom"].update({
        "messaging": {"destination": {"name": "orders"}, "system": "kafka"},
        "db": {"system": "postgresql"},
    })
    dotted["attributes"]["custom"].update({
        "messaging.destination.name": "payments", "messaging.system": "rabbitmq", "peer.service": "ledger",
    })
    batch, set_aside = convert(nested, dotted, event)
    assert set_aside == Counter()
    assert batch.destination.tolist() == ["orders", "payments", None]
    assert batch.messaging_system.tolist() == ["kafka", "rabbitmq", None]
    assert batch.peer_service.tolist() == [None, "ledger", None]
    assert batch.db_system.tolist() == ["postgresql", None, None]


def test_real_peer_object_without_service_is_no_peer_service(search: dict[str, Any]) -> None:
    custom = search["data"][3]["attributes"]["custom"]
    assert custom["peer"] == {"ipv4": "127.0.0.1", "port": 34580}
    batch, _ = spans_from_events(search["data"], WHERE)
    assert batch.peer_service[3] is None


@pytest.mark.parametrize(("change", "status"), [
    ({"status": "error"}, 2),
    ({"status": "ok"}, 0),
    ({"custom.error": {"message": "boom", "type": "ValueError"}}, 2),
    ({"custom.error": 1}, 2),
    ({"custom.error": "true"}, 2),
    ({"custom.error": 0}, 0),
    ({"custom.error": "0"}, 0),
    ({}, 0),
])
def test_status(event: dict[str, Any], change: dict[str, Any], status: int) -> None:
    for key, value in change.items():
        if key.startswith("custom."):
            event["attributes"]["custom"][key.removeprefix("custom.")] = value
        else:
            event["attributes"][key] = value
    batch, _ = convert(event)
    assert batch.status.tolist() == [status]


@pytest.mark.parametrize(("kind", "expected"), [
    ("server", KIND_SERVER), ("CLIENT", KIND_CLIENT), ("Producer", KIND_PRODUCER),
    ("consumer", KIND_CONSUMER), ("internal", KIND_INTERNAL), ("rpc", KIND_UNSPECIFIED), (None, KIND_UNSPECIFIED),
])
def test_kind(event: dict[str, Any], kind: str | None, expected: int) -> None:
    event["attributes"]["custom"]["span"] = {"kind": kind}
    batch, _ = convert(event)
    assert batch.kind.tolist() == [expected]


def test_flat_span_kind_and_no_custom(event: dict[str, Any]) -> None:
    flat, bare = copy.deepcopy(event), copy.deepcopy(event)
    del flat["attributes"]["custom"]["span"]
    flat["attributes"]["custom"]["span.kind"] = "client"
    del bare["attributes"]["custom"]
    batch, set_aside = convert(flat, bare)
    assert set_aside == Counter()
    assert batch.kind.tolist() == [KIND_CLIENT, KIND_UNSPECIFIED]
    assert batch.end_ns[1] == ns("2023-06-29T09:50:52.475Z")  # no custom.duration: end_timestamp


def test_name_and_service_fallbacks(event: dict[str, Any]) -> None:
    by_operation, by_top_level, unnamed = (copy.deepcopy(event) for _ in range(3))
    del by_operation["attributes"]["resource_name"]
    by_operation["attributes"]["custom"]["operation_name"] = "flask.request"
    del by_top_level["attributes"]["resource_name"]
    by_top_level["attributes"]["operation_name"] = "servlet.request"
    del unnamed["attributes"]["resource_name"]
    del unnamed["attributes"]["service"]
    batch, set_aside = convert(by_operation, by_top_level, unnamed)
    assert set_aside == Counter()
    assert batch.name.tolist() == ["flask.request", "servlet.request", ""]
    assert batch.service.tolist() == [event["attributes"]["service"]] * 2 + [UNKNOWN_SERVICE]


# --------------------------------------------------------------------------- a page of the wrong shape


@pytest.mark.parametrize("data", [{"data": []}, "spans", None])
def test_data_not_a_list_raises_source_error(data: Any) -> None:
    with pytest.raises(SourceError) as info:
        spans_from_events(data, WHERE)
    message = str(info.value)
    assert message.startswith(f"{WHERE}: data: expected a list") and "\n" not in message


@pytest.mark.parametrize("item", [["spans"], {"id": "x", "type": "spans"}, {"attributes": "none"}, 7])
def test_item_not_a_span_event_raises_source_error(event: dict[str, Any], item: Any) -> None:
    with pytest.raises(SourceError, match=r"^https://\S+ page 1: data\[1\]: not a span event$"):
        spans_from_events([event, item], WHERE)


def test_empty_page() -> None:
    batch, set_aside = spans_from_events([], WHERE)
    assert len(batch) == 0 and set_aside == Counter()
    assert batch.trace_lo.dtype == np.uint64
