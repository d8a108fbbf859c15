"""The self-time kernel's one-sweep path (stage counts packed into one running sum, fields
read back from value-sorted keys) against the per-stage sweep it replaces, and the scatter
grouping against the stable sort: the same seconds and rows, to the bit."""

from __future__ import annotations

import numpy as np
import pytest

from mapper.analysis import stage_time
from mapper.analysis.sorting import stable_order


def _spans(seed: int, n_traces: int = 400, per: int = 12, n_st: int = 4) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    trace = np.repeat(np.arange(n_traces), per)
    stage = rng.integers(0, n_st, trace.size)
    start = 1_700_000_000_000_000_000 + rng.integers(0, 50, trace.size) * 1_000_000  # many equal instants
    end = start + rng.integers(0, 30, trace.size) * 1_000_000  # nested, overlapping, zero-length
    tmin = np.full(n_traces, np.iinfo(np.int64).max)
    np.minimum.at(tmin, trace, start)
    return trace, stage, start, end, tmin


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_sweep_equals_the_per_stage_sweep(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    trace, stage, start, end, tmin = _spans(seed)
    fast = stage_time.self_time(trace, stage, start, end, 4, 400, tmin)
    monkeypatch.setattr(stage_time, "_field_bits", lambda *a: 0)
    slow = stage_time.self_time(trace, stage, start, end, 4, 400, tmin)
    assert np.array_equal(fast, slow) and fast.sum() > 0


def test_a_span_ending_before_it_starts_takes_the_per_stage_sweep() -> None:
    trace, stage, start, end, _ = _spans(4)
    end[3] = start[3] - 1
    assert stage_time._field_bits(trace, stage, start, end, 4) == 0


def test_scatter_groups_equal_the_sorted_groups() -> None:
    trace, stage, start, end, tmin = _spans(5)
    grp = trace * 4 + stage
    dense = stage_time.stage_groups(grp, 1600, start, end, tmin[trace])
    sparse = stage_time.stage_groups(grp, 10**7, start, end, tmin[trace])  # too sparse: the sort
    for a, b in zip(dense, sparse, strict=True):
        assert np.array_equal(a, b)


def test_a_span_that_ends_before_it_starts_leaves_other_traces_alone() -> None:
    """Trace 1's span ending before trace 1's first start once sorted its end event into
    trace 0's keys, and trace 0's 100 ns of self time read as 0."""
    trace, stage = np.array([0, 1, 1]), np.array([0, 0, 1])
    start, end = np.array([0, 1000, 1050]), np.array([100, 1100, 10])
    both = stage_time.self_time(trace, stage, start, end, 2, 2, np.array([0, 1000]))
    alone = stage_time.self_time(trace[:1], stage[:1], start[:1], end[:1], 2, 1, np.array([0]))
    assert np.array_equal(both[:, :1], alone) and alone[0, 0] > 0


@pytest.mark.parametrize("key", [
    np.array([], np.int64), np.array([7], np.uint64), np.tile(np.array([np.iinfo(np.int64).min, -1, 0, 1,
                                                                        np.iinfo(np.int64).max]), 12_000),
    np.tile(np.array([np.iinfo(np.uint64).max, 0, 2**63, 2**63 - 1, 5], np.uint64), 12_000)])
def test_stable_order_at_the_integer_extremes(key: np.ndarray) -> None:
    assert np.array_equal(stable_order(key), np.argsort(key, kind="stable"))


@pytest.mark.parametrize("bits", [None, 5, 40])
def test_stable_order_is_numpys_stable_argsort(bits: int | None) -> None:
    rng = np.random.default_rng(6)
    key = rng.integers(0, 2 ** (bits or 62), 120_000) - (2**61 if bits is None else 0)
    key[::5] = key[::3][: key[::5].size]  # ties
    assert np.array_equal(stable_order(key, bits), np.argsort(key, kind="stable"))
