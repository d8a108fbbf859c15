"""Live histogram series: bucket counts, exemplars, and the per-label cap on values."""

from __future__ import annotations

import numpy as np

from mapper.analysis.livehist import OTHER, LiveHistograms, bucket_bounds


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
