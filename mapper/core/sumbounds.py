"""Narrower, still rigorous, histogram intervals from the window's exact ``_sum``.

Bucket counts say in which bucket the quantile's order statistic lies; the exact total of
all observations says more. Observations in bucket ``j`` lie in ``(L_j, H_j]``, so the time
that can sit in bucket ``i`` is at most ``B_i = S - sum_{j != i} c_j L_j`` and at least
``A_i = S - sum_{j != i} c_j H_j``. For the ``k``-th smallest of the ``c`` observations in
bucket ``i``:

* ``(k - 1) L_i + (c - k + 1) x_(k) <= B_i``, so ``x_(k) <= (B_i - (k - 1) L_i) / (c - k + 1)``
  (Markov's inequality inside the bucket: in a first bucket from 0, a median cannot exceed
  twice the mean of what lies in it);
* ``k x_(k) + (c - k) H_i >= A_i``, so ``x_(k) >= (A_i - (c - k) H_i) / k``.

Both hold for any observations consistent with the counts and the sum, so the true quantile
stays inside; they need whole counts (an exact window count, not an extrapolated one) and a
sum of the same observations. A relative slack of :data:`SLACK` absorbs float rounding.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass

import numpy as np

#: Relative slack on the sum bounds (float rounding of the exporter's and our additions).
SLACK = 1e-9


def whole(counts: np.ndarray) -> bool:
    """True when every bucket count is a whole number (what exact counting gives)."""
    return bool(np.all(np.abs(counts - np.round(counts)) < 1e-6))


@dataclass(frozen=True)
class Buckets:
    """A histogram's buckets as plain floats, computed once (the bounds are evaluated per
    quantile, where numpy's per-call overhead on a dozen buckets would dominate)."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    counts: tuple[float, ...]
    cum: tuple[float, ...]
    whole: bool

    @classmethod
    def of(cls, lower: np.ndarray, upper: np.ndarray, counts: np.ndarray) -> Buckets:
        return cls(tuple(lower.tolist()), tuple(upper.tolist()), tuple(counts.tolist()),
                   tuple(np.cumsum(counts).tolist()), whole(counts))


def _weighted(b: Buckets, bounds: tuple[float, ...], skip: int) -> float:
    """``sum(c_j * bound_j)`` over the non-empty buckets but ``skip``; inf when one is unbounded."""
    total = 0.0
    for j, (c, x) in enumerate(zip(b.counts, bounds, strict=True)):
        if j != skip and c > 0:
            if not math.isfinite(x):
                return math.inf
            total += c * x
    return total


def order_stat_bounds(b: Buckets, total: float, rank: int) -> tuple[float, float]:
    """Bounds on the ``rank``-th smallest observation (1-based) implied by the sum ``total``,
    within its bucket's bounds. ``(-inf, inf)`` where the sum says nothing."""
    n = b.cum[-1] if b.cum else 0.0
    if not 1 <= rank <= n or not math.isfinite(total):
        return -math.inf, math.inf
    i = bisect_left(b.cum, rank - 0.5)
    c = b.counts[i]
    k = rank - (b.cum[i - 1] if i > 0 else 0.0)
    lo_i, hi_i = b.lower[i], b.upper[i]
    sum_lo, sum_hi = _weighted(b, b.lower, i), _weighted(b, b.upper, i)
    slack = SLACK * (abs(total) + (sum_hi if math.isfinite(sum_hi) else 0.0)
                     + (abs(sum_lo) if math.isfinite(sum_lo) else 0.0) + 1e-12)
    high = math.inf
    if math.isfinite(sum_lo) and math.isfinite(lo_i):
        high = (total - sum_lo - (k - 1) * lo_i) / (c - k + 1) + slack
    low = -math.inf
    if math.isfinite(sum_hi) and (k == c or math.isfinite(hi_i)):
        tail = (c - k) * hi_i if c > k else 0.0
        low = (total - sum_hi - tail) / k - slack
    return max(low, lo_i), min(high, hi_i)


def narrow(b: Buckets, total: float | None, rank_lo: int, rank_hi: int, low: float, high: float
           ) -> tuple[float, float]:
    """``(low, high)`` narrowed by the sum for a quantile between order statistics
    ``rank_lo`` and ``rank_hi``; unchanged without a usable sum or whole counts."""
    if total is None or not math.isfinite(total) or total < 0 or not b.whole:
        return low, high
    lo_b, _ = order_stat_bounds(b, total, rank_lo)
    _, hi_b = order_stat_bounds(b, total, rank_hi)
    new_low, new_high = max(low, lo_b), min(high, hi_b)
    if new_low > new_high:  # inconsistent data (a sum not of these observations): say nothing more
        return low, high
    return new_low, new_high
