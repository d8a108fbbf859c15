"""The live flow (issue 27): ticks -> alerting -> notifier through the real OTel SDK's OTLP/HTTP
exporter into latmap's receiver. Most ticks stop at alerting (no alert fires): they are
complete there, not incomplete; a few notifications fail and are redelivered, a few are
delivered twice. ``latmap_stage_items_total`` gives the known count per stage and outcome,
equal to the map's flow (:func:`mapper.analysis.flow.flow_sums`) of the same spans, and
``latmap_stage_inventory`` counts an alert handed over and not yet taken by the notifier."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from collectors.otlp.protobuf import decode_protobuf
from collectors.spool.receiver import Receiver
from collectors.spool.store import Spool, SpoolLimits
from mapper.analysis.flow import flow_sums
from mapper.analysis.live import StoreLimits
from mapper.analysis.traces import build_trace_table
from mapper.app.live import LiveDeriver, plan
from mapper.core.spec import loads_spec

SPEC = """\
name: quotes
sources:
  spans: {kind: traces, path: ./spool}
stages:
  - {name: ticks, traces: {source: spans, service: marketdata}}
  - {name: alerting, traces: {source: spans, service: alerting}}
  - {name: notify, traces: {source: spans, service: notifier}}
"""
SERVICES = ("marketdata", "alerting", "notifier")
MS = 1_000_000
N = 200


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def _msg(t: trace.Tracer, name: str, kind: SpanKind, start: int, parent: Any = None,
         links: list[Link] | None = None) -> Any:
    ctx = trace.set_span_in_context(parent) if parent is not None else Context()
    return t.start_span(name, ctx, kind, start_time=start, links=links,
                        attributes={"messaging.system": "kafka", "messaging.destination.name": name.split()[0]})


def make_ticks(t: dict[str, trace.Tracer], first: int, n: int, t0: int, notify: bool = True) -> dict[str, dict]:
    """Ticks ``first .. first+n-1``; returns the truth per stage and outcome.

    Every tick: marketdata's ``tick`` span with a ``ticks publish`` PRODUCER child; alerting's
    CONSUMER child of it. Every tick i with i % 10 < 3 raises an alert (an ``alerts publish``
    PRODUCER child), consumed by the notifier in a new trace linked to it; the others stop at
    alerting. Of the alerts, i % 30 == 0 fail once (status ERROR, an exception event) and are
    redelivered; i % 30 == 1 are delivered twice, both fine (a rebalance). i % 50 == 7: the
    alerting span records an exception (failed there, handed on or not as the rule says)."""
    truth: dict[str, dict[str, int]] = {s: {"passed": 0, "stopped": 0, "failed": 0, "retried": 0}
                                        for s in ("ticks", "alerting", "notify")}
    for i in range(first, first + n):
        s0 = t0 + i * 10 * MS
        tick = t["marketdata"].start_span("tick", Context(), SpanKind.SERVER, start_time=s0)
        pub = _msg(t["marketdata"], "ticks publish", SpanKind.PRODUCER, s0 + MS, tick)
        pub.end(s0 + 2 * MS)
        tick.end(s0 + 2 * MS)
        truth["ticks"]["passed"] += 1
        c0 = s0 + 4 * MS
        con = _msg(t["alerting"], "ticks process", SpanKind.CONSUMER, c0, pub)
        if i % 50 == 7:
            con.record_exception(ValueError("bad quote"))
            con.set_status(Status(StatusCode.ERROR))
            truth["alerting"]["failed"] += 1
        alert = i % 10 < 3
        truth["alerting"]["passed" if alert else "stopped"] += 1
        if not alert:
            con.end(c0 + 3 * MS)
            continue
        out = _msg(t["alerting"], "alerts publish", SpanKind.PRODUCER, c0 + 2 * MS, con)
        out.end(c0 + 3 * MS)
        con.end(c0 + 3 * MS)
        if not notify:
            continue
        truth["notify"]["stopped"] += 1
        attempts = 2 if i % 30 in (0, 1) else 1
        for a in range(attempts):
            m0 = c0 + (5 + 20 * a) * MS
            send = _msg(t["notifier"], "alerts process", SpanKind.CONSUMER, m0, links=[Link(out.get_span_context())])
            if i % 30 == 0 and a == 0:
                send.record_exception(TimeoutError("smtp"))
                send.set_status(Status(StatusCode.ERROR))
            send.end(m0 + 4 * MS)
        if i % 30 == 0:
            truth["notify"]["failed"] += 1
        elif i % 30 == 1:
            truth["notify"]["retried"] += 1
    return truth


def send(port: int, memory: InMemorySpanExporter, make: Any) -> Any:
    """Spans made by ``make`` through the SDK's OTLP/HTTP exporter (a batch processor per
    service) to the receiver, and into ``memory`` (for the map of the same spans)."""
    providers = {}
    for svc in SERVICES:
        p = TracerProvider(resource=Resource.create({"service.name": svc, "service.instance.id": f"{svc}-1"}))
        p.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces"),
                                                max_export_batch_size=512, schedule_delay_millis=60_000))
        p.add_span_processor(SimpleSpanProcessor(memory))
        providers[svc] = p
    got = make({s: p.get_tracer("test") for s, p in providers.items()})
    for p in providers.values():
        assert p.force_flush(30_000)
        p.shutdown()
    return got


def scrape(port: int) -> tuple[dict[tuple[str, str], float], dict[str, float]]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    items, inventory = {}, {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "latmap_stage_items_total" and s.labels["stream"] == "quotes":
                items[(s.labels["stage"], s.labels["outcome"])] = s.value
            elif s.name == "latmap_stage_inventory":
                inventory[s.labels["stage"]] = s.value
    return items, inventory


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[LiveDeriver, Clock, int]]:
    clock = Clock()
    d = LiveDeriver([plan(loads_spec(SPEC, "stream.yaml"))], StoreLimits(ttl=30, settle=1), clock=clock)
    with Spool(tmp_path / "spool", SpoolLimits(compact_interval=3600)) as spool, \
            Receiver(spool, http="127.0.0.1:0", grpc=None, decode_workers=0, sinks=[d], collectors=[d]) as r:
        assert r.http_port is not None
        yield d, clock, r.http_port


def test_items_stop_at_alerting_and_redeliveries_count_as_the_maps_flow(live: tuple[LiveDeriver, Clock, int]) -> None:
    d, clock, port = live
    memory = InMemorySpanExporter()
    t0 = time.time_ns() - 60_000 * MS
    truth = send(port, memory, lambda t: make_ticks(t, 0, N, t0))
    assert truth["alerting"]["stopped"] == 140 and truth["notify"]["failed"] == 7 == truth["notify"]["retried"]
    b = decode_protobuf(encode_spans(memory.get_finished_spans()).SerializeToString()).batch
    s = plan(loads_spec(SPEC, "stream.yaml")).stream
    table = build_trace_table(b, s.matches, s.upstream)
    d.flush()
    clock.now = 5.0  # quiet for longer than `settle`: every item is complete where it stopped
    # every item path of the map's table (a redelivery in a trace of its own is a path of its own)
    assert d.flush() == table.traces == N + 14
    items, inventory = scrape(port)
    for stage, by in truth.items():
        for outcome, n in by.items():
            assert items[(stage, outcome)] == n, (stage, outcome, items)
    assert inventory == {"alerting": 0, "notify": 0}
    # the map's flow of the same spans gives the same counts
    sums = flow_sums(table, b, s.matches, s.upstream, (t0 / 1e9 - 1, t0 / 1e9 + 3600))
    for stage, f in sums.stages.items():
        assert (f.items_in, f.out, f.failed, f.not_first_pass - f.failed) == (
            items[(stage, "passed")] + items[(stage, "stopped")], items[(stage, "passed")],
            items[(stage, "failed")], items[(stage, "retried")]), stage


def test_an_alert_not_yet_taken_by_the_notifier_is_inventory_not_stopped(live: tuple[LiveDeriver, Clock, int]) -> None:
    d, clock, port = live
    memory = InMemorySpanExporter()
    t0 = time.time_ns() - 60_000 * MS
    send(port, memory, lambda t: make_ticks(t, 0, 3, t0, notify=False))  # 3 alerts, the notifier is slow
    d.flush()
    clock.now = 5.0
    assert d.flush() == 0  # handed over: waiting, not stopped at alerting
    items, inventory = scrape(port)
    assert inventory == {"alerting": 0, "notify": 3}
    assert items[("alerting", "passed")] == items[("alerting", "stopped")] == 0

    def notify(t: dict[str, trace.Tracer]) -> None:
        for span in [s for s in memory.get_finished_spans() if s.name == "alerts publish"]:
            parent = trace.NonRecordingSpan(span.get_span_context())
            m0 = span.end_time + 7 * MS
            t["notifier"].start_span("alerts process", Context(), SpanKind.CONSUMER, start_time=m0,
                                     links=[Link(parent.get_span_context())]).end(m0 + 4 * MS)

    send(port, InMemorySpanExporter(), notify)
    d.flush()
    clock.now = 10.0
    assert d.flush() == 3
    items, inventory = scrape(port)
    assert inventory == {"alerting": 0, "notify": 0}
    assert (items[("alerting", "passed")], items[("notify", "stopped")], items[("ticks", "passed")]) == (3, 3, 3)
