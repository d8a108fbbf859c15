"""Sums of independent latencies: end to end from per-hop distributions.

Metrics give each hop's distribution but not which observations belong to the same item,
so the end-to-end distribution is estimated as the convolution of the hop distributions,
*assuming independence*; reports say so. Traces (where the per-item sum is known) do not
need this.

The interval is honest about the bucket resolution: convolving every hop with its mass at
the bucket lower bounds bounds the sum's quantile from below, and at the upper bounds from
above. The point estimate convolves the interpolated quantile functions.

Up to :data:`PAIRWISE_PARTS` parts are added pair by pair on their point masses (exact, then
compressed; ~1.5 M points a step). A longer chain (a thousand stages) would take minutes that
way, so it is summed on a uniform value grid by FFT (:func:`sum_masses`): every value is moved
down to the grid for the lower bound and up for the upper bound, so the bounds stay bounds (at
most one grid step per part wider), and split between its two grid neighbours for the point
estimate, which keeps every mean exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from mapper.core.distribution import (
    PROBABILITY_EDGES,
    Distribution,
    Estimate,
    PointMasses,
    too_few_note,
)
from mapper.core.estimate import Kind, addable

#: The three bounds every convolution is computed for: below, estimate, above.
VARIANTS = ("low", "mid", "high")
#: Longer sums than this go on a value grid by FFT (see :func:`sum_masses`).
PAIRWISE_PARTS = 16
#: Grid cells over the whole sum's range on the FFT path.
GRID_CELLS = 1 << 20


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


def sum_masses(masses: Sequence[PointMasses], variant: str) -> PointMasses:
    """Distribution of the sum of independent parts (``variant`` as in :func:`compress`)."""
    if len(masses) <= PAIRWISE_PARTS or any(np.isneginf(m.values).any() or np.isnan(m.values).any()
                                            for m in masses):
        acc = masses[0]
        for m in masses[1:]:
            acc = convolve_pair(acc, m, variant)
        return acc
    return _sum_on_grid(masses, variant)


def _sum_on_grid(masses: Sequence[PointMasses], variant: str) -> PointMasses:
    """The FFT path of :func:`sum_masses`: parts on one grid of step ``h``, convolved as a
    balanced tree; mass at +inf (a tail in a +Inf bucket) is kept aside and added back."""
    finite_share = 1.0
    grids: list[np.ndarray] = []
    parts = []
    for m in masses:
        fin = np.isfinite(m.values)
        w = m.weights[fin]
        if not w.size or w.sum() <= 0:
            return PointMasses(np.array([np.inf]), np.array([1.0]))
        if not fin.all():
            finite_share *= 1.0 - float(m.weights[~fin].sum()) / float(m.weights.sum())
        parts.append((m.values[fin], w / w.sum()))
    spans = [float(v.max() - v.min()) for v, _ in parts]
    offset = sum(float(v.min()) for v, _ in parts)
    h = sum(spans) / GRID_CELLS
    if h <= 0:
        values, weights = np.array([offset]), np.array([1.0])
    else:
        for (v, w), span in zip(parts, spans, strict=True):
            x = (v - v.min()) / h
            n = math.ceil(span / h) + 2
            g = np.zeros(n)
            if variant == "low":
                np.add.at(g, np.floor(x).astype(np.int64), w)
            elif variant == "high":
                np.add.at(g, np.ceil(x).astype(np.int64), w)
            else:  # split between the two neighbours: the mean stays exact
                i = np.floor(x).astype(np.int64)
                frac = x - i
                np.add.at(g, i, w * (1 - frac))
                np.add.at(g, i + 1, w * frac)
            grids.append(g)
        while len(grids) > 1:
            grids = [_fft_convolve(grids[i], grids[i + 1]) if i + 1 < len(grids) else grids[i]
                     for i in range(0, len(grids), 2)]
        g = np.maximum(grids[0], 0.0)
        g[g < g.max() * 1e-15] = 0.0  # FFT round-off, not mass
        idx = np.flatnonzero(g)
        values, weights = offset + idx * h, g[idx] / g[idx].sum()
    if finite_share < 1.0:
        values = np.r_[values, np.inf]
        weights = np.r_[weights * finite_share, 1.0 - finite_share]
    return compress(values, weights, variant)


def _fft_convolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = len(a) + len(b) - 1
    if min(len(a), len(b)) <= 64:
        return np.convolve(a, b)
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(a, size) * np.fft.rfft(b, size), size)[:n]


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
    kind: ClassVar[Kind] = "convolution"
    #: What the parts were, in words ("metric histograms", "trace samples" ...; see :func:`origin_of`).
    origin: str = "metric histograms"

    def quantile(self, q: float) -> Estimate:
        if self.count <= 0:
            return Estimate(q, None, None, None, 0.0, "no observations in the window")
        low = self.parts_masses["low"].quantile(q)
        mid = self.parts_masses["mid"].quantile(q)
        high = self.parts_masses["high"].quantile(q)
        low = min(low, mid)
        # Too few items is said first: more bucket bounds would not make the percentile mean anything.
        short = too_few_note(q, self.count)
        if short:
            return Estimate(q, None, low, None, self.count, short)
        if not math.isfinite(high):
            return Estimate(
                q, None, low, None, self.count,
                f"a part's tail is in its +Inf bucket: above {low:g}s",
            )
        return Estimate(q, mid, low, max(high, mid), self.count, self.note)


def convolve(parts: Sequence[Distribution]) -> ConvolvedDistribution | None:
    """Sum of the given distributions, or ``None`` if any part cannot be convolved.

    Parts must be :func:`~mapper.core.estimate.addable` (histograms, samples, sketches);
    client-computed quantiles (summaries, per-host percentiles) cannot be added and give ``None``.
    """
    addable_parts = [p for p in parts if addable(p)]
    if not parts or len(addable_parts) < len(parts):
        return None
    counts = [float(p.count) for p in addable_parts]
    means = [p.mean for p in addable_parts]
    mean = sum(m for m in means if m is not None) if all(m is not None for m in means) else None
    origin = origin_of(parts)
    if min(counts) <= 0:
        return ConvolvedDistribution({}, 0.0, mean, origin=origin)
    result: dict[str, PointMasses] = {}
    for variant in VARIANTS:
        # Compress every part first: a sample part may hold millions of points.
        compressed = [compress(m.values, m.weights, variant)
                      for m in (p.point_masses(variant) for p in addable_parts)]
        result[variant] = sum_masses(compressed, variant)
    return ConvolvedDistribution(result, min(counts), mean, origin=origin)


#: Part kinds, in the words a report uses for where a convolution's parts came from (a
#: convolution says its own; another kind is named by its type).
_ORIGINS: dict[Kind, str] = {"histogram": "metric histograms", "samples": "trace samples",
                             "sketch": "back-end sketches"}


def origin_of(parts: Sequence[Distribution]) -> str:
    """The kinds of the parts, in words and in a stable order: never a source not used."""
    kinds = {p.origin if isinstance(p, ConvolvedDistribution)
             else _ORIGINS.get(p.kind, type(p).__name__) for p in parts}
    return " and ".join(sorted(kinds)) or "no parts"
