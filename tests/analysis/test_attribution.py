"""Tail attribution, time shares and baselines on data whose answer is known by construction."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mapper.analysis.attribution import Contribution, TailAttribution, attribute, shares
from mapper.analysis.baseline import compare, load_baseline
from mapper.analysis.findings import find
from mapper.analysis.latency import MapInput, analyse
from mapper.analysis.traces import StageMatch, build_trace_table
from mapper.core.distribution import HistogramDistribution
from mapper.core.errors import UsageError
from mapper.core.model import MeasurementResult, Window
from mapper.core.spans import SpanBatch
from mapper.core.spec import loads_spec
from mapper.render.report import to_json
from mapper.render.sections import attribution_lines

N = 20_000
MS = 1_000_000

SPEC = """\
name: chain
sources: {spans: {kind: traces, path: /nonexistent}, prom: {kind: prometheus, url: "http://127.0.0.1:9"}}
stages:
  - {name: a, owner: x, traces: {source: spans, service: a}}
  - {name: b, owner: y, traces: {source: spans, service: b}}
  - {name: c, owner: z, traces: {source: spans, service: c}}
"""

METRIC_SPEC = """\
name: chain
sources: {prom: {kind: prometheus, url: "http://127.0.0.1:9"}}
stages:
  - {name: a, owner: x, process: {source: prom, histogram: a_seconds}}
  - {name: b, owner: y, wait: {source: prom, histogram: bw_seconds}, process: {source: prom, histogram: b_seconds}}
  - {name: c, owner: z, process: {source: prom, histogram: c_seconds}}
"""


def _chain(seed: int, b_wait_tail: bool = True) -> SpanBatch:
    """a (process ~2 ms) -> [wait, only b's has a 1% tail of +200 ms] -> b (~3 ms) -> c (~4 ms)."""
    rng = np.random.default_rng(seed)
    i = np.arange(N)
    a_p = (2 + rng.normal(0, 0.05, N)) * MS
    b_w = (1 + rng.normal(0, 0.05, N) + (rng.random(N) < 0.01) * 200 * b_wait_tail) * MS
    b_p = (3 + rng.normal(0, 0.05, N)) * MS
    c_w = (0.5 + rng.normal(0, 0.02, N)) * MS
    c_p = (4 + rng.normal(0, 0.05, N)) * MS
    t0 = 1_790_000_000 * 10**9 + i * 10 * MS
    a_end = t0 + a_p.astype(np.int64)
    b0 = a_end + b_w.astype(np.int64)
    b_end = b0 + b_p.astype(np.int64)
    c0 = b_end + c_w.astype(np.int64)
    c_end = c0 + c_p.astype(np.int64)
    cols = {
        "trace_hi": np.zeros(3 * N, np.uint64), "trace_lo": np.tile(i + 1, 3).astype(np.uint64),
        "span_id": np.concatenate([i * 3 + 1, i * 3 + 2, i * 3 + 3]).astype(np.uint64),
        "parent_id": np.zeros(3 * N, np.uint64),
        "service": np.repeat(np.array(["a", "b", "c"], dtype=object), N),
        "start_ns": np.concatenate([t0, b0, c0]), "end_ns": np.concatenate([a_end, b_end, c_end]),
        "kind": np.full(3 * N, 2, np.int8),
    }
    return SpanBatch.from_columns(cols)


def _traced_map(seed: int = 1, b_wait_tail: bool = True):  # type: ignore[no-untyped-def]
    from mapper.analysis.traces import part_results
    from mapper.core.distribution import SampleDistribution

    spec = loads_spec(SPEC)
    table = build_trace_table(_chain(seed, b_wait_tail), [StageMatch(s, s) for s in "abc"],
                              {"a": None, "b": "a", "c": "b"})
    results = {}
    for s in "abc":
        for part, r in part_results(table, s, "test").items():
            results[(s, part)] = r
    totals = {s: SampleDistribution(table.totals(s)) for s in "abc"}
    return analyse(spec, Window(0, 4e9), MapInput(results, table, totals=totals))


def test_the_only_tail_cause_is_found_from_traces() -> None:
    lm = _traced_map()
    assert lm.end_to_end_method == "traces"
    p99, p9999 = attribute(lm)
    top = p99.contributions[0]
    assert (top.stage, top.part) == ("b", "wait")
    assert top.share > 0.95
    assert p99.extra_seconds == pytest.approx(0.2, rel=0.05)
    assert p99.headline().startswith("p99 items spend +")
    assert "of that is the b wait" in p99.headline()
    assert p9999.note and "indicative" in p9999.note  # 2 items in the p99.99 tail of 20,000


def test_time_shares_and_stage_flow_efficiency() -> None:
    lm = _traced_map()
    by = {s.stage: s for s in shares(lm)}
    # median item: lead ~ 2 + 1 + 3 + 0.5 + 4 = 10.5 ms
    assert by["c"].process_share_p50 == pytest.approx(4 / 10.5, rel=0.03)
    assert by["b"].wait_share_p99 > 0.9  # tail items wait in front of b
    assert by["a"].flow_efficiency == pytest.approx(1.0)
    assert by["b"].flow_efficiency == pytest.approx(3 / (3 + 1 + 0.01 * 200), rel=0.05)  # mean wait has the tail


def _hist(x: np.ndarray, bounds: list[float]) -> HistogramDistribution:
    return HistogramDistribution.from_cumulative(bounds, [(x <= b).sum() for b in bounds], sum=float(x.sum()))


def _metric_map(slow_b: float = 1.0, seed: int = 2, bounds: list[float] | None = None):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    b = bounds or [0.001, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, math.inf]
    parts = {
        ("a", "process"): rng.lognormal(math.log(0.002), 0.1, N),
        ("b", "wait"): rng.lognormal(math.log(0.001), 0.1, N) + (rng.random(N) < 0.02) * 0.2,
        ("b", "process"): rng.lognormal(math.log(0.003), 0.1, N) * slow_b,
        ("c", "process"): rng.lognormal(math.log(0.004), 0.1, N),
    }
    results = {k: MeasurementResult(_hist(v, b), "test") for k, v in parts.items()}
    return analyse(loads_spec(METRIC_SPEC), Window(0, 86400), MapInput(results))


def test_metrics_attribution_is_an_approximation_that_finds_the_tail_hop() -> None:
    p99 = attribute(_metric_map())[0]
    assert p99.method == "metrics approximation" and "approximation" in (p99.note or "")
    assert (p99.contributions[0].stage, p99.contributions[0].part) == ("b", "wait")
    assert p99.headline().endswith("(approximation from metrics)")


def test_coarse_buckets_are_flagged() -> None:
    lm = _metric_map(bounds=[0.001, 0.1, 10, math.inf])
    coarse = [c for c in lm.checks if c.code == "bucket-too-coarse"]
    assert coarse and any(c.stage == "b" for c in coarse)


def test_baseline_flags_a_real_regression_and_not_noise(tmp_path: Path) -> None:
    before = tmp_path / "before.json"
    before.write_text(json.dumps(to_json(_metric_map(seed=2))))
    same = compare(_metric_map(seed=3), load_baseline(before, "chain"), str(before))
    assert same.changes == ()  # another sample of the same distributions: inside the noise
    slower = compare(_metric_map(slow_b=2.0, seed=3), load_baseline(before, "chain"), str(before))
    assert [(c.what, c.kind) for c in slower.regressions][:1] == [("b process", "regression")]
    assert 1.5 < slower.regressions[0].ratio < 3  # 2x slower, seen through bucket estimates
    f = find(_metric_map(slow_b=2.0, seed=3), str(before))
    doc = to_json(_metric_map(slow_b=2.0, seed=3), f)
    assert doc["comparison"]["regressions"][0]["what"] == "b process"
    assert "regression" in {c["code"] for c in doc["checks"]}


def test_baseline_of_another_stream_or_schema_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema_version": 1, "stream": "payments"}))
    with pytest.raises(UsageError, match="a baseline of stream 'payments', not 'chain'"):
        load_baseline(other, "chain")
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"schema_version": 0, "stream": "chain"}))
    with pytest.raises(UsageError, match="schema 0"):
        load_baseline(old, "chain")
    with pytest.raises(UsageError, match="baseline not found"):
        load_baseline(tmp_path / "missing.json", "chain")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(UsageError, match=r"bad.json:1: baseline is not JSON"):
        load_baseline(bad, "chain")


def test_differences_keep_their_sign_and_overlapping_parts_are_all_named() -> None:
    neg = Contribution("http", "process", -44.1e-6, -0.01)
    tail = TailAttribution(0.99, "traces", 0.1, 50, (Contribution("a", "wait", 0.1, 1.0), neg))
    assert attribution_lines([tail])[2] == "  http process: -44.1µs (shorter in the tail)"
    less = TailAttribution(0.99, "traces", -0.0285, 50, (neg,))
    assert less.headline() == "p99 items spend 28.5ms less than median ones; no part takes longer in the tail"
    tied = TailAttribution(0.99, "metrics approximation", 0.15, 0, (
        Contribution("alerting", "process", 0.09, 0.6, 0.0, 0.1),
        Contribution("http", "process", 0.06, 0.4, 0.05, 0.07)))
    assert "the largest part is the alerting process or http process: intervals overlap" in tied.headline()
