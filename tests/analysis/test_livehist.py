"""Live histogram series: bucket counts, exemplars, and the per-label cap on values."""

from __future__ import annotations

import numpy as np

from mapper.analysis.livehist import OTHER, LiveHistograms, Native, bucket_bounds, native_index


def test_objective_thresholds_become_bucket_bounds() -> None:
    bounds = bucket_bounds([0.02, 0.05, float("inf"), -1])
    assert 0.02 in bounds and bounds == tuple(sorted(set(bounds)))
    assert all(0 < b < float("inf") for b in bounds)


def test_counts_sum_and_latest_exemplar_per_bucket() -> None:
    h = LiveHistograms()
    h.observe("m", (0.01, 0.1), {"stream": "s"}, {}, np.array([0.005, 0.01, 0.05, 1.0, -0.002]),
              np.array(["a", "b", "c", "d", "e"], dtype=object), 100.0)
    [(metric, labels, s)] = list(h.series())
    assert metric == "m" and labels == {"stream": "s"}
    assert s.cumulative().tolist() == [3, 4, 5]  # le=0.01 holds 0.005, 0.01 and the negative wait
    assert s.total == np.float64(0.005 + 0.01 + 0.05 + 1.0 - 0.002)
    assert [e.trace_id if e else None for e in s.exemplars] == ["e", "c", "d"]


def test_label_values_past_the_limit_are_cut_and_counted() -> None:
    h = LiveHistograms(max_label_values=3)
    users = np.array([f"user{i}" for i in range(10)], dtype=object)
    h.observe("m", (1.0,), {}, {"destination": users}, np.ones(10), users, 0.0)
    got = {labels["destination"]: int(s.cumulative()[-1]) for _, labels, s in h.series()}
    assert len(got) == 4 and got[OTHER] == 7
    assert h.cut["destination"] == 7


def test_native_buckets_follow_prometheus_index_and_grow_both_ways() -> None:
    # bucket k is (2^((k-1)/8), 2^(k/8)]: powers of two sit on an upper bound
    assert native_index(np.array([1.0, 2.0, 0.5, 1.0001, 2 ** (1 / 8)])).tolist() == [0, 8, -8, 1, 1]
    n = Native()
    n.add(np.array([0.01, 0.02]))
    n.add(np.array([5.0, 0.001, 0.0, -0.002]))
    idx = native_index(np.array([0.01, 0.02, 5.0, 0.001]))
    dense = np.zeros(n.positive.counts.size, np.int64)
    np.add.at(dense, idx - n.positive.first, 1)
    assert n.positive.first == idx.min() and (n.positive.counts == dense).all()
    assert n.zero == 1 and n.negative.counts.sum() == 1 and n.negative.first == native_index(np.array([0.002]))[0]
