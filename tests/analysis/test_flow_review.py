"""Issue 27's flow under review: inputs that gave a wrong number (a yield above 1, a peak-hour
utilisation above 1, an exported span copy counted as a redelivery, a variance made up for
a histogram with no finite bucket). Small values, no server."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mapper.analysis.flow import flow_sums
from mapper.analysis.flow_checks import traced_flows
from mapper.analysis.flow_metrics import metered_flow
from mapper.analysis.liveflow import open_handovers
from mapper.analysis.queueing import scv
from mapper.analysis.traces import StageMatch, build_trace_table, match_stages
from mapper.core.distribution import HistogramDistribution
from mapper.core.errors import DataError
from mapper.core.model import HourBuckets, MeasurementResult, Window
from mapper.core.spans import KIND_CLIENT, KIND_CONSUMER, KIND_PRODUCER, SpanBatch, SpanLinks
from mapper.core.spec import loads_spec

END = 1_700_002_800.0  # a whole hour
WINDOW = Window(END - 7200, END)
SPEC = """
name: review
sources:
  prom: {kind: prometheus, url: http://127.0.0.1:1}
stages:
  - name: a
    process: {source: prom, histogram: a_seconds}
    workers: 1
  - name: b
    upstream: a
    process: {source: prom, histogram: b_seconds}
"""


def _hist(count: float, mean: float) -> MeasurementResult:
    return MeasurementResult(HistogramDistribution.from_cumulative([math.inf], [count], sum=count * mean), "test")


def test_a_metered_stage_handing_on_more_than_it_took_in_has_no_yield() -> None:
    # items in flight across the window's edges: b counted 110 while a counted 100
    results = {("a", "process"): _hist(100, 0.1), ("b", "process"): _hist(110, 0.1)}
    flows, checks = metered_flow(loads_spec(SPEC), WINDOW, results)
    a = flows["a"]
    assert a.stopped is None and "flow-out-exceeds-in" in {c.code for c in checks}
    assert a.yield_ is None  # was 1.1
    assert all(h.share is None or h.share <= 1 for h in a.handovers)


def test_a_metered_peak_hour_beyond_the_workers_is_no_utilisation_but_a_check() -> None:
    # 7200 items at 0.9 s on one worker over two hours: 90% busy; but 6000 came in the first
    # hour: 150% of one worker in that hour, which no worker can be
    results = {("a", "process"): _hist(7200, 0.9), ("b", "process"): _hist(7000, 0.1)}
    hourly = {("a", "process"): [HourBuckets(END - 7200, {}, {math.inf: 6000.0}),
                                 HourBuckets(END - 3600, {}, {math.inf: 1200.0})]}
    flows, checks = metered_flow(loads_spec(SPEC), WINDOW, results, hourly=hourly)
    u = flows["a"].utilisation
    assert u is not None and u.value == pytest.approx(0.9)
    assert u.peak_hour is None or u.peak_hour <= 1  # was 1.5
    assert u.headroom is not None and u.headroom < 1
    assert "utilisation-high" in {c.code for c in checks if c.stage == "a"}


NS = 1_000_000_000
W0 = 1_790_000_000.0
MATCHES = [StageMatch("a", "a"), StageMatch("b", "b")]
UPSTREAM = {"a": None, "b": "a"}


def _batch(rows: list[tuple[int, int, int, float, float, int, str]], links: SpanLinks | None = None,
           status: list[int] | None = None) -> SpanBatch:
    """``(trace, span id, parent id, start, end, kind, service)`` per span."""
    tr, sid, pid, start, end, kind, service = (np.array(c) for c in zip(*rows, strict=True))
    n = len(rows)
    z = np.zeros(n, np.int64)
    return SpanBatch.from_columns({
        "trace_hi": z, "trace_lo": tr, "span_id": sid, "parent_id": pid, "link_trace_hi": z,
        "link_trace_lo": z, "link_span_id": z, "start_ns": np.round(start * NS).astype(np.int64),
        "end_ns": np.round(end * NS).astype(np.int64), "kind": kind,
        "status": z if status is None else np.array(status, np.int64),
        "service": service.astype(object), "name": np.full(n, "op", object),
        "instance": np.array([f"{s}-1" for s in service], object), "exceptions": z}, links=links)


def test_a_span_exported_twice_is_not_a_redelivery() -> None:
    # the live stream does not drop copies of a span (an exporter's retried request)
    b = _batch([(1, 1, 0, W0 + 10, W0 + 10.1, KIND_PRODUCER, "a"),
                (1, 2, 1, W0 + 11, W0 + 12, KIND_CONSUMER, "b"),
                (1, 2, 1, W0 + 11, W0 + 12, KIND_CONSUMER, "b")])
    table = build_trace_table(b, MATCHES, UPSTREAM)
    sums = flow_sums(table, b, MATCHES, UPSTREAM, (W0, W0 + 3600))
    flows, _ = traced_flows(sums, {"a": ["b"], "b": []}, {})
    r = flows["b"].rework
    assert flows["b"].items_in == 1
    assert r is not None and r.retried == 0 and r.first_pass_yield == 1.0  # was retried 1, %C&A 0


def test_a_histogram_with_every_count_above_its_last_bound_has_no_variance_to_model() -> None:
    d = HistogramDistribution.from_cumulative([1.0, math.inf], [0, 100], sum=400.0)
    with pytest.raises(DataError):
        scv(d)  # was cv² 0: a deterministic process made up


def test_a_batch_consumer_linked_to_three_producers_takes_in_three_items() -> None:
    # three ticks in traces of their own; one consumer span (a batch) links to each producer
    b = _batch([(1, 11, 0, W0 + 10, W0 + 10.1, KIND_PRODUCER, "a"),
                (2, 12, 0, W0 + 11, W0 + 11.1, KIND_PRODUCER, "a"),
                (3, 13, 0, W0 + 12, W0 + 12.1, KIND_PRODUCER, "a"),
                (9, 20, 0, W0 + 15, W0 + 16, KIND_CONSUMER, "b")],
               SpanLinks(np.array([3, 3, 3]), np.zeros(3, np.uint64), np.array([1, 2, 3], np.uint64),
                         np.array([11, 12, 13], np.uint64)))
    table = build_trace_table(b, MATCHES, UPSTREAM)
    sums = flow_sums(table, b, MATCHES, UPSTREAM, (W0, W0 + 3600))
    flows, _ = traced_flows(sums, {"a": ["b"], "b": []}, {})
    assert flows["a"].items_out == 3
    assert flows["b"].items_in == 3  # was 1: the three taken for one item redelivered three times
    r = flows["b"].rework
    assert r is not None and r.retried == 0 and r.first_pass_yield == 1.0
    assert sums.stages["b"].wait_s == pytest.approx(4.9 + 3.9 + 2.9, abs=1e-3)
    # one worker busy one second for the batch of three, not three seconds
    u = traced_flows(sums, {"a": ["b"], "b": []}, {"b": 1})[0]["b"].utilisation
    assert u is not None and u.busy_seconds == pytest.approx(1.0) and u.capacity_per_s == pytest.approx(3.0)


def _calls(status: list[int]):  # type: ignore[no-untyped-def]
    """One item; b's consumer span makes the same CLIENT call three times (statuses given)."""
    rows = [(1, 1, 0, W0 + 10, W0 + 10.1, KIND_PRODUCER, "a"), (1, 2, 1, W0 + 11, W0 + 14, KIND_CONSUMER, "b"),
            *[(1, 3 + i, 2, W0 + 11.5 + i, W0 + 11.9 + i, KIND_CLIENT, "b") for i in range(3)]]
    b = _batch(rows, status=[0, 0, *status])
    sums = flow_sums(build_trace_table(b, MATCHES, UPSTREAM), b, MATCHES, UPSTREAM, (W0, W0 + 3600))
    r = traced_flows(sums, {"a": ["b"], "b": []}, {})[0]["b"].rework
    assert r is not None
    return r


def test_the_same_call_made_three_times_without_a_failure_is_a_loop_not_a_retry() -> None:
    r = _calls([0, 0, 0])  # a query per recipient
    assert r.retried == 0 and r.first_pass_yield == 1.0 and r.seconds == 0  # was retried 1, %C&A 0


def test_the_same_call_made_again_after_it_failed_is_a_retry() -> None:
    r = _calls([2, 0, 0])
    assert r.retried == 1 and r.failed == 1 and r.first_pass_yield == 0.0 and r.seconds == pytest.approx(2.0)


def test_a_hand_over_exported_twice_is_one_item_waiting() -> None:
    # two ticks handed over, not taken yet; the first's PRODUCER span arrived twice
    b = _batch([(1, 1, 0, W0 + 10, W0 + 10.1, KIND_PRODUCER, "a"), (1, 1, 0, W0 + 10, W0 + 10.1, KIND_PRODUCER, "a"),
                (2, 3, 0, W0 + 11, W0 + 11.1, KIND_PRODUCER, "a")])
    pending, to = open_handovers(b, match_stages(b, MATCHES), MATCHES, UPSTREAM)
    assert int(np.bincount(to[pending], minlength=2)[1]) == 2  # was 3: the inventory gauge said 3 waiting


def test_a_next_stage_without_spans_gives_no_yield() -> None:
    """The spec's last stage matches no span (another service name, or its spans lost): what
    alerting handed on cannot be told from what stopped there, so no out, stopped or yield,
    and a check says why (not "yield 0, everything stopped")."""
    from mapper.app.pipeline import build_map
    from mapper.core.spec import loads_spec
    from tests.analysis.flow_chain import W0, WINDOW, chain
    from tests.analysis.test_flow import SPEC, Spans

    batch, truth = chain(n=300, seed=3)
    spec = loads_spec(SPEC.replace("service: notification", "service: notifier"))
    lm = build_map(spec, Window(W0, W0 + WINDOW), collectors={"spans": Spans(batch)})
    al = lm.flow.of("alerting")
    assert al.items_in == truth.ticks
    assert (al.items_out, al.stopped, al.yield_) == (None, None, None)
    assert any(c.code == "next-stage-no-spans" and c.stage == "alerting" for c in lm.checks)
    md = lm.flow.of("market-data")
    assert md.yield_ == 1.0  # its next stage has spans: unchanged
