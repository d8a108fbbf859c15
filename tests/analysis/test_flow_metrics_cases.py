"""The metered flow's rules on read values (no server: what a source would answer, as
:mod:`mapper.core.flowread` values): merged handovers, Little's law, a growing queue, workers
the busy time exceeds, errors and retries together, the hour-of-day profile."""

from __future__ import annotations

import math

import numpy as np

from mapper.analysis.flow_metrics import metered_flow, stream_of
from mapper.core.distribution import HistogramDistribution
from mapper.core.flowread import CounterRead, FlowReads, GaugeRead
from mapper.core.model import MeasurementResult, Window
from mapper.core.spec import loads_spec

END = 1_700_002_800.0  # a whole hour
WINDOW = Window(END - 7200, END)
SPEC = """
name: cases
sources:
  prom: {kind: prometheus, url: http://127.0.0.1:1}
stages:
  - name: a
    process: {source: prom, histogram: a_seconds}
    workers: 1
  - name: b
    upstream: a
    wait: {source: prom, histogram: b_wait_seconds}
    process: {source: prom, histogram: b_seconds}
    errors: {source: prom, counter: b_failed_total}
    retries: {source: prom, counter: b_retried_total}
    inventory: {source: prom, gauge: b_depth}
    workers: 2
  - name: c
    process: {source: prom, histogram: c_seconds}
  - name: d
    upstream: [b, c]
    process: {source: prom, histogram: d_seconds}
"""


def _hist(count: float, mean: float) -> MeasurementResult:
    return MeasurementResult(HistogramDistribution.from_cumulative([math.inf], [count], sum=count * mean), "test")


def _gauge(values: np.ndarray) -> GaugeRead:
    t = WINDOW.start + 15.0 * np.arange(1, values.size + 1)
    return GaugeRead(t, values, values, 15.0, "b_depth every 15s")


def _run(depth: np.ndarray, a_mean: float = 0.5):  # type: ignore[no-untyped-def]
    spec = loads_spec(SPEC)
    results = {("a", "process"): _hist(7200, a_mean), ("b", "wait"): _hist(7000, 2.0),
               ("b", "process"): _hist(7000, 0.1), ("c", "process"): _hist(100, 0.1),
               ("d", "process"): _hist(3000, 0.1)}
    reads = FlowReads(errors={"b": CounterRead(70.0, "b_failed_total")},
                      retries={"b": CounterRead(50.0, "b_retried_total")},
                      inventory={"b": _gauge(depth)})
    flows, checks = metered_flow(spec, WINDOW, results, reads)
    return flows, {c.code: c for c in checks}, stream_of(spec, flows)


def test_rate_times_wait_agrees_with_a_steady_gauge_and_the_hour_profile_has_two_hours() -> None:
    flows, codes, _ = _run(np.full(480, 2.0))  # 7000 / 7200 s x 2 s = 1.94 waiting
    inv = flows["b"].inventory
    assert inv is not None and inv.mean == 2.0 and inv.little is not None and abs(inv.little - 1.944) < 1e-3
    assert "little-disagrees" not in codes and "inventory-growing" not in codes
    assert [h for h in inv.hourly if h is not None] == [2.0, 2.0]
    assert inv.hourly.index(2.0) == int((WINDOW.start // 3600) % 24)


def test_a_gauge_far_from_rate_times_wait_and_growing_gets_checks() -> None:
    _, codes, _ = _run(np.linspace(0, 40, 480))
    assert "little-disagrees" in codes and "inventory-growing" in codes


def test_a_next_stage_fed_by_two_stages_leaves_items_out_unknown() -> None:
    flows, codes, stream = _run(np.full(480, 2.0))
    b = flows["b"]
    assert b.items_out is None and b.yield_ is None and b.stopped is None
    assert "handover-merged" in codes
    assert stream is not None and stream.items_completed == 3000  # d is the one end
    assert [f.stage for f in stream.stages] == ["a", "b", "c", "d"]


def test_errors_and_retries_together_take_the_larger_as_a_bound() -> None:
    flows, codes, _ = _run(np.full(480, 2.0))
    r = flows["b"].rework
    assert r is not None and r.failed == 70 and r.retried == 50 and r.first_pass_yield == 1 - 70 / 7000
    assert "rework-bound" in codes and "rework" not in codes  # 99.0% is not below 99%


def test_busy_time_beyond_the_workers_gives_no_utilisation() -> None:
    flows, codes, _ = _run(np.full(480, 2.0), a_mean=1.5)  # 7200 x 1.5 s with one worker in 7200 s
    u = flows["a"].utilisation
    assert u is not None and u.value is None and u.busy_seconds == 10800
    assert "workers-too-few" in codes
    assert flows["a"].yield_ == 7000 / 7200 and flows["a"].stopped == 200
