"""The exporter conventions ``discover --prometheus`` drafts from, against their real series names."""

from __future__ import annotations

import pytest

from mapper.app.discover import Discovery, Family, starter_spec
from mapper.app.draft import Candidate, draft_check, propose
from mapper.app.exporters import convention, left_out
from mapper.core.spec import loads_spec


def _family(name: str, *rows: dict[str, str], unit: str = "") -> Candidate:
    labels: dict[str, set[str]] = {}
    for r in rows:
        for k, v in r.items():
            labels.setdefault(k, set()).add(v)
    return Candidate(name, {k: sorted(v) for k, v in labels.items()}, unit,
                     tuple(tuple(sorted(r.items())) for r in rows))


@pytest.mark.parametrize(("name", "unit", "work"), [
    ("flower_task_runtime_seconds", "s", ("task",)),
    ("celery_task_runtime", "s", ("name",)),
    ("http_server_requests_seconds", "s", ("uri", "method")),
    ("http_server_request_duration_seconds", "s", ("http_route",)),
    ("http_request_duration_seconds", "s", ("handler",)),
    ("istio_request_duration_milliseconds", "ms", ()),
    ("response_latency_ms", "ms", ()),
    ("traces_span_metrics_duration", "ms", ("span_name",)),
    ("traces_span_metrics_duration_milliseconds", "ms", ("span_name",)),
    ("duration_milliseconds", "ms", ("span_name",)),
    ("traces_spanmetrics_latency", "s", ("span_name",)),
])
def test_known_exporters_give_unit_and_unit_of_work_labels(name: str, unit: str, work: tuple[str, ...]) -> None:
    c = convention(name)
    assert c is not None and c.unit == unit and c.work == work and c.role == "stage"


def test_service_graph_series_order_stages_rather_than_make_them() -> None:
    c = convention("traces_service_graph_request_server_seconds")
    assert c is not None and c.role == "edge"


@pytest.mark.parametrize(("name", "unit", "why"), [
    ("prometheus_http_request_duration_seconds", "", "infrastructure"),
    ("go_gc_duration_seconds", "", "infrastructure"),
    ("process_cpu_seconds", "", "infrastructure"),
    ("promhttp_metric_handler_duration_seconds", "", "infrastructure"),
    ("celery_exporter_scrape_duration_seconds", "", "scrape"),
    ("latmap_lead_time_seconds", "", "lead time"),
    ("latmap_receiver_request_seconds", "", "latmap's own"),
    ("http_response_size_bytes", "", "size"),
    ("rpc_server_request_size", "", "size"),
    ("payload", "bytes", "size"),
])
def test_infrastructure_latmap_and_size_series_are_left_out(name: str, unit: str, why: str) -> None:
    assert why in (left_out(name, unit) or "")


def test_latmap_live_stage_series_are_not_left_out() -> None:
    assert left_out("latmap_stage_wait_seconds") is None and left_out("latmap_stage_process_seconds") is None


def test_flower_tasks_are_one_stage_each_with_their_task_selector() -> None:
    rows = [{"job": "flower", "task": t, "worker": "w1"} for t in ("tasks.add", "tasks.mul", "tasks.slow")]
    stages, _ = propose([_family("flower_task_runtime_seconds", *rows)])
    assert [s.name for s in stages] == ["flower-tasks.add", "flower-tasks.mul", "flower-tasks.slow"]
    assert [s.process.selector for s in stages if s.process] == [(("task", t),) for t in
                                                                  ("tasks.add", "tasks.mul", "tasks.slow")]
    assert all(s.wait is None and s.process and not s.process.guessed for s in stages)


def test_spring_boot_uris_and_methods_split_and_its_scrape_endpoint_is_left_out() -> None:
    rows = [{"application": "orders", "uri": u, "method": m} for u, m in
            (("/orders", "GET"), ("/orders", "POST"), ("/actuator/prometheus", "GET"))]
    stages, skipped = propose([_family("http_server_requests_seconds", *rows)])
    assert [s.name for s in stages] == ["orders-orders-GET", "orders-orders-POST"]
    assert stages[1].process and dict(stages[1].process.selector) == {"application": "orders", "uri": "/orders",
                                                                      "method": "POST"}
    assert any("scrape endpoint" in s for s in skipped)


def test_wait_and_process_pair_only_within_one_service() -> None:
    """The issue's draft: a job shared by two apps paired one's wait with the other's process."""
    stages, _ = propose([
        _family("notifier_queue_wait_seconds", {"job": "app"}),
        _family("marketdata_tick_seconds", {"job": "app"}),
        _family("notifier_send_seconds", {"job": "app"}),
    ])
    by = {s.name: s for s in stages}
    assert set(by) == {"app-notifier", "app-marketdata"}
    n = by["app-notifier"]
    assert n.wait and n.wait.name == "notifier_queue_wait_seconds"
    assert n.process and n.process.name == "notifier_send_seconds"
    assert by["app-marketdata"].wait is None


def test_a_draft_without_service_graph_says_its_order_is_a_guess() -> None:
    found = Discovery((Family("checkout_seconds", {"job": ["shop"]}, 1, series_labels=((("job", "shop"),),)),))
    text = starter_spec(found, "http://127.0.0.1:9090")
    assert "order: a guess" in text and "draft: true" in text.splitlines()[2]
    spec = loads_spec(text, "stream.yaml")
    check = draft_check(spec)[0]
    assert (check.level, check.code) == ("warning", "spec-draft")
    assert check.message.startswith("stream.yaml:3: a draft") and "owners of shop" in check.message


def test_a_spec_without_draft_key_has_no_draft_check() -> None:
    found = Discovery((Family("checkout_seconds", {"job": ["shop"]}, 1),))
    text = starter_spec(found, "http://127.0.0.1:9090").replace("draft: true\n", "")
    assert draft_check(loads_spec(text)) == []
    assert draft_check(loads_spec(text.replace("version: 1", "draft: false\nversion: 1"))) == []


def test_draft_must_be_a_boolean() -> None:
    from mapper.core.errors import SpecError

    found = Discovery((Family("checkout_seconds", {"job": ["shop"]}, 1),))
    text = starter_spec(found, "http://x:9090").replace("draft: true", "draft: yes please")
    with pytest.raises(SpecError, match="draft: must be true or false"):
        loads_spec(text)
