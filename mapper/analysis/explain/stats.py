"""The tests behind "why the tail is slow": a one-sided Fisher exact test per attribute value
(is it more common in the tail than in the contrast?) and the Benjamini-Hochberg correction
over everything one explanation tested.

Fisher's test is the hypergeometric upper tail, summed in log space from a table of
log-factorials (``log k!`` for ``k <= N`` by one cumulative sum: exact, no ``scipy`` for a
few lines). Where the sum would run over very many terms (both counts in the tens of
thousands) the normal approximation of the two-proportion test stands in: at such counts it
agrees with the exact test far below any threshold that matters, and the finding says which
test gave its p-value.
"""

from __future__ import annotations

import math

import numpy as np

#: Terms of the hypergeometric sum beyond which the normal approximation is used.
EXACT_TERMS = 50_000


def log_factorials(n: int) -> np.ndarray:
    """``log k!`` for ``k = 0..n`` (float64)."""
    out = np.zeros(n + 1)
    if n:
        out[1:] = np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))
    return out


def fisher_greater(a: int, tail: int, with_value: int, total: int, lf: np.ndarray | None = None) -> tuple[float, str]:
    """One-sided p-value that ``a`` or more of the ``tail`` items carry the value, when
    ``with_value`` of all ``total`` items do and the tail were a random draw of them
    (hypergeometric upper tail), and the test used: ``fisher`` or ``normal``.

    ``lf``: :func:`log_factorials` of at least ``total`` (made here when not given)."""
    lo, hi = max(a, 0), min(tail, with_value)
    if a <= max(0, tail + with_value - total):
        return 1.0, "fisher"
    if lo > hi:
        return 0.0, "fisher"
    if hi - lo + 1 > EXACT_TERMS:
        return _normal_greater(a, tail, with_value, total), "normal"
    table = log_factorials(total) if lf is None or lf.size <= total else lf
    x = np.arange(lo, hi + 1)
    logp = (table[with_value] - table[x] - table[with_value - x]
            + table[total - with_value] - table[tail - x] - table[total - with_value - tail + x]
            - (table[total] - table[tail] - table[total - tail]))
    top = float(logp.max())
    return float(min(1.0, math.exp(top) * float(np.exp(logp - top).sum()))), "fisher"


def _normal_greater(a: int, tail: int, with_value: int, total: int) -> float:
    """The normal approximation of :func:`fisher_greater` (continuity-corrected)."""
    mean = tail * with_value / total
    var = mean * (total - with_value) / total * (total - tail) / max(total - 1, 1)
    if var <= 0:
        return 1.0 if a <= mean else 0.0
    z = (a - 0.5 - mean) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2))


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """The q-value of each p-value: the smallest false discovery rate at which it would be
    called significant among all of ``p`` (Benjamini-Hochberg step-up, monotone)."""
    p = np.asarray(p, dtype=np.float64)
    m = p.size
    if not m:
        return p.copy()
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out
