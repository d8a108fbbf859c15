"""Utilisation from traces when a worker serves several items at once (issue 27's review): the
summed process time exceeds the worker's busy time, so from instances busy time is the union
of each instance's span intervals (never above 1); with the spec's workers it is the summed
time, and more than the workers can give is a check and no number, never a clamp; merged from
partitions the union is an upper bound, said in a check."""

from __future__ import annotations

import numpy as np
import pytest

from mapper.analysis.flow import FlowSums, flow_sums
from mapper.analysis.flow_checks import traced_flows
from mapper.analysis.traces import StageMatch, build_trace_table
from mapper.core.spans import KIND_CONSUMER, KIND_PRODUCER, SpanBatch

NS = 1_000_000_000
W0 = 1_790_000_000.0
WINDOW = (W0, W0 + 3600.0)
MATCHES = [StageMatch("intake", "intake"), StageMatch("worker", "worker")]
UPSTREAM = {"intake": None, "worker": "intake"}
N, EVERY, LASTS = 6000, 0.5, 2.0  # an item every 0.5 s for 3000 s, each served 2 s: four at once


def _batch() -> SpanBatch:
    i = np.arange(N)
    t = W0 + 10 + i * EVERY
    two = np.repeat(i, 2)
    first = np.tile([True, False], N)
    start = np.where(first, t[two], t[two] + 0.01)
    end = np.where(first, t[two] + 0.001, t[two] + 0.01 + LASTS)
    return SpanBatch.from_columns({
        "trace_hi": np.zeros(2 * N, np.int64), "trace_lo": two + 1, "span_id": np.arange(2 * N) + 1,
        "parent_id": np.where(first, 0, np.arange(2 * N)), "link_trace_hi": np.zeros(2 * N, np.int64),
        "link_trace_lo": np.zeros(2 * N, np.int64), "link_span_id": np.zeros(2 * N, np.int64),
        "start_ns": np.round(start * NS).astype(np.int64), "end_ns": np.round(end * NS).astype(np.int64),
        "kind": np.where(first, KIND_PRODUCER, KIND_CONSUMER), "status": np.zeros(2 * N, np.int64),
        "service": np.where(first, "intake", "worker").astype(object), "name": np.full(2 * N, "op", object),
        "instance": np.where(first, "in-1", "w-1").astype(object), "exceptions": np.zeros(2 * N, np.int64)})


def _flow(sums: FlowSums, workers: int | None = None):  # type: ignore[no-untyped-def]
    flows, checks = traced_flows(sums, {"intake": ["worker"], "worker": []}, {"worker": workers})
    return flows["worker"].utilisation, {c.code for c in checks if c.stage == "worker"}


@pytest.fixture(scope="module")
def batch() -> SpanBatch:
    return _batch()


def test_an_instance_serving_four_items_at_once_is_busy_once(batch: SpanBatch) -> None:
    sums = flow_sums(build_trace_table(batch, MATCHES, UPSTREAM), batch, MATCHES, UPSTREAM, WINDOW)
    u, codes = _flow(sums)
    busy = (N - 1) * EVERY + LASTS  # one long busy stretch
    assert sums.stages["worker"].process_s == pytest.approx(N * LASTS)  # 12,000 s summed: 3.3x the window
    assert (u.workers, u.workers_source) == (1, "service.instance.id")
    assert u.busy_seconds == pytest.approx(busy) and u.value == pytest.approx(busy / 3600)
    assert u.value <= 1 and u.peak_hour <= 1
    assert u.capacity_per_s == pytest.approx(N / busy)  # what it finished per busy second
    assert not codes & {"workers-too-few", "utilisation-upper-bound"}


def test_spec_workers_too_few_for_the_summed_time_give_no_utilisation(batch: SpanBatch) -> None:
    sums = flow_sums(build_trace_table(batch, MATCHES, UPSTREAM), batch, MATCHES, UPSTREAM, WINDOW)
    u, codes = _flow(sums, workers=1)
    assert u.value is None and u.capacity_per_s is None and u.busy_seconds == pytest.approx(N * LASTS)
    assert "workers-too-few" in codes
    u4, codes4 = _flow(sums, workers=4)  # four slots: the summed time fits
    assert u4.value == pytest.approx(N * LASTS / (4 * 3600)) and "workers-too-few" not in codes4


def test_merged_partitions_give_an_upper_bound_or_no_number_never_less(batch: SpanBatch) -> None:
    memory = flow_sums(build_trace_table(batch, MATCHES, UPSTREAM), batch, MATCHES, UPSTREAM, WINDOW)
    odd = (batch.trace_lo % 2).astype(bool)
    parts = [batch.take(np.flatnonzero(m)) for m in (odd, ~odd)]
    merged = FlowSums.merge([flow_sums(build_trace_table(b, MATCHES, UPSTREAM), b, MATCHES, UPSTREAM, WINDOW)
                             for b in parts])
    assert merged is not None
    assert merged.stages["worker"].union_s >= memory.stages["worker"].union_s
    u, codes = _flow(merged)
    assert "utilisation-upper-bound" in codes
    # each half alone is busy ~3000 s: 6000 s merged, more than one worker can be
    assert u.value is None and "workers-too-few" in codes
