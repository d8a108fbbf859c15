"""OTLP decoding: real fixtures from upstream projects, a protobuf round trip, file ingest, bad input.

The fixtures are in ``tests/fixtures/otlp`` (provenance and licence in ``tests/fixtures``).
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2

import collectors.otlp.codec as codec
from collectors.otlp.codec import (
    MAX_VALUE_CHARS,
    REJECT_REASONS,
    UNKNOWN_SERVICE,
    WARNING_REASONS,
    Decoded,
    PayloadError,
)
from collectors.otlp.files import read_trace_files
from collectors.otlp.json import decode_json
from collectors.otlp.protobuf import decode_protobuf
from collectors.otlp.schema import LEAN_SCHEMA
from mapper.core.errors import LatmapError
from mapper.core.spans import KIND_CLIENT, KIND_CONSUMER, KIND_PRODUCER, KIND_SERVER, SpanBatch, dedupe
from tests.otlp_helpers import FIXTURES, T0, add_span, one_scope, request_json, rows, span_json

SERVICE_GRAPH = FIXTURES / "collector-contrib-servicegraph"


def fixture(rel: str) -> Decoded:
    return decode_json((FIXTURES / rel).read_bytes())


def load(rel: str) -> Any:
    return json.loads((FIXTURES / rel).read_text())




def h(text: str) -> int:
    return int(text, 16)










# --------------------------------------------------------------------------- real fixtures


def test_official_example_upper_case_hex_ids_and_times() -> None:
    decoded = fixture("trace.json")
    assert decoded.rejected == {} and decoded.warnings == {}
    assert rows(decoded.batch) == [{
        "trace_hi": 0x5B8EFFF798038103, "trace_lo": 0xD269B633813FC60C,
        "span_id": 0xEEE19B7EC3C1B174, "parent_id": 0xEEE19B7EC3C1B173,
        "link_trace_hi": 0, "link_trace_lo": 0, "link_span_id": 0,
        "start_ns": 1544712660000000000, "end_ns": 1544712661000000000,
        "kind": KIND_SERVER, "status": 0, "service": "my.service", "name": "I'm a server span",
        "destination": None, "messaging_system": None, "peer_service": None, "db_system": None,
        "sampling_th": -1, "tail_policy": None, "instance": None, "exceptions": 0,
    }]


def test_service_graph_client_and_server_are_parent_and_child() -> None:
    decoded = decode_json((SERVICE_GRAPH / "messaging-system-trace.json").read_bytes())
    client, server = rows(decoded.batch)
    assert (client["service"], client["kind"], client["name"]) == ("foo-server", KIND_CLIENT, "server")
    assert (server["service"], server["kind"], server["name"]) == ("bar-requester", KIND_SERVER, "HTTP GET /ready")
    assert client["parent_id"] == 0  # "parentSpanId": "" is no parent
    assert server["parent_id"] == client["span_id"] == h("a000000000000000")
    assert server["span_id"] == h("a000000000000001")
    same_trace = (h("a000000000000000"), 0)
    assert (client["trace_hi"], client["trace_lo"]) == (server["trace_hi"], server["trace_lo"]) == same_trace
    assert server["end_ns"] - server["start_ns"] == 1000


def test_service_graph_messaging_and_db_attributes() -> None:
    client, server = rows(decode_json((SERVICE_GRAPH / "extra-dimensions-queue-db-trace.json").read_bytes()).batch)
    assert (client["messaging_system"], client["db_system"]) == ("kafka", None)
    assert (server["messaging_system"], server["db_system"]) == (None, "postgresql")
    assert server["parent_id"] == client["span_id"]


def test_service_graph_virtual_node_peer_service() -> None:
    client, server = rows(decode_json((SERVICE_GRAPH / "virtual-node-label-trace.json").read_bytes()).batch)
    assert (server["service"], server["peer_service"], server["parent_id"]) == ("bar-requester", "external-platform", 0)
    assert (client["peer_service"], client["parent_id"]) == (None, 0)
    assert (client["trace_lo"], server["trace_lo"]) == (0, 1)  # two different traces


def test_service_graph_yaml_and_json_versions_decode_the_same() -> None:
    yaml = pytest.importorskip("yaml")
    for name in ("messaging-system-trace", "extra-dimensions-queue-db-trace", "virtual-node-label-trace"):
        from_yaml = decode_json(json.dumps(yaml.safe_load((SERVICE_GRAPH / f"{name}.yaml").read_text())))
        from_json = decode_json((SERVICE_GRAPH / f"{name}.json").read_bytes())
        assert rows(from_yaml.batch) == rows(from_json.batch)


def test_tempo_legacy_shape_with_base64_parent_and_string_kinds() -> None:
    decoded = fixture("grafana-tempo-datasource/mockJsonResponse.json")
    # The db span's links were hand-edited upstream ("spanId": "spanId"): the link is dropped.
    assert decoded.rejected == {} and decoded.warnings == {"bad link id": 1}
    spans = {(r["service"], r["span_id"]): r for r in rows(decoded.batch)}
    assert len(spans) == 6
    assert {r["trace_hi"] for r in spans.values()} == {0}
    assert {r["trace_lo"] for r in spans.values()} == {h("60ba2abb44f13eae")}
    lb_root = spans["lb", h("60ba2abb44f13eae")]
    lb_get = spans["lb", h("5738616ec68e79d2")]
    app_server = spans["app", h("5a07669d441aa326")]
    app_client_internal = spans["app", h("1957671c4ad85a8a")]
    app_get = spans["app", h("398f0f21a3db99ae")]
    db_server = spans["db", h("726b5e30102fc0d0")]
    # lb -> lb CLIENT -> app SERVER -> app (no kind) -> app CLIENT -> db SERVER
    assert lb_root["parent_id"] == 0
    assert lb_get["parent_id"] == lb_root["span_id"]
    assert app_server["parent_id"] == lb_get["span_id"]
    assert app_client_internal["parent_id"] == 0x5A07669D441AA326 == app_server["span_id"]  # "WgdmnUQaoyY="
    assert app_get["parent_id"] == app_client_internal["span_id"]
    assert db_server["parent_id"] == app_get["span_id"]
    assert [lb_root["kind"], lb_get["kind"], app_server["kind"], app_client_internal["kind"], app_get["kind"],
            db_server["kind"]] == [0, KIND_CLIENT, KIND_SERVER, 0, KIND_CLIENT, KIND_SERVER]
    assert (db_server["link_trace_hi"], db_server["link_trace_lo"], db_server["link_span_id"]) == (0, 0, 0)
    assert (lb_root["start_ns"], lb_root["end_ns"]) == (1627471657247632000, 1627471657260233000)
    assert db_server["name"] == "HTTP GET - root"


def test_jaeger_producer_consumer_kinds_links_and_error_status() -> None:
    decoded = fixture("jaeger/memory-otel_traces_01.json")
    assert decoded.rejected == {} and decoded.warnings == {}
    got = rows(decoded.batch)
    assert [r["kind"] for r in got] == [KIND_SERVER, KIND_CLIENT, KIND_PRODUCER, KIND_CONSUMER]
    assert [r["status"] for r in got] == [2, 2, 2, 2]
    assert [(r["trace_hi"], r["trace_lo"], r["span_id"], r["parent_id"]) for r in got] == [
        (1, 0, 2, 3), (2, 0, 3, 0x10), (1, 0, 4, 0x11), (2, 0, 5, 0x10)]
    # The first link is kept: trace 00000000000000010000000000000000, span 4 (the producer).
    assert {(r["link_trace_hi"], r["link_trace_lo"], r["link_span_id"]) for r in got} == {(1, 0, 4)}
    assert {r["peer_service"] for r in got} == {"service-y"}
    assert {r["service"] for r in got} == {"service-x"}


def test_jaeger_api_v3_result_wrapper() -> None:
    # As served, the span has no timestamps: it cannot be timed, so it is set aside.
    assert fixture("jaeger/apiv3-GetTrace.snapshot.json").rejected == {"missing timestamps": 1}
    doc = load("jaeger/apiv3-GetTrace.snapshot.json")
    span = doc["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span.update(startTimeUnixNano=str(T0), endTimeUnixNano=str(T0 + 5))
    decoded = decode_json(json.dumps(doc))
    assert decoded.rejected == {} and decoded.warnings == {"missing service.name": 1}
    assert rows(decoded.batch) == [{
        "trace_hi": 0, "trace_lo": 1, "span_id": 2, "parent_id": 0,
        "link_trace_hi": 0, "link_trace_lo": 0, "link_span_id": 0, "start_ns": T0, "end_ns": T0 + 5,
        "kind": KIND_SERVER, "status": 2, "service": UNKNOWN_SERVICE, "name": "foobar",
        "destination": None, "messaging_system": None, "peer_service": None, "db_system": None,
        "sampling_th": -1, "tail_policy": None, "instance": None, "exceptions": 0,
    }]


def test_telemetrygen_duplicate_span_is_removed_and_counted() -> None:
    decoded = fixture("jaeger/otlp2jaeger-in.telemetrygen.json")
    assert decoded.rejected == {"duplicate span": 1}
    assert decoded.rejected_spans == 1
    [span] = rows(decoded.batch)
    assert (span["span_id"], span["parent_id"]) == (h("e127af99e3b3e074"), h("909541b92cf05311"))
    assert (span["trace_hi"], span["trace_lo"]) == (h("83a9efd15c1c98a9"), h("77e0711cc93ee28b"))
    assert (span["service"], span["peer_service"], span["kind"]) == ("telemetrygen", "telemetrygen-client", 2)
    assert span["end_ns"] - span["start_ns"] == 123000


def test_other_signals_are_not_traces() -> None:
    with pytest.raises(PayloadError) as err:
        fixture("metrics.json")
    assert str(err.value) == "the document holds resourceMetrics, not resourceSpans"


def test_directory_walk_skips_other_signals_and_yaml(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    files = ["README.upstream.md", "metrics.json", "logs.json", "trace.json", "jaeger/otlp2jaeger-in.telemetrygen.json",
             "collector-contrib-servicegraph/messaging-system-trace.yaml",
             "collector-contrib-servicegraph/messaging-system-trace.json",
             "grafana-tempo-datasource/mockJsonResponse.json"]
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes((FIXTURES / rel).read_bytes())
    with caplog.at_level(logging.INFO, logger="collectors.otlp.files"):
        decoded = list(read_trace_files(tmp_path))
    # Sorted walk: servicegraph JSON, tempo, jaeger, trace.json.
    assert [len(d.batch) for d in decoded] == [2, 6, 1, 1]
    assert [d.rejected for d in decoded] == [{}, {}, {"duplicate span": 1}, {}]
    assert [r.getMessage() for r in caplog.records] == [
        f"skipped {tmp_path}/README.upstream.md: not OTLP traces (JSON, JSON lines or protobuf)",
        f"skipped {tmp_path}/collector-contrib-servicegraph/messaging-system-trace.yaml: "
        "not OTLP traces (JSON, JSON lines or protobuf)",
        f"skipped {tmp_path}/logs.json: the document holds resourceLogs, not resourceSpans",
        f"skipped {tmp_path}/metrics.json: the document holds resourceMetrics, not resourceSpans",
    ]


# --------------------------------------------------------------------------- protobuf


def full_request() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for key, value in (("service.name", "alerting"), ("host.name", "node-1")):
        kv = rs.resource.attributes.add()
        kv.key, kv.value.string_value = key, value
    scope = rs.scope_spans.add()
    scope.scope.name = "io.opentelemetry.kafka"
    producer = add_span(scope, 0x0123456789ABCDEF_FEDCBA9876543210, 0xA1, parent=0xA0, duration=2500,
                        messaging_system="kafka", messaging_destination_name="ticks", thread_id=7)
    producer.kind = trace_pb2.Span.SPAN_KIND_PRODUCER
    producer.status.code = trace_pb2.Status.STATUS_CODE_ERROR
    producer.status.message = "broker unavailable"
    event = producer.events.add()
    event.name, event.time_unix_nano = "retry", T0 + 10
    rs2 = req.resource_spans.add()
    kv = rs2.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "notification"
    consumer = add_span(rs2.scope_spans.add(), 0x0BAD, 0xB1, start=T0 + 5000, peer_service="sns", db_system=3)
    consumer.kind = trace_pb2.Span.SPAN_KIND_CONSUMER
    link = consumer.links.add()
    link.trace_id = (0x0123456789ABCDEF_FEDCBA9876543210).to_bytes(16, "big")
    link.span_id = (0xA1).to_bytes(8, "big")
    second = consumer.links.add()  # a batch consumer: every link is kept, in order
    second.trace_id, second.span_id = (0x0C0FFEE).to_bytes(16, "big"), b"\x01" * 8
    return req


#: Every link of EXPECTED_FULL's spans: (row, trace_hi, trace_lo, span_id).
EXPECTED_LINKS = [(1, 0x0123456789ABCDEF, 0xFEDCBA9876543210, 0xA1), (1, 0, 0x0C0FFEE, 0x0101010101010101)]


def link_rows(batch: Any) -> list[tuple[int, int, int, int]]:
    links = batch.all_links
    return list(zip(links.row.tolist(), links.trace_hi.tolist(), links.trace_lo.tolist(), links.span_id.tolist(),
                    strict=True))


EXPECTED_FULL = [
    {"trace_hi": 0x0123456789ABCDEF, "trace_lo": 0xFEDCBA9876543210, "span_id": 0xA1, "parent_id": 0xA0,
     "link_trace_hi": 0, "link_trace_lo": 0, "link_span_id": 0, "start_ns": T0, "end_ns": T0 + 2500,
     "kind": KIND_PRODUCER, "status": 2, "service": "alerting", "name": "op-161",
     "destination": "ticks", "messaging_system": "kafka", "peer_service": None, "db_system": None,
     "sampling_th": -1, "tail_policy": None, "instance": None, "exceptions": 0},
    {"trace_hi": 0, "trace_lo": 0x0BAD, "span_id": 0xB1, "parent_id": 0,
     "link_trace_hi": 0x0123456789ABCDEF, "link_trace_lo": 0xFEDCBA9876543210, "link_span_id": 0xA1,
     "start_ns": T0 + 5000, "end_ns": T0 + 6000, "kind": KIND_CONSUMER, "status": 0, "service": "notification",
     "name": "op-177", "destination": None, "messaging_system": None, "peer_service": "sns",
     # an int db.system is not a string: not kept
     "db_system": None, "sampling_th": -1, "tail_policy": None, "instance": None, "exceptions": 0},
]


def test_protobuf_round_trip_gives_the_same_values() -> None:
    decoded = decode_protobuf(full_request().SerializeToString())
    assert decoded.rejected == {} and decoded.warnings == {}
    assert rows(decoded.batch) == EXPECTED_FULL
    assert link_rows(decoded.batch) == EXPECTED_LINKS


def test_a_malformed_link_is_kept_with_zero_ids_and_counted() -> None:
    req, scope = one_scope()
    span = add_span(scope, 7, 0xB1)
    span.links.add().span_id = b"\x01" * 8  # no trace id
    ok = span.links.add()
    ok.trace_id, ok.span_id = (9).to_bytes(16, "big"), (3).to_bytes(8, "big")
    decoded = decode_protobuf(req.SerializeToString())
    assert decoded.warnings == {"bad link id": 1}
    assert link_rows(decoded.batch) == [(0, 0, 0, 0), (0, 0, 9, 3)]


def test_traces_data_has_the_request_layout() -> None:
    data = trace_pb2.TracesData()
    data.MergeFromString(full_request().SerializeToString())
    assert rows(decode_protobuf(data.SerializeToString()).batch) == EXPECTED_FULL


def test_protobuf_json_mapping_with_base64_ids_and_enum_names_decodes_the_same() -> None:
    # Protobuf's own JSON mapping (what MessageToJson writes) has base64 ids and enum names.
    text = json_format.MessageToJson(full_request())
    assert '"SPAN_KIND_PRODUCER"' in text and '"spanId": "AAAAAAAAAKE="' in text
    assert rows(decode_json(text).batch) == EXPECTED_FULL
    assert link_rows(decode_json(text).batch) == EXPECTED_LINKS


def test_lean_schema_field_numbers_match_opentelemetry_proto() -> None:
    from google.protobuf.descriptor import FieldDescriptor as FD
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2

    real: dict[str, Any] = {
        "AnyValue": common_pb2.AnyValue, "Resource": resource_pb2.Resource, "Status": trace_pb2.Status,
        "Link": trace_pb2.Span.Link, "Span": trace_pb2.Span, "ScopeSpans": trace_pb2.ScopeSpans,
        "ResourceSpans": trace_pb2.ResourceSpans, "TracesData": trace_pb2.TracesData,
        "InstrumentationScope": common_pb2.InstrumentationScope, "Event": trace_pb2.Span.Event,
        "ArrayValue": common_pb2.ArrayValue, "KeyValueList": common_pb2.KeyValueList, "KeyValue": common_pb2.KeyValue,
    }
    wire = {FD.TYPE_BYTES: "len", FD.TYPE_STRING: "len", FD.TYPE_MESSAGE: "len", FD.TYPE_INT32: "varint",
            FD.TYPE_ENUM: "varint", FD.TYPE_FIXED64: "i64", FD.TYPE_FIXED32: "i32", FD.TYPE_BOOL: "varint",
            FD.TYPE_INT64: "varint", FD.TYPE_DOUBLE: "i64"}
    checked = 0
    for message, fields in LEAN_SCHEMA.items():
        by_name = real[message].DESCRIPTOR.fields_by_name
        for name, number, ftype, target in fields:
            if name == "instrumentation_library_spans":
                assert name not in by_name  # removed in OTLP 1.0
                continue
            assert by_name[name].number == number, (message, name)
            assert wire[by_name[name].type] == wire[ftype], (message, name)
            if target == "map":  # a map entry is {key = 1; value = 2}: the layout of KeyValue
                assert by_name[name].message_type.full_name == "opentelemetry.proto.common.v1.KeyValue"
            checked += 1
    kv = common_pb2.KeyValue.DESCRIPTOR.fields_by_name
    assert (kv["key"].number, kv["value"].number) == (1, 2)
    assert checked == 35


def test_legacy_instrumentation_library_spans_field_1000() -> None:
    req, scope = one_scope("legacy")
    add_span(scope, 7, 8)
    scope_bytes = scope.SerializeToString()
    resource_bytes = req.resource_spans[0].resource.SerializeToString()

    def length_delimited(field: int, payload: bytes) -> bytes:
        out = bytearray()
        for value in ((field << 3) | 2, len(payload)):
            while value > 0x7F:
                out.append((value & 0x7F) | 0x80)
                value >>= 7
            out.append(value)
        return bytes(out) + payload

    rs = length_delimited(1, resource_bytes) + length_delimited(1000, scope_bytes)
    [span] = rows(decode_protobuf(length_delimited(1, rs)).batch)
    assert (span["service"], span["trace_lo"], span["span_id"]) == ("legacy", 7, 8)


def test_other_wrappers_and_lists_of_documents() -> None:
    one = request_json(span_json(span="00000000000000a1"), service="a")
    two = request_json(span_json(span="00000000000000a2"), service="b")
    both = {"resourceSpans": one["resourceSpans"] + two["resourceSpans"]}
    for doc in ([one, two], {"trace": [one, two]}, {"result": both}, {"batches": both["resourceSpans"]}):
        decoded = decode_json(json.dumps(doc))
        assert decoded.batch.service.tolist() == ["a", "b"] and decoded.batch.span_id.tolist() == [0xA1, 0xA2]


def test_decoders_restore_the_gc_state() -> None:
    import gc

    body = full_request().SerializeToString()
    assert gc.isenabled()
    decode_protobuf(body)
    decode_json(json_format.MessageToJson(full_request()))
    with pytest.raises(PayloadError):
        decode_protobuf(body[:-7])
    assert gc.isenabled()
    gc.disable()
    try:
        decode_protobuf(body)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_empty_bodies_are_empty_batches() -> None:
    for decoded in (decode_protobuf(b""), decode_json("{}"), decode_json('{"resourceSpans": []}')):
        assert len(decoded.batch) == 0 and decoded.rejected == {} and decoded.warnings == {}


def test_invalid_utf8_in_a_string_keeps_the_request() -> None:
    req, scope = one_scope()
    add_span(scope, 1, 2, peer_service="ok").name = "x"
    body = req.SerializeToString().replace(b"\x2a\x01x", b"\x2a\x01\xff")  # name (field 5) "x" -> byte 0xff
    [span] = rows(decode_protobuf(body).batch)
    assert (span["name"], span["peer_service"]) == ("\ufffd", "ok")


# --------------------------------------------------------------------------- bad input


def test_truncated_protobuf_is_a_payload_error() -> None:
    body = full_request().SerializeToString()
    with pytest.raises(PayloadError) as err:
        decode_protobuf(body[:-7])
    assert str(err.value) == "invalid protobuf: wire format was corrupt (expected an OTLP ExportTraceServiceRequest)"
    assert isinstance(err.value, LatmapError) and err.value.exit_code == 2


def test_invalid_json_names_the_position() -> None:
    with pytest.raises(PayloadError) as err:
        decode_json('{"resourceSpans": [\n  {"resource": {} "scopeSpans": []}]}')
    assert str(err.value) == "invalid JSON: Expecting ',' delimiter at line 2 column 19"
    with pytest.raises(PayloadError) as err:
        decode_json(b'{"resourceSpans": "\xff"}')
    assert str(err.value) == "invalid JSON: not UTF-8 text (byte 19)"


def test_json_of_the_wrong_shape_names_the_path() -> None:
    doc = request_json(span_json(), "not a span")
    with pytest.raises(PayloadError) as err:
        decode_json(json.dumps(doc))
    assert str(err.value) == ("resourceSpans[0].scopeSpans[0].spans[1]: not an OTLP object of the expected shape "
                              "('str' object has no attribute 'get')")
    with pytest.raises(PayloadError) as err:
        decode_json('{"resourceSpans": {"resource": {}}}')
    assert str(err.value) == "resourceSpans: expected a list, got dict"
    with pytest.raises(PayloadError) as err:
        decode_json('{"error": {"grpcCode": 5, "message": "trace not found"}}')
    assert str(err.value) == "the document is an error response, not traces: trace not found"


def test_json_values_of_the_wrong_type_are_repaired_or_rejected_not_raised() -> None:
    spans = [span_json(span="00000000000000a1", kind=[2], status={"code": [2]}, name={"x": 1},
                       attributes=[{"key": "peer.service", "value": {"stringValue": 5}}]),
             span_json(span="00000000000000a2", kind=2**70, startTimeUnixNano=[1]),
             span_json(span=17, kind=True)]
    decoded = decode_json(json.dumps(request_json(*spans)))
    assert decoded.rejected == {"bad timestamp": 1, "invalid span id": 1}
    assert decoded.warnings == {"unknown span kind": 1, "unknown status code": 1}
    [span] = rows(decoded.batch)
    assert (span["kind"], span["status"], span["name"], span["peer_service"]) == (0, 0, "", None)


def test_corrupt_bodies_raise_payload_error_or_decode_never_anything_else() -> None:
    rnd = random.Random(7)
    body = full_request().SerializeToString()
    text = json_format.MessageToJson(full_request())
    outcomes = {"decoded": 0, "payload error": 0}
    for _ in range(400):
        b = bytearray(body)
        position = rnd.randrange(len(b))
        if rnd.random() < 0.5:
            b[position] = rnd.randrange(256)
        else:
            del b[position:position + rnd.randint(1, 8)]
        t = list(text)
        t[rnd.randrange(len(t))] = rnd.choice('{}[]",:0123456789abcdefxyz -')
        for payload in (bytes(b), "".join(t)):
            try:
                decode_protobuf(payload) if isinstance(payload, bytes) else decode_json(payload)
                outcomes["decoded"] += 1
            except PayloadError:
                outcomes["payload error"] += 1
    assert outcomes["decoded"] > 50 and outcomes["payload error"] > 50


def test_wrong_id_lengths_are_rejected_with_their_reason() -> None:
    spans = [
        span_json(trace="0" * 30 + "01"),  # ok
        span_json(trace="0" * 28 + "01", span="00000000000000a2"),  # 15 bytes
        span_json(trace="60ba2abb44f13eae", span="00000000000000a3"),  # a 64-bit Jaeger id: 8 bytes
        span_json(span="0000000000a4"),  # 6 bytes
        span_json(span="00000000000000a5", parentSpanId="00a1"),  # parent of 2 bytes
        span_json(trace="not an id!", span="00000000000000a6"),
        span_json(span="0000000000000000"),  # all zeros: invalid
        span_json(trace="0" * 32, span="00000000000000a7"),
        span_json(span="00000000000000a8", parentSpanId="zz!"),
        span_json(span="00000000000000a9", parentSpanId="0000000000000000"),  # zeros: no parent, ok
    ]
    decoded = decode_json(json.dumps(request_json(*spans)))
    assert decoded.rejected == {"bad parent span id length": 1, "bad span id length": 1, "bad trace id length": 2,
                                "invalid parent span id": 1, "invalid span id": 1, "invalid trace id": 2}
    assert [(r["span_id"], r["parent_id"]) for r in rows(decoded.batch)] == [(0xA1, 0), (0xA9, 0)]


def test_wrong_id_lengths_in_protobuf() -> None:
    req, scope = one_scope()
    add_span(scope, 1, 1)
    add_span(scope, 1, 2).trace_id = b"\x01" * 8
    add_span(scope, 1, 3).span_id = b"\x03" * 16
    add_span(scope, 1, 4).parent_span_id = b"\x04" * 7
    add_span(scope, 1, 5).trace_id = b""
    add_span(scope, 1, 6).span_id = bytes(8)
    decoded = decode_protobuf(req.SerializeToString())
    assert decoded.rejected == {"bad parent span id length": 1, "bad span id length": 1, "bad trace id length": 2,
                                "invalid span id": 1}
    assert decoded.batch.span_id.tolist() == [1]


def test_timestamps_end_before_start_missing_and_out_of_range() -> None:
    spans = [
        span_json(span="00000000000000a1"),
        span_json(span="00000000000000a2", endTimeUnixNano=str(T0 - 1)),
        span_json(span="00000000000000a3", endTimeUnixNano=None),
        span_json(span="00000000000000a4", startTimeUnixNano="0"),
        span_json(span="00000000000000a5", startTimeUnixNano="-5"),
        span_json(span="00000000000000a6", endTimeUnixNano=str(2**63)),
        span_json(span="00000000000000a7", endTimeUnixNano="soon"),
        span_json(span="00000000000000a8", startTimeUnixNano=T0, endTimeUnixNano=T0),  # numbers; 0 duration is ok
    ]
    decoded = decode_json(json.dumps(request_json(*spans)))
    assert decoded.rejected == {"bad timestamp": 3, "end before start": 1, "missing timestamps": 2}
    assert decoded.batch.span_id.tolist() == [0xA1, 0xA8]
    assert decoded.batch.start_ns.dtype == np.int64

    req, scope = one_scope()
    add_span(scope, 1, 1)
    add_span(scope, 1, 2).end_time_unix_nano = 2**64 - 1
    add_span(scope, 1, 3, start=T0, duration=-10**9 + 1)
    decoded = decode_protobuf(req.SerializeToString())
    assert decoded.rejected == {"bad timestamp": 1, "end before start": 1}


def test_missing_resource_attributes_default_to_unknown_service() -> None:
    doc = request_json(span_json(), service=None)
    doc["resourceSpans"].append({"scopeSpans": [{"spans": [span_json(span="00000000000000b1")]}]})
    exe = {"attributes": [{"key": "process.executable.name", "value": {"stringValue": "java"}}]}
    doc["resourceSpans"].append(request_json(span_json(span="00000000000000c1"), resource=exe)["resourceSpans"][0])
    decoded = decode_json(json.dumps(doc))
    assert decoded.rejected == {} and decoded.warnings == {"missing service.name": 3}
    assert decoded.batch.service.tolist() == [UNKNOWN_SERVICE, UNKNOWN_SERVICE, "unknown_service:java"]

    req, scope = one_scope(service=None)
    add_span(scope, 1, 1)
    decoded = decode_protobuf(req.SerializeToString())
    assert decoded.warnings == {"missing service.name": 1} and decoded.batch.service.tolist() == [UNKNOWN_SERVICE]


def test_unknown_enum_values_become_zero_with_a_warning() -> None:
    spans = [
        span_json(span="00000000000000a1", kind=9),
        span_json(span="00000000000000a2", kind="SPAN_KIND_BOGUS"),
        span_json(span="00000000000000a3", kind="SPAN_KIND_CONSUMER", status={"code": "STATUS_CODE_ERROR"}),
        span_json(span="00000000000000a4", kind="4", status={"code": 7}),
        span_json(span="00000000000000a5", kind=None, status={"code": "STATUS_CODE_MAYBE"}),
    ]
    decoded = decode_json(json.dumps(request_json(*spans)))
    assert decoded.rejected == {} and decoded.warnings == {"unknown span kind": 2, "unknown status code": 2}
    assert decoded.batch.kind.tolist() == [0, 0, KIND_CONSUMER, KIND_PRODUCER, 0]
    assert decoded.batch.status.tolist() == [0, 0, 2, 0, 0]

    req, scope = one_scope()
    add_span(scope, 1, 1).kind = 42  # type: ignore[assignment]  # proto3 enums are open: 42 survives
    add_span(scope, 1, 2).status.code = -3  # type: ignore[assignment]
    decoded = decode_protobuf(req.SerializeToString())
    assert decoded.warnings == {"unknown span kind": 1, "unknown status code": 1}
    assert decoded.batch.kind.tolist() == [0, KIND_SERVER]


def test_huge_attribute_values_are_cut_not_kept() -> None:
    huge = "x" * 10_000_000
    req, scope = one_scope()
    add_span(scope, 1, 1, peer_service=huge, http_request_body=huge)
    add_span(scope, 1, 2, db_system="postgresql").name = huge
    decoded = decode_protobuf(req.SerializeToString())
    assert decoded.rejected == {} and decoded.warnings == {"long value truncated": 2}
    assert decoded.batch.peer_service[0] == "x" * MAX_VALUE_CHARS
    assert decoded.batch.name.tolist() == ["op-1", "x" * MAX_VALUE_CHARS]
    assert decoded.batch.db_system.tolist() == [None, "postgresql"]

    doc = request_json(span_json(attributes=[{"key": "messaging.destination.name", "value": {"stringValue": huge}},
                                             {"key": "blob", "value": {"stringValue": huge}}]))
    decoded = decode_json(json.dumps(doc))
    assert decoded.warnings == {"long value truncated": 1}
    assert len(decoded.batch.destination[0]) == MAX_VALUE_CHARS


def test_a_trace_of_5000_spans() -> None:
    trace = 0xFEED
    req, scope = one_scope("deep")
    for i in range(1, 5001):
        add_span(scope, trace, i, parent=i - 1, start=T0 + i, duration=10_000 - i)
    decoded = decode_protobuf(req.SerializeToString())
    assert len(decoded.batch) == 5000 and decoded.rejected == {}
    assert decoded.batch.span_id.tolist() == list(range(1, 5001))
    assert decoded.batch.parent_id.tolist() == list(range(5000))
    assert (decoded.batch.end_ns == T0 + 10_000).all()
    assert rows(decode_json(json_format.MessageToJson(req)).batch) == rows(decoded.batch)


def test_first_link_with_bad_ids_is_dropped_with_a_warning() -> None:
    spans = [span_json(span="00000000000000a1", links=[{"traceId": "traceId", "spanId": "spanId"},
                                                       {"traceId": "0" * 31 + "9", "spanId": "0" * 15 + "9"}]),
             span_json(span="00000000000000a2", links=[{"traceId": "0" * 31 + "9", "spanId": "0" * 15 + "9"}])]
    decoded = decode_json(json.dumps(request_json(*spans)))
    assert decoded.warnings == {"bad link id": 1}
    assert decoded.batch.link_span_id.tolist() == [0, 9]
    assert decoded.batch.link_trace_lo.tolist() == [0, 9]


# --------------------------------------------------------------------------- dedupe


def test_dedupe_keeps_the_first_copy_and_the_order() -> None:
    batch = SpanBatch.from_columns({
        "trace_hi": [1, 1, 2, 1, 2, 1], "trace_lo": [0] * 6, "span_id": [5, 6, 5, 5, 5, 7],
        "name": ["a", "b", "c", "d", "e", "f"],
    })
    unique, removed = dedupe(batch)
    assert removed == 2
    assert unique.name.tolist() == ["a", "b", "c", "f"]
    assert dedupe(unique) == (unique, 0)


def test_merge_dedupes_across_requests_and_adds_counts() -> None:
    first = decode_json(json.dumps(request_json(span_json(span="00000000000000a1"), span_json(span="0" * 16))))
    again = decode_json(json.dumps(request_json(span_json(span="00000000000000a1"), span_json(span="bad"))))
    merged = Decoded.merge([first, again])
    assert merged.batch.span_id.tolist() == [0xA1]
    assert merged.rejected == {"bad span id length": 1, "duplicate span": 1, "invalid span id": 1}


def test_every_reason_is_exported_once() -> None:
    assert len(REJECT_REASONS) == len(set(REJECT_REASONS)) == 10
    assert len(WARNING_REASONS) == len(set(WARNING_REASONS)) == 6
    exported = {getattr(codec, n) for n in codec.__all__ if isinstance(getattr(codec, n), str)}
    assert exported == set(REJECT_REASONS) | set(WARNING_REASONS) | {UNKNOWN_SERVICE}
