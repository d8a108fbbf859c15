"""Sums of independent latencies: end to end from per-hop distributions.

Metrics give each hop's distribution but not which observations belong to the same item,
so the end-to-end distribution is estimated as the convolution of the hop distributions,
*assuming independence*; reports say so. Traces (where the per-item sum is known) do not
need this.

The interval is honest about the bucket resolution: convolving every hop with its mass at
the bucket lower bounds bounds the sum's quantile from below, and at the upper bounds from
above. The point estimate convolves the interpolated quantile functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mapper.core.distribution import (
    PROBABILITY_EDGES,
    Estimate,
    PointMasses,
    too_few_note,
)

#: The three bounds every convolution is computed for: below, estimate, above.
VARIANTS = ("low", "mid", "high")


def compress(values: np.ndarray, weights: np.ndarray, variant: str) -> PointMasses:
    """Reduce a large point set to one point per probability cell, conservatively.

    Within a cell, ``low`` keeps the smallest value and ``high`` the largest, so the bounds
    stay bounds; ``mid`` keeps the weighted mean.
    """
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    total = w.sum()
    cum = np.cumsum(w) / total
    cell = np.searchsorted(PROBABILITY_EDGES[1:-1], cum - w / total / 2, side="right")
    starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
    cw = np.add.reduceat(w, starts)
    if variant == "low":
        cv = np.minimum.reduceat(v, starts)
    elif variant == "high":
        cv = np.maximum.reduceat(v, starts)
    else:
        with np.errstate(invalid="ignore"):
            cv = np.add.reduceat(v * w, starts) / cw
    return PointMasses(cv, cw / cw.sum())


def convolve_pair(a: PointMasses, b: PointMasses, variant: str) -> PointMasses:
    """Distribution of A + B for independent A and B, compressed (see :func:`compress`)."""
    values = (a.values[:, None] + b.values[None, :]).ravel()
    weights = (a.weights[:, None] * b.weights[None, :]).ravel()
    keep = weights > 0
    return compress(values[keep], weights[keep], variant)


@dataclass(frozen=True, eq=False)
class ConvolvedDistribution:
    """The sum of independent parts, with bucket-honest bounds.

    ``count`` is the smallest part's count: the sum can be no better supported than its
    least-observed part.
    """

    parts_masses: dict[str, PointMasses]
    count: float
    mean: float | None
    note: str = "estimate: convolution of the hop distributions, assuming independence"
    #: What the parts were, in words ("metric histograms", "trace samples" ...; see :func:`origin_of`).
    origin: str = "metric histograms"

    def quantile(self, q: float) -> Estimate:
        if self.count <= 0:
            return Estimate(q, None, None, None, 0.0, "no observations in the window")
        low = self.parts_masses["low"].quantile(q)
        mid = self.parts_masses["mid"].quantile(q)
        high = self.parts_masses["high"].quantile(q)
        low = min(low, mid)
        if not math.isfinite(high):
            return Estimate(
                q, None, low, None, self.count,
                f"a part's tail is in its +Inf bucket: above {low:g}s",
            )
        short = too_few_note(q, self.count)
        if short:
            return Estimate(q, None, low, None, self.count, short)
        return Estimate(q, mid, low, max(high, mid), self.count, self.note)


def convolve(parts: Sequence[object]) -> ConvolvedDistribution | None:
    """Sum of the given distributions, or ``None`` if any part cannot be convolved.

    Parts must offer ``point_masses(variant)`` (histograms, samples); client-computed
    summary quantiles cannot be added and give ``None``.
    """
    if not parts or not all(hasattr(p, "point_masses") for p in parts):
        return None
    counts = [float(p.count) for p in parts]  # type: ignore[attr-defined]
    means = [p.mean for p in parts]  # type: ignore[attr-defined]
    mean = sum(means) if all(m is not None for m in means) else None  # type: ignore[misc]
    origin = origin_of(parts)
    if min(counts) <= 0:
        return ConvolvedDistribution({}, 0.0, mean, origin=origin)
    result: dict[str, PointMasses] = {}
    for variant in VARIANTS:
        # Compress every part first: a sample part may hold millions of points.
        compressed = [compress(m.values, m.weights, variant)
                      for m in (p.point_masses(variant) for p in parts)]  # type: ignore[attr-defined]
        acc = compressed[0]
        for m in compressed[1:]:
            acc = convolve_pair(acc, m, variant)
        result[variant] = acc
    return ConvolvedDistribution(result, min(counts), mean, origin=origin)


#: Part types, in the words a report uses for where a convolution's parts came from.
_ORIGINS = {"HistogramDistribution": "metric histograms", "SampleDistribution": "trace samples",
            "SketchDistribution": "back-end sketches", "ConvolvedDistribution": "convolutions"}


def origin_of(parts: Sequence[object]) -> str:
    """The kinds of the parts, in words and in a stable order: never a source not used."""
    kinds = {str(getattr(p, "origin", "convolutions")) if type(p).__name__ == "ConvolvedDistribution"
             else _ORIGINS.get(type(p).__name__, type(p).__name__) for p in parts}
    return " and ".join(sorted(kinds)) or "no parts"
