"""What a quantile asks for, before any data: its label (``p99.99``), its valid range, and
how many observations it needs before it means anything. Pure and light (no numpy), so the
spec loader and the CLI can use it.
"""

from __future__ import annotations

import math


def percentile_label(q: float) -> str:
    """``0.99 -> "p99"``, ``0.9999 -> "p99.99"``, ``0.5 -> "p50"``."""
    return "p" + f"{q * 100:.6f}".rstrip("0").rstrip(".")


def check_q(q: float) -> None:
    """Refuse a quantile outside [0, 1] (NaN included): no percentile is meant by it."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q!r} is outside [0, 1]")


def min_count(q: float) -> float:
    """Observations needed before quantile ``q`` means anything: at least one beyond it.

    With fewer than ``1 / (1 - q)`` observations (10,000 for p99.99) the quantile is, at
    best, the largest observation, and latmap says "too few samples" instead.
    """
    if q <= 0.5:
        return 2
    if q >= 1.0:
        return math.inf
    return math.ceil(round(1.0 / (1.0 - q), 6))
