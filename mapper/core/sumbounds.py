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

import numpy as np

#: Relative slack on the sum bounds (float rounding of the exporter's and our additions).
SLACK = 1e-9


def whole(counts: np.ndarray) -> bool:
    """True when every bucket count is a whole number (what exact counting gives)."""
    return bool(np.all(np.abs(counts - np.round(counts)) < 1e-6))


def order_stat_bounds(lower: np.ndarray, upper: np.ndarray, counts: np.ndarray, total: float,
                      rank: int) -> tuple[float, float]:
    """Bounds on the ``rank``-th smallest observation (1-based) implied by the sum ``total``,
    within its bucket's bounds. ``(-inf, inf)`` where the sum says nothing."""
    cum = np.cumsum(counts)
    n = float(cum[-1]) if cum.size else 0.0
    if not 1 <= rank <= n or not math.isfinite(total):
        return -math.inf, math.inf
    i = int(np.searchsorted(cum, rank - 0.5, side="left"))
    c = float(counts[i])
    k = rank - (float(cum[i - 1]) if i > 0 else 0.0)
    lo_i, hi_i = float(lower[i]), float(upper[i])
    others = np.arange(counts.size) != i
    used = others & (counts > 0)
    finite = used & np.isfinite(upper)
    scale = abs(total) + float(np.sum(counts[finite] * np.abs(upper[finite])))
    slack = SLACK * max(scale, 1e-12)
    high = math.inf
    if np.all(np.isfinite(lower[used])) and math.isfinite(lo_i):
        b = total - float(np.sum(counts[used] * lower[used]))
        high = (b - (k - 1) * lo_i) / (c - k + 1) + slack
    low = -math.inf
    if np.all(np.isfinite(upper[used])) and (k == c or math.isfinite(hi_i)):
        a = total - float(np.sum(counts[used] * upper[used]))
        tail = (c - k) * hi_i if c > k else 0.0
        low = (a - tail) / k - slack
    return max(low, lo_i), min(high, hi_i)


def narrow(lower: np.ndarray, upper: np.ndarray, counts: np.ndarray, total: float | None,
           rank_lo: int, rank_hi: int, low: float, high: float) -> tuple[float, float]:
    """``(low, high)`` narrowed by the sum for a quantile between order statistics
    ``rank_lo`` and ``rank_hi``; unchanged without a usable sum or whole counts."""
    if total is None or not math.isfinite(total) or total < 0 or not whole(counts):
        return low, high
    lo_b, _ = order_stat_bounds(lower, upper, counts, total, rank_lo)
    _, hi_b = order_stat_bounds(lower, upper, counts, total, rank_hi)
    new_low, new_high = max(low, lo_b), min(high, hi_b)
    if new_low > new_high:  # inconsistent data (a sum not of these observations): say nothing more
        return low, high
    return new_low, new_high
