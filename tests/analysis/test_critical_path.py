"""The critical path of fan-out items, on spans whose answer is known by construction:
A hands each item to B and C in parallel, D waits for both; C is always the slow branch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mapper.analysis.critical_path import critical_path, decided_by, upstreams
from mapper.analysis.traces import StageMatch, build_trace_table
from mapper.core.spans import SpanBatch
from mapper.core.spec import loads_spec
from tests.analysis.test_slices import schema_problems

N = 4_000
MS = 1_000_000

SPEC = """\
name: fanout
sources: {spans: {kind: traces, path: /nonexistent}}
stages:
  - {name: a, traces: {source: spans, service: a}}
  - {name: b, upstream: a, traces: {source: spans, service: b}}
  - {name: c, upstream: a, traces: {source: spans, service: c}}
  - {name: d, upstream: [b, c], traces: {source: spans, service: d}}
"""


def _fanout(seed: int, c_ms: float = 20.0) -> SpanBatch:
    """a (2 ms) -> b (3 ms, 2% of items +10 ms) || c (``c_ms``, 1% of items +200 ms) -> d (2 ms),
    d starting 1 ms after the later of b and c."""
    rng = np.random.default_rng(seed)
    i = np.arange(N)
    t0 = 1_790_000_000 * 10**9 + i * 50 * MS
    a_end = t0 + 2 * MS
    b0 = a_end + (1 + rng.random(N)) * MS
    b_end = b0 + (3 + (rng.random(N) < 0.02) * 10 + rng.normal(0, 0.1, N)) * MS
    c0 = a_end + (1 + rng.random(N)) * MS
    c_end = c0 + (c_ms + (rng.random(N) < 0.01) * 200 + rng.normal(0, 0.1, N)) * MS
    d0 = np.maximum(b_end, c_end) + 1 * MS
    d_end = d0 + 2 * MS
    starts = [t0, b0, c0, d0]
    ends = [a_end, b_end, c_end, d_end]
    cols = {
        "trace_hi": np.zeros(4 * N, np.uint64), "trace_lo": np.tile(i + 1, 4).astype(np.uint64),
        "span_id": np.concatenate([i * 4 + k + 1 for k in range(4)]).astype(np.uint64),
        "parent_id": np.zeros(4 * N, np.uint64),
        "service": np.repeat(np.array(list("abcd"), dtype=object), N),
        "start_ns": np.concatenate(starts).astype(np.int64), "end_ns": np.concatenate(ends).astype(np.int64),
        "kind": np.full(4 * N, 2, np.int8),
    }
    return SpanBatch.from_columns(cols)


def _table(seed: int = 3, c_ms: float = 20.0):  # type: ignore[no-untyped-def]
    # the trace table takes one upstream per stage (a join's first); the DAG comes from the spec
    return build_trace_table(_fanout(seed, c_ms), [StageMatch(s, s) for s in "abcd"],
                             {"a": None, "b": "a", "c": "a", "d": "b"})


def test_slow_branch_holds_the_critical_path_and_the_fast_one_nothing() -> None:
    ups = upstreams(loads_spec(SPEC).stages)
    assert ups == {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}
    r = critical_path(_table(), ups, 0.99)
    assert r.kind == "critical_path" and r.items == N and r.tail_items >= 40
    assert r.share_of("b") == 0.0
    assert r.share_of("c") > 0.9
    assert r.shares[0].stage == "c" and r.shares[0].part == "process"
    assert r.paths[0] == (("a", "c", "d"), r.tail_items)
    by = {b.upstream: b for b in r.branches}
    assert by["c"].share == 1.0 and by["b"].decided == 0
    per_item = decided_by(_table(), ups)
    assert len(per_item) == N and set(per_item["d"]) == {"c"}
    assert by["b"].slack is not None and by["b"].slack > 0.15  # the tail's c took 200 ms more
    # the join's wait on the path is from c's hand-over (1 ms), not from b's (the table's)
    d_wait = next(s for s in r.shares if s.stage == "d" and s.part == "wait")
    assert d_wait.seconds == pytest.approx(0.001, rel=1e-3)
    shares = sum(s.share for s in r.shares)
    assert shares == pytest.approx(1.0)
    assert "a -> c -> d" in r.verdict and "at d, c arrived last in 100%" in r.verdict
    json.dumps(r.to_json(), allow_nan=False)
    assert schema_problems(r.to_json(), "critical_path_explanation") == []


def test_a_branch_that_decides_some_items_shares_the_path() -> None:
    # c at 3 ms like b: either branch may arrive last; the 200 ms tail is all c's, b's 10 ms bumps
    # decide the items they hit, and neither is blamed for the other's items
    r = critical_path(_table(5, c_ms=3.0), upstreams(loads_spec(SPEC).stages), 0.99)
    assert r.share_of("c") > r.share_of("b") >= 0.0
    whole = critical_path(_table(5, c_ms=3.0), upstreams(loads_spec(SPEC).stages), 0.0)
    by = {b.upstream: b.share for b in whole.branches}
    assert by["b"] + by["c"] == pytest.approx(1.0) and min(by.values()) > 0.2


def test_no_complete_item_says_so() -> None:
    table = _table()
    cut = table.frame[table.frame["stage"] != "d"]
    from dataclasses import replace
    r = critical_path(replace(table, frame=cut), upstreams(loads_spec(SPEC).stages))
    assert r.items == 0 and r.verdict == "no item passes every stage"
    assert [c.code for c in r.checks] == ["critical-path-incomplete"]


def test_upstreams_handing_over_at_the_same_instant_are_said_to_tie() -> None:
    """b and c end together (timestamps of coarse resolution): whichever is credited did not
    decide alone, and a check says how many tail items tie."""
    batch = _fanout(5)
    cols = batch.columns()
    end = cols["end_ns"].copy()
    end[2 * N:3 * N] = end[N:2 * N]  # c ends exactly when b does
    cols["end_ns"] = end
    table = build_trace_table(SpanBatch.from_columns(cols), [StageMatch(s, s) for s in "abcd"],
                              {"a": None, "b": "a", "c": "a", "d": "b"})
    got = critical_path(table, upstreams(loads_spec(SPEC).stages), 0.99)
    ties = [c for c in got.checks if c.code == "critical-path-ties"]
    assert len(ties) == 1 and ties[0].stage == "d" and f"of {got.tail_items:,} tail item(s)" in ties[0].message
    assert not [c for c in critical_path(_table(), upstreams(loads_spec(SPEC).stages), 0.99).checks
                if c.code == "critical-path-ties"]
