"""Long sums (more than PAIRWISE_PARTS parts) go on a value grid by FFT: the lower and upper
bounds must still bound the exact sum, the estimate must stay close to it, and a part's tail
in a +Inf bucket must still make the upper bound infinite."""

from __future__ import annotations

import numpy as np
import pytest

from mapper.core.convolve import PAIRWISE_PARTS, sum_masses
from mapper.core.distribution import PointMasses


def _exact_quantile(pmfs: list[np.ndarray], q: float) -> int:
    """The q-quantile of the sum of integer-valued parts (pmfs over 0..n), exactly."""
    total = np.array([1.0])
    for pmf in pmfs:
        total = np.convolve(total, pmf)
    return int(np.searchsorted(np.cumsum(total), q - 1e-12))


@pytest.mark.parametrize("parts", [PAIRWISE_PARTS + 1, 200])
def test_grid_sum_bounds_the_exact_sum(parts: int) -> None:
    rng = np.random.default_rng(parts)
    pmfs, masses = [], []
    for _ in range(parts):
        support = rng.choice(60, size=rng.integers(2, 12), replace=False)
        w = rng.random(len(support))
        w /= w.sum()
        pmf = np.zeros(60)
        pmf[support] = w
        pmfs.append(pmf)
        masses.append(PointMasses(np.sort(support).astype(float) * 0.001, pmf[np.sort(support)]))
    low, mid, high = (sum_masses(masses, v) for v in ("low", "mid", "high"))
    mean = sum(float(m.values @ m.weights) for m in masses)
    assert float(mid.values @ mid.weights) == pytest.approx(mean, rel=1e-6)
    for q in (0.01, 0.5, 0.9, 0.99, 0.999):
        exact = _exact_quantile(pmfs, q) * 0.001
        assert low.quantile(q) <= exact + 1e-9 <= high.quantile(q) + 2e-9
        assert abs(mid.quantile(q) - exact) <= 0.002 + 0.01 * exact


def test_grid_sum_keeps_an_infinite_tail() -> None:
    finite = PointMasses(np.array([0.1, 0.2]), np.array([0.5, 0.5]))
    tail = PointMasses(np.array([0.1, np.inf]), np.array([0.999, 0.001]))
    total = sum_masses([finite] * (PAIRWISE_PARTS + 4) + [tail], "high")
    assert np.isinf(total.quantile(0.9999)) and np.isfinite(total.quantile(0.99))
