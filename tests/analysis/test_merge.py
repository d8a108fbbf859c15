"""Partitions merged without gathering their values: the same percentiles, intervals and
counts as one SampleDistribution of every value, and partitions that keep items whole."""

from __future__ import annotations

import numpy as np
import pytest

from mapper.analysis.merge import (
    Summary,
    bin_bounds,
    bin_of,
    bins_for_ranks,
    merge_summaries,
    merged_samples,
    order_key,
    ranks_needed,
    values_in,
)
from mapper.analysis.partition import group_key, linked_groups, partition_of
from mapper.core.distribution import SampleDistribution

QS = (0.5, 0.9, 0.99, 0.999, 0.9999)


def _merge(parts: list[np.ndarray]):  # type: ignore[no-untyped-def]
    s = merge_summaries(Summary.of(p) for p in parts)
    ranks = ranks_needed(s.n, QS)
    bins = bins_for_ranks(s, ranks)
    return merged_samples(s, ranks, [values_in(p, bins) for p in parts])


@pytest.mark.parametrize("seed", range(40))
def test_merged_percentiles_are_identical_to_all_samples(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30_000))
    v = rng.lognormal(-4, 1.5, n) * np.where(rng.random(n) < 0.05, -1, 1)  # negative waits: clock skew
    if seed % 3 == 0:
        v = np.round(v, 4)  # ties across partitions
    parts = np.array_split(rng.permutation(v), int(rng.integers(1, 9)))
    merged, whole = _merge(parts), SampleDistribution(v)
    assert merged.count == whole.count
    assert merged.mean == pytest.approx(whole.mean, rel=1e-12)
    for q in QS:
        assert merged.quantile(q) == whole.quantile(q)


def test_bins_are_ordered_fine_and_bound_their_values() -> None:
    v = np.array([-2.0, -1e-9, -0.0, 0.0, 1e-9, 1e-3, 1.0, 1.003, 5e3])
    assert np.all(np.diff(order_key(v).astype(np.float64)) >= 0)
    lo, hi = bin_bounds(bin_of(v))
    assert np.all(lo <= v) and np.all(v <= hi)
    pos = v > 0
    assert np.all((hi[pos] - lo[pos]) / lo[pos] < 0.004)  # log-linear, under 0.4% wide


def test_an_unasked_percentile_is_an_error_not_a_guess() -> None:
    merged = _merge([np.arange(1000.0)])
    with pytest.raises(ValueError, match="not pulled"):
        merged.quantile(0.25)


def test_linked_traces_share_a_partition() -> None:
    # 10 -> 11 -> 12 (a chain of links), 20 <- 21 and 21 <- 22 (a batch), 30 alone
    src, dst = np.array([11, 12, 21, 22], np.uint64), np.array([10, 11, 20, 21], np.uint64)
    linked, group = linked_groups(group_key(src), group_key(dst))
    traces = np.array([10, 11, 12, 20, 21, 22, 30], np.uint64)
    for n_parts in (2, 3, 7, 64):
        part = partition_of(traces, linked, group, n_parts)
        assert part[0] == part[1] == part[2]
        assert part[3] == part[4] == part[5]
        assert np.all((part >= 0) & (part < n_parts))


@pytest.mark.parametrize("seed", range(10))
def test_linked_groups_are_the_connected_components(seed: int) -> None:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(seed)
    n, e = int(rng.integers(2, 3000)), int(rng.integers(1, 5000))
    src = rng.integers(0, n, e).astype(np.uint32) * 7 + 3
    dst = rng.integers(0, n, e).astype(np.uint32) * 7 + 3
    keys, group = linked_groups(src.copy(), dst.copy(), chunk=int(rng.integers(1, 2000)))
    want, inv = np.unique(np.concatenate([src, dst]), return_inverse=True)
    graph = coo_matrix((np.ones(e), (inv[:e], inv[e:])), shape=(want.size, want.size))
    _, label = connected_components(graph, directed=True, connection="weak")
    smallest = np.full(label.max() + 1, 2**32 - 1, np.uint64)
    np.minimum.at(smallest, label, want.astype(np.uint64))
    assert np.array_equal(keys, want)
    assert np.array_equal(group, smallest[label])
