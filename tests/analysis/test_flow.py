"""The flow from traces (issue 27) on a branching chain with known timings: items in (exact),
yield, first-pass yield, inventory mean and peak, utilisation within 2% of the truth; items
that stop at alerting are complete, not missing spans; partitions add up to the whole."""

from __future__ import annotations

from dataclasses import astuple

import numpy as np
import pytest

from collectors.base import SourceBase
from mapper.analysis.flow import FlowSums, flow_sums
from mapper.analysis.traces import StageMatch, build_trace_table
from mapper.app.pipeline import build_map
from mapper.core.model import Window
from mapper.core.spans import LoadedSpans, SpanBatch
from mapper.core.spec import loads_spec
from tests.analysis.flow_chain import W0, WINDOW, chain, true_peak

SPEC = """\
name: ticks
sources:
  spans: {kind: traces, path: /nonexistent}
stages:
  - {name: market-data, owner: md, traces: {source: spans, service: market-data}}
  - {name: alerting, owner: al, traces: {source: spans, service: alerting}}
  - {name: notification, owner: nt, traces: {source: spans, service: notification}}
"""
MATCHES = [StageMatch("market-data", "market-data"), StageMatch("alerting", "alerting"),
           StageMatch("notification", "notification")]
UPSTREAM = {"market-data": None, "alerting": "market-data", "notification": "alerting"}


class Spans(SourceBase):
    """The spans of a batch, as a traces source gives them."""

    gives = frozenset({"spans"})

    def __init__(self, batch: SpanBatch) -> None:
        self.batch = batch

    def spans(self, window: Window, services: object = (), attributes: bool = False) -> LoadedSpans:
        return LoadedSpans(self.batch, {}, "test spans")


@pytest.fixture(scope="module", params=[False, True], ids=["parented", "split"])
def mapped(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    batch, truth = chain(split=request.param)
    spec = loads_spec(SPEC)
    lm = build_map(spec, Window(W0, W0 + WINDOW), collectors={"spans": Spans(batch)})
    return lm, truth


def test_items_yield_and_first_pass_yield(mapped) -> None:  # type: ignore[no-untyped-def]
    lm, truth = mapped
    flow = lm.flow
    md, al, nt = (flow.of(s) for s in ("market-data", "alerting", "notification"))
    assert (md.items_in, al.items_in, nt.items_in) == (truth.ticks, truth.ticks, truth.alerts)
    assert md.items_out == truth.ticks and md.yield_ == 1.0 and md.stopped == 0
    assert al.items_out == truth.alerts and al.stopped == truth.ticks - truth.alerts
    assert al.yield_ == pytest.approx(truth.alerts / truth.ticks)
    assert [(h.to, h.items) for h in al.handovers] == [("notification", truth.alerts)]
    assert nt.items_out is None and nt.yield_ is None and nt.stopped == truth.alerts
    assert flow.items_completed == truth.alerts
    assert al.rework.failed == truth.failed and al.rework.retried == truth.failed
    assert al.rework.first_pass_yield == pytest.approx(1 - truth.failed / truth.ticks)
    assert md.rework.first_pass_yield == 1.0 and nt.rework.first_pass_yield == 1.0
    assert al.rework.seconds > truth.failed * 0.5  # each redelivery came 0.5-1.5 s after its failure
    assert al.throughput_in_per_s == pytest.approx(truth.ticks / WINDOW)
    codes = {(c.code, c.stage) for c in lm.checks}
    assert ("rework", "alerting") in codes
    assert not any(c.code == "incomplete-traces" for c in lm.checks)  # 70% stop at alerting: complete


def test_inventory_and_utilisation(mapped) -> None:  # type: ignore[no-untyped-def]
    lm, truth = mapped
    nt = lm.flow.of("notification")
    inv = nt.inventory
    mean = truth.notify_waits.sum() / WINDOW
    assert inv.mean == pytest.approx(mean, rel=0.02)
    assert inv.little == pytest.approx(mean, rel=0.02)
    assert inv.peak == true_peak(truth.notify_arrive, truth.notify_arrive + truth.notify_waits)
    assert inv.peak_resolution == 0.0
    known = [h for h in inv.hourly if h is not None]
    assert len(known) == 1 and known[0] == pytest.approx(mean, rel=0.02)
    u = nt.utilisation
    assert (u.workers, u.workers_source) == (1, "service.instance.id")
    assert u.value == pytest.approx(truth.notify_busy_s / WINDOW, rel=0.02)
    assert u.capacity_per_s == pytest.approx(truth.alerts / truth.notify_busy_s, rel=0.02)
    assert lm.flow.of("alerting").utilisation.workers == 2
    al_inv = lm.flow.of("alerting").inventory
    assert al_inv.mean == pytest.approx(truth.alert_wait_s / WINDOW, rel=0.02)
    assert lm.flow.of("market-data").inventory is None  # a first stage: no hand-over to wait from
    assert not any(c.code in ("little-disagrees", "workers-unknown") for c in lm.checks)


def test_partitions_add_up_to_the_whole() -> None:
    batch, truth = chain(n=1500, seed=3)
    window = (float(W0), W0 + WINDOW)
    whole = flow_sums(build_trace_table(batch, MATCHES, UPSTREAM), batch, MATCHES, UPSTREAM, window)
    odd = (batch.trace_lo % 2).astype(bool)
    parts = [flow_sums(build_trace_table(b, MATCHES, UPSTREAM), b, MATCHES, UPSTREAM, window)
             for b in (batch.take(np.flatnonzero(odd)), batch.take(np.flatnonzero(~odd)))]
    merged = FlowSums.merge(parts)
    assert merged is not None
    for name, w in whole.stages.items():
        m = merged.stages[name]
        assert (m.items_in, m.out, m.failed, m.retried, m.waits) == (w.items_in, w.out, w.failed, w.retried, w.waits)
        assert m.wait_s == pytest.approx(w.wait_s) and m.process_s == pytest.approx(w.process_s)
        assert np.array_equal(m.grid, w.grid) and m.peak is None
        assert np.cumsum(m.grid).max(initial=0) <= w.peak  # the grid's peak: a lower bound
    assert merged.completed == whole.completed == truth.alerts


def test_missing_spans_and_unknown_workers_are_checks() -> None:
    batch, truth = chain(n=600, seed=5)
    keep = ~((batch.service == "alerting") & (batch.trace_lo <= 60))  # 60 items lose alerting's spans
    cols = {k: v[keep] for k, v in batch.columns().items()}
    cols["instance"] = np.where(cols["service"] == "notification", None, cols["instance"])
    lm = build_map(loads_spec(SPEC), Window(W0, W0 + WINDOW), collectors={"spans": Spans(SpanBatch.from_columns(cols))})
    codes = {(c.code, c.stage) for c in lm.checks}
    assert ("incomplete-traces", "alerting") in codes  # items reach notification without alerting
    assert ("workers-unknown", "notification") in codes
    assert lm.flow.of("notification").utilisation is None
    assert lm.flow.of("alerting").items_in == truth.ticks - 60
    assert ("consumers-without-producer", "notification") in codes


def test_partitioned_route_gives_the_in_memory_counts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A spool window analysed partition by partition: every count and sum as in memory, the
    peak only where its bounds meet (else none, and a check gives the bounds)."""
    from collectors.spool.store import Spool, SpoolLimits
    from mapper.app.gather import traces_at
    from mapper.app.trace_side import collect_traces

    batch, truth = chain(n=800, seed=11, split=True)
    root = tmp_path / "spool"
    with Spool(root, SpoolLimits(retention_days=None), compact=False) as s:
        s.append(batch)
    window = Window(W0, W0 + WINDOW)
    text = SPEC.replace("/nonexistent", str(root))
    memory = collect_traces(loads_spec(text), window, traces_at(str(root)))
    parted = loads_spec(text + "engine: {kind: local, partition_spans: 1000, memory_budget: 0}\n")
    merged = collect_traces(parted, window, traces_at(str(root)))
    assert any(c.code == "traces-partitioned" for c in merged.checks)
    assert merged.items_completed == memory.items_completed == truth.alerts
    for name, m in memory.flow.items():
        p = merged.flow[name]
        assert (p.items_in, p.items_out, p.stopped, p.handovers) == (m.items_in, m.items_out, m.stopped, m.handovers)
        assert astuple(p.rework) == pytest.approx(astuple(m.rework))
        if m.inventory is not None:
            assert p.inventory.mean == pytest.approx(m.inventory.mean)
            # bounds that do not meet give no peak (the check says between what), never a lower bound
            assert p.inventory.peak is None and p.inventory.peak_resolution > 0
        assert astuple(p.utilisation) == pytest.approx(astuple(m.utilisation))
    assert any(c.code == "inventory-peak-sampled" for c in merged.checks)


def test_sdk_spans_stop_at_alerting_complete_and_failures_count(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Real OpenTelemetry SDK spans (OTLP protobuf): 40 ticks, 10 go on to notification, one
    alerting delivery fails (status ERROR) and is redelivered on the same producer span."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, Status, StatusCode

    from mapper.app.gather import traces_at
    from mapper.app.trace_side import collect_traces

    exporter = InMemorySpanExporter()
    t = {}
    for svc in ("market-data", "alerting", "notification"):
        p = TracerProvider(resource=Resource.create({"service.name": svc}))
        p.add_span_processor(SimpleSpanProcessor(exporter))
        t[svc] = p.get_tracer("test")
    ms = 1_000_000
    for i in range(40):
        s0 = (W0 + 10 + i) * 1_000_000_000
        tick = t["market-data"].start_span("tick", kind=SpanKind.SERVER, start_time=s0)
        pub = t["market-data"].start_span("ticks publish", trace.set_span_in_context(tick), SpanKind.PRODUCER,
                                          start_time=s0 + ms)
        pub.end(s0 + 2 * ms)
        tick.end(s0 + 2 * ms)
        c0 = s0 + 5 * ms
        if i == 3:
            bad = t["alerting"].start_span("ticks process", trace.set_span_in_context(pub), SpanKind.CONSUMER,
                                           start_time=c0)
            bad.set_status(Status(StatusCode.ERROR))
            bad.end(c0 + ms)
            c0 += 100 * ms
        con = t["alerting"].start_span("ticks process", trace.set_span_in_context(pub), SpanKind.CONSUMER,
                                       start_time=c0)
        if i % 4 == 0:
            enq = t["alerting"].start_span("alerts publish", trace.set_span_in_context(con), SpanKind.PRODUCER,
                                           start_time=c0 + ms)
            enq.end(c0 + 2 * ms)
            t["notification"].start_span("send", trace.set_span_in_context(enq), SpanKind.CONSUMER,
                                         start_time=c0 + 10 * ms).end(c0 + 20 * ms)
        con.end(c0 + 2 * ms)
    path = tmp_path / "spans.binpb"
    path.write_bytes(encode_spans(exporter.get_finished_spans()).SerializeToString())
    got = collect_traces(loads_spec(SPEC.replace("/nonexistent", str(path))), Window(W0, W0 + WINDOW),
                         traces_at(str(path)))
    al, nt = got.flow["alerting"], got.flow["notification"]
    assert (al.items_in, al.items_out, al.stopped, nt.items_in) == (40, 10, 30, 10)
    assert (al.rework.failed, al.rework.retried, al.rework.first_pass_yield) == (1, 1, 39 / 40)
    assert al.rework.seconds == pytest.approx(0.1)
    assert got.items_completed == 10
    codes = {(c.code, c.stage) for c in got.checks}
    assert not any(c.code == "incomplete-traces" for r in got.results.values() for c in r.checks)
    # the SDK gives each provider's resource a service.instance.id: one worker per stage here
    assert ("workers-unknown", "alerting") not in codes
    assert al.utilisation is not None and al.utilisation.workers == 1


def test_spec_workers_set_the_utilisation_and_bad_ones_name_their_line() -> None:
    from mapper.core.errors import SpecError

    batch, truth = chain(n=300, seed=2)
    text = SPEC.replace("service: notification}}", "service: notification}, workers: 3}")
    lm = build_map(loads_spec(text), Window(W0, W0 + WINDOW), collectors={"spans": Spans(batch)})
    u = lm.flow.of("notification").utilisation
    assert (u.workers, u.workers_source) == (3, "spec")
    assert u.value == pytest.approx(truth.notify_busy_s / WINDOW / 3)
    with pytest.raises(SpecError, match=r":7.*workers: must be a whole number from 1 to"):
        loads_spec(SPEC.replace("service: notification}}", "service: notification}, workers: 0}"))
