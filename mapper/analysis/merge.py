"""Exact quantiles of samples spread over partitions, without gathering them.

Two passes. Pass 1: each partition counts its values into fine bins (:func:`summarise`);
the counts add up (:func:`merge_summaries`). The merged counts say which bins hold the
ranks a report needs (:func:`ranks_needed`: the estimate's two order statistics and the
interval's two, per percentile), so pass 2 pulls from each partition only the values in
those bins (:func:`values_in`), and the order statistics come out exact
(:func:`merged_samples`). The percentiles, their intervals and counts are therefore
*identical* to :class:`~mapper.core.distribution.SampleDistribution` over all the values
(the mean is a sum of partition sums: equal up to float rounding, ~1e-16 relative).

The bins are the top :data:`BIN_BITS` bits of an order-preserving 64-bit key of the float
(sign, exponent, 8 mantissa bits): log-linear, 0.39% wide, no range to configure, negative
values (clock skew) included. A bin's bounds are exact floats, so the merged counts also
give point masses for convolution (:meth:`MergedSamples.point_masses`) whose low/high
variants bound every value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from mapper.core.distribution import CONFIDENCE, Estimate, PointMasses, too_few_note
from mapper.core.estimate import Kind
from mapper.core.quantiles import check_q

#: Bits of the order key that name a bin: 1 sign + 11 exponent + 8 mantissa (bins 2^-8 wide).
BIN_BITS = 20
_SHIFT = np.uint64(64 - BIN_BITS)
_TOP = np.uint64(1 << 63)


def order_key(values: np.ndarray) -> np.ndarray:
    """A uint64 per float64 that sorts as the floats do (negative values included)."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    return np.where(bits & _TOP, ~bits, bits | _TOP)


def _from_key(key: np.ndarray) -> np.ndarray:
    key = np.asarray(key, dtype=np.uint64)
    bits = np.where(key & _TOP, key & ~_TOP, ~key)
    return bits.view(np.float64)


def bin_of(values: np.ndarray) -> np.ndarray:
    return order_key(values) >> _SHIFT


def bin_bounds(bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and the largest float of each bin."""
    b = np.asarray(bins, dtype=np.uint64)
    return _from_key(b << _SHIFT), _from_key(((b + np.uint64(1)) << _SHIFT) - np.uint64(1))


@dataclass(frozen=True)
class Summary:
    """Pass 1 of one vector in one partition (or merged): sparse bin counts, sum, count."""

    bins: np.ndarray  # ascending uint64
    counts: np.ndarray  # int64
    total: float
    n: int

    @classmethod
    def of(cls, values: np.ndarray) -> Summary:
        v = np.asarray(values, dtype=np.float64) + 0.0  # -0.0 -> 0.0: one bin for equal floats
        bins, counts = np.unique(bin_of(v), return_counts=True)
        return cls(bins, counts.astype(np.int64), float(v.sum()), int(v.size))


def merge_summaries(parts: Iterable[Summary]) -> Summary:
    parts = list(parts)
    if not parts:
        return Summary(np.array([], np.uint64), np.array([], np.int64), 0.0, 0)
    bins = np.concatenate([p.bins for p in parts])
    counts = np.concatenate([p.counts for p in parts])
    ub, inv = np.unique(bins, return_inverse=True)
    return Summary(ub, np.bincount(inv, weights=counts, minlength=ub.size).astype(np.int64),
                   float(sum(p.total for p in parts)), int(sum(p.n for p in parts)))


def ranks_needed(n: int, qs: Sequence[float], confidence: float = CONFIDENCE) -> list[int]:
    """The 1-based ranks of the order statistics :meth:`MergedSamples.quantile` reads (with
    another ``confidence``: the interval ends ``events.interval`` reads at it, too)."""
    if n == 0:
        return []
    from scipy.stats import binom  # imported here: scipy costs ~0.4 s at start-up

    alpha = (1 - confidence) / 2
    out = {1}
    for q in qs:
        out.add(max(1, int(binom.ppf(alpha, n, q))))
        hi = int(binom.ppf(1 - alpha, n, q)) + 1
        if hi <= n:
            out.add(hi)
        prev = int(np.floor(np.float64(n - 1) * np.float64(q)))
        out.add(prev + 1)
        out.add(min(prev + 2, n))
    return sorted(out)


def bins_for_ranks(s: Summary, ranks: Sequence[int]) -> np.ndarray:
    """The bins that hold the given ranks."""
    if not len(ranks):
        return np.array([], np.uint64)
    cum = np.cumsum(s.counts)
    return np.unique(s.bins[np.searchsorted(cum, np.asarray(ranks), side="left")])


def values_in(values: np.ndarray, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pass 2 in one partition: the distinct values that fall in ``bins``, with their counts
    (a stage whose every item takes the same time sends one value, not millions)."""
    if not bins.size or not values.size:
        return np.array([], np.float64), np.array([], np.int64)
    v = np.asarray(values, dtype=np.float64) + 0.0
    u, c = np.unique(v[np.isin(bin_of(v), bins)], return_counts=True)
    return u, c.astype(np.int64)


def merged_samples(s: Summary, ranks: Sequence[int],
                   pulled: Iterable[tuple[np.ndarray, np.ndarray]]) -> MergedSamples:
    """The order statistics at ``ranks`` from the merged counts and the pulled values."""
    pulled = list(pulled)
    if not s.n:
        return MergedSamples(0, 0.0, {}, s.bins, s.counts)
    all_u = np.concatenate([p[0] for p in pulled] or [np.array([], np.float64)])
    all_c = np.concatenate([p[1] for p in pulled] or [np.array([], np.int64)])
    vals, inv = np.unique(all_u, return_inverse=True)
    counts = np.bincount(inv.ravel(), weights=all_c, minlength=vals.size).astype(np.int64)
    vb = bin_of(vals)
    cum = np.cumsum(s.counts)
    stats = {}
    for r in ranks:
        i = int(np.searchsorted(cum, r, side="left"))
        before = int(cum[i - 1]) if i else 0
        here = vb == s.bins[i]
        in_bin, n_in = vals[here], np.cumsum(counts[here])
        if not n_in.size or n_in[-1] != s.counts[i]:
            raise ValueError(f"partition merge: bin {i} holds {s.counts[i]} values in pass 1, "
                             f"{int(n_in[-1]) if n_in.size else 0} in pass 2 (data changed between passes?)")
        stats[int(r)] = float(in_bin[int(np.searchsorted(n_in, r - before, side="left"))])
    return MergedSamples(s.n, s.total, stats, s.bins, s.counts)


@dataclass(frozen=True, eq=False)
class MergedSamples:
    """Samples known by their count, sum, fine bin counts and the order statistics a report
    reads: the same :class:`Estimate` as a ``SampleDistribution`` of all the values."""

    kind: ClassVar[Kind] = "merged-samples"
    n: int
    total: float
    order_stats: Mapping[int, float]
    bins: np.ndarray = field(repr=False)
    counts: np.ndarray = field(repr=False)

    @property
    def count(self) -> float:
        return float(self.n)

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    def _at(self, rank: int) -> float:
        try:
            return self.order_stats[rank]
        except KeyError:
            raise ValueError(f"order statistic {rank} of {self.n} was not pulled in pass 2 "
                             "(a percentile the merge was not asked for)") from None

    def order_stat(self, rank: int) -> float:
        """The ``rank``-th smallest value (1-based), when pass 2 pulled it."""
        return self._at(rank)

    def shifted(self, by: float) -> MergedSamples:
        """Every value plus ``by`` (order statistics exact: adding a constant keeps the order;
        the bins are this one's, for point masses only roughly)."""
        stats = {r: float(np.float64(v) + np.float64(by)) for r, v in self.order_stats.items()}
        return MergedSamples(self.n, self.total + by * self.n, stats, self.bins, self.counts)

    def quantile(self, q: float) -> Estimate:
        check_q(q)
        n = self.n
        if n == 0:
            return Estimate(q, None, None, None, 0.0, "no observations in the window")
        from scipy.stats import binom

        alpha = (1 - CONFIDENCE) / 2
        lo_rank = int(binom.ppf(alpha, n, q))
        hi_rank = int(binom.ppf(1 - alpha, n, q)) + 1
        low = self._at(lo_rank) if lo_rank >= 1 else self._at(1)
        high = self._at(hi_rank) if hi_rank <= n else None
        note = too_few_note(q, n)
        if note:
            return Estimate(q, None, low, None, float(n), note)
        return Estimate(q, _lerp_quantile(self._at, n, q), low, high, float(n))

    def exact(self, q: float) -> float:
        """``np.quantile`` of all the values at ``q`` (no minimum count), for a ``q`` whose
        order statistics were pulled."""
        return _lerp_quantile(self._at, self.n, q)

    def point_masses(self, variant: str) -> PointMasses:
        """The bin counts as weighted points: at each bin's lowest float (``low``), highest
        (``high``), or its middle (``mid``)."""
        lo, hi = bin_bounds(self.bins)
        values = lo if variant == "low" else hi if variant == "high" else (lo + hi) / 2
        return PointMasses(values, self.counts / max(1, self.n))


def _lerp_quantile(at: object, n: int, q: float) -> float:
    """numpy's default (``linear``) quantile from two order statistics, computed as numpy
    computes it, so the value is bit-identical to ``np.quantile`` over all the values."""
    virtual = np.float64(n - 1) * np.float64(q)
    prev = np.floor(virtual)
    gamma = virtual - prev
    a = at(int(prev) + 1)  # type: ignore[operator]
    b = at(min(int(prev) + 2, n))  # type: ignore[operator]
    d = np.float64(b) - np.float64(a)
    out = np.float64(b) - d * (1 - gamma) if gamma >= 0.5 else np.float64(a) + d * gamma
    return float(out) if math.isfinite(out) else float(a)
