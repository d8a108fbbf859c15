"""One distribution type for every source, with honest percentiles.

Every latency latmap reports comes out of :meth:`Distribution.quantile`, which returns an
:class:`Estimate`: the point value *and* the interval the true value lies in, the number of
observations behind it, and a note when the data cannot support a number at all.

Three kinds of data make a distribution:

* :class:`HistogramDistribution`: bucket counts (classic or native Prometheus histograms,
  OTLP histograms). The interval is the bounds of the bucket(s) the quantile's rank falls in,
  narrowed by the exact ``sum`` when the counts are whole (:mod:`mapper.sumbounds`); it is
  exact, not statistical: the true quantile of the observations lies in it.
* :class:`SampleDistribution`: raw observations (trace spans). The interval is a
  distribution-free 95% confidence interval from order statistics (binomial ranks).
* :class:`SummaryDistribution`: quantiles a client already computed (Prometheus summaries).
  They are passed through, never averaged; a quantile the client does not expose is "n/a".
* :class:`SketchDistribution`: percentiles a back end computed over the window from its own
  sketch (Datadog distributions, DDSketch); the interval is the sketch's relative accuracy.
* :class:`HostAggregateDistribution`: per-host, per-flush percentiles (Datadog histograms):
  only bounds, never a combined value.

All values are seconds. :class:`Estimate`, the :class:`Distribution` protocol and the closed
set of kinds live in :mod:`mapper.core.estimate`; the passed-through kinds (summary, sketch,
per-host) in :mod:`mapper.core.passthrough`; this module holds the kinds latmap computes
percentiles of itself and names them all, so callers import distributions from one place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar, TypeVar

import numpy as np

from mapper.core.estimate import PROBABILITY_EDGES as PROBABILITY_EDGES
from mapper.core.estimate import Distribution as Distribution
from mapper.core.estimate import Estimate as Estimate
from mapper.core.estimate import Kind
from mapper.core.estimate import PointMasses as PointMasses
from mapper.core.estimate import too_few_note as too_few_note
from mapper.core.passthrough import HostAggregateDistribution as HostAggregateDistribution
from mapper.core.passthrough import SketchDistribution as SketchDistribution
from mapper.core.passthrough import SummaryDistribution as SummaryDistribution
from mapper.core.quantiles import check_q
from mapper.core.quantiles import min_count as min_count
from mapper.core.quantiles import percentile_label as percentile_label
from mapper.core.sumbounds import Buckets, narrow

_T = TypeVar("_T")

#: Confidence level of the order-statistic interval for samples.
CONFIDENCE = 0.95
#: Adjacent bucket densities closer than this (in log) count as flat.
FLAT_LOG_DENSITY = 0.05
#: The in-bucket curve is used only when it moves the estimate by this many sampling sd's.
NOISE_SD = 3.0


# --------------------------------------------------------------------------- histograms


@dataclass(frozen=True, eq=False)
class HistogramDistribution:
    """Observations counted into buckets ``(lower[i], upper[i]]``, in ascending order.

    Buckets need not be contiguous (native histograms are sparse). The last bucket of a
    classic histogram has ``upper == inf``. ``counts`` are per bucket, not cumulative.

    The point estimate assumes a power-law density ``f(x) ~ x**gamma`` inside the bucket (a
    straight line in log-log space), with ``gamma`` measured from the neighbouring buckets'
    densities, and only where the shape is clear: both neighbours contiguous and non-empty,
    the density rising (or falling) across all three, and the curve's shift larger than
    three standard deviations of the in-bucket order statistic. Everywhere else (peaks,
    empty neighbours, the first bucket, the last finite one, few observations) it is the
    straight line Prometheus's ``histogram_quantile`` uses, so it is never less informed than
    Prometheus; ``benchmarks/quantile_accuracy.py`` measures both against the exact values.
    ``interpolation="linear"`` reproduces Prometheus exactly. The estimate always lies in
    the bucket, so the interval holds whatever the shape.
    """

    kind: ClassVar[Kind] = "histogram"

    lower: np.ndarray
    upper: np.ndarray
    counts: np.ndarray
    sum: float | None = None
    interpolation: str = "powerlaw"
    _cum: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        lower = np.asarray(self.lower, dtype=float)
        upper = np.asarray(self.upper, dtype=float)
        counts = np.asarray(self.counts, dtype=float)
        if not (lower.shape == upper.shape == counts.shape) or lower.ndim != 1:
            raise ValueError("lower, upper and counts must be 1-d arrays of one length")
        if np.any(upper < lower) or np.any(np.diff(upper) < 0):
            raise ValueError("buckets must be ascending with lower <= upper")
        if np.any(counts < 0) or not np.all(np.isfinite(counts)):
            raise ValueError("bucket counts must be finite and >= 0")
        if self.interpolation not in ("powerlaw", "linear"):
            raise ValueError(f"unknown interpolation {self.interpolation!r} (powerlaw, linear)")
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "_cum", np.cumsum(counts))

    @classmethod
    def from_cumulative(
        cls,
        bounds: Sequence[float],
        cumulative: Sequence[float],
        sum: float | None = None,
        interpolation: str = "powerlaw",
    ) -> HistogramDistribution:
        """Build from classic ``le`` bounds and cumulative counts (as Prometheus stores them).

        Bounds are sorted here. The lowest bucket starts at 0 when its upper bound is
        positive (latencies are not negative; Prometheus assumes the same), else at -inf.
        Cumulative counts that decrease (a scrape racing an observation, or a broken
        exporter) are made monotone the way Prometheus does; use :func:`non_monotonic`
        first to report it.
        """
        b = np.asarray(bounds, dtype=float)
        c = np.asarray(cumulative, dtype=float)
        order = np.argsort(b, kind="stable")
        b, c = b[order], c[order]
        if b.size == 0 or b[-1] != math.inf:
            raise ValueError("a classic histogram needs a +Inf bucket")
        c = np.maximum.accumulate(c)
        counts = np.diff(c, prepend=0.0)
        lower = np.empty_like(b)
        lower[1:] = b[:-1]
        lower[0] = 0.0 if b[0] > 0 else -math.inf
        return cls(lower, b, counts, sum=sum, interpolation=interpolation)

    @property
    def count(self) -> float:
        return float(self._cum[-1]) if self._cum.size else 0.0

    @property
    def mean(self) -> float | None:
        if self.sum is None or self.count <= 0:
            return None
        return self.sum / self.count

    @cached_property
    def _buckets(self) -> Buckets:
        return Buckets.of(self.lower, self.upper, self.counts)

    def bucket_of_rank(self, rank: np.ndarray | float) -> np.ndarray:
        """Index of the first bucket whose cumulative count reaches ``rank``."""
        idx = np.searchsorted(self._cum, rank, side="left")
        return np.minimum(idx, self._cum.size - 1)

    def quantile(self, q: float) -> Estimate:
        check_q(q)
        n = self.count
        if n <= 0:
            return Estimate(q, None, None, None, 0.0, "no observations in the window")
        b = int(self.bucket_of_rank(q * n))
        # The sample quantile (numpy's default definition) sits between order statistics
        # floor(h) and ceil(h), h = (n-1)q + 1; include their buckets in the interval.
        h = (n - 1) * q + 1
        ranks = np.array([max(1.0, math.floor(h)), min(n, math.ceil(h))])
        bs = self.bucket_of_rank(ranks)
        b_lo, b_hi = min(b, int(bs.min())), max(b, int(bs.max()))
        low = float(self.lower[b_lo])
        high = float(self.upper[b_hi])
        low_out = None if low == -math.inf else low
        # Too few observations is the first thing to say: no bucket layout would help.
        note = too_few_note(q, n)
        if note:
            return Estimate(q, None, low_out, None, n, note)
        if high == math.inf:
            return Estimate(
                q, None, low_out, None, n,
                f"in the +Inf bucket: above {low:g}s; add a larger bucket bound",
            )
        value = float(self._interpolate(np.array([q * n]))[0])
        if self.sum is not None and low_out is not None:
            r_b = max(1, math.ceil(q * n - 1e-9))
            low, high = narrow(self._buckets, self.sum,
                               int(min(ranks.min(), r_b)), int(max(ranks.max(), r_b)), low, high)
            value = min(max(value, low), high)
            low_out = low
        return Estimate(q, value, low_out, high, n)

    def quantile_values(self, qs: np.ndarray) -> np.ndarray:
        """Vectorised point estimates for many quantiles (no intervals); +Inf -> last bound."""
        qs = np.asarray(qs, dtype=float)
        if qs.size and not (np.all(qs >= 0) and np.all(qs <= 1)):
            raise ValueError("quantiles must lie in [0, 1]")
        return self._interpolate(np.asarray(qs, dtype=float) * self.count)

    def _interpolate(self, ranks: np.ndarray) -> np.ndarray:
        b = self.bucket_of_rank(ranks)
        cum = self._cum
        start = np.where(b > 0, cum[np.maximum(b - 1, 0)], 0.0)
        c = self.counts[b]
        lo, hi = self.lower[b], self.upper[b]
        p = np.clip(np.where(c > 0, (ranks - start) / np.where(c > 0, c, 1.0), 1.0), 0.0, 1.0)
        finite_lo = np.where(np.isfinite(lo), lo, hi)
        with np.errstate(invalid="ignore"):
            out = finite_lo + (hi - finite_lo) * p
        if self.interpolation != "linear":
            out = _power_law(self._gammas()[b], lo, hi, c, p, out)
        # Quantile in the +Inf bucket: the best point is the last finite bound (Prometheus).
        out = np.where(np.isfinite(hi), out, lo)
        # A lowest bucket open below: its upper bound is all we know.
        return np.where(~np.isfinite(lo), hi, out)

    def _gammas(self) -> np.ndarray:
        """Per bucket, the exponent of the power-law density inside it (0: a straight line).

        Each bucket's log density sits at its geometric midpoint; the log-log slope to each
        contiguous, non-empty, positive neighbour is measured (changes under 5% count as
        flat). Where both slopes have the same sign the bucket gets their geometric mean;
        at a peak, a trough or next to an empty or missing neighbour it gets 0.
        """
        lower, upper, counts = self.lower, self.upper, self.counts
        n = counts.size
        ok = np.isfinite(lower) & np.isfinite(upper) & (lower > 0) & (upper > lower) & (counts > 0)
        lo = np.where(ok, lower, 1.0)
        hi = np.where(ok, upper, 2.0)
        lnf = np.where(ok, np.log(np.where(ok, counts, 1.0) / (hi - lo)), np.nan)
        mid = np.where(ok, 0.5 * (np.log(lo) + np.log(hi)), np.nan)
        step = np.full(n + 1, np.nan)  # step[i]: log-log slope between buckets i-1 and i
        if n > 1:
            pair = ok[:-1] & ok[1:] & (upper[:-1] == lower[1:])
            dl = lnf[1:] - lnf[:-1]
            with np.errstate(invalid="ignore"):
                slope = np.where(np.abs(dl) < FLAT_LOG_DENSITY, 0.0, dl / (mid[1:] - mid[:-1]))
            step[1:n] = np.where(pair, slope, np.nan)
        back, fwd = step[:n], step[1:]
        same = np.isfinite(back) & np.isfinite(fwd) & (back * fwd > 0)
        with np.errstate(invalid="ignore"):
            g = np.sign(back) * np.sqrt(np.abs(back * fwd))
        return np.where(same & ok, g, 0.0)

    def point_masses(self, variant: str) -> PointMasses:
        """This distribution as weighted points, for convolution (see :mod:`mapper.core.convolve`).

        ``"low"`` puts each bucket's count at its lower bound, ``"high"`` at its upper bound
        (the true sum lies between), ``"mid"`` follows the interpolated quantile function.
        """
        keep = self.counts > 0
        if variant == "low":
            values = np.where(np.isfinite(self.lower[keep]), self.lower[keep], 0.0)
            return PointMasses(values, self.counts[keep] / self.count)
        if variant == "high":
            return PointMasses(self.upper[keep], self.counts[keep] / self.count)
        edges = PROBABILITY_EDGES
        mids = (edges[:-1] + edges[1:]) / 2
        return PointMasses(self.quantile_values(mids), np.diff(edges))


def _power_law(gamma: np.ndarray, lo: np.ndarray, hi: np.ndarray, count: np.ndarray, p: np.ndarray,
               linear: np.ndarray) -> np.ndarray:
    """Invert a power-law density ``x**gamma`` on ``(lo, hi]`` at in-bucket fraction ``p``.

    Falls back to ``linear`` where ``gamma`` is 0, or where the curve moves the estimate by
    less than three standard deviations of the in-bucket order statistic (``count``
    observations): there the data cannot tell the curve from a straight line.
    """
    use = gamma != 0
    low = np.where(use, lo, 1.0)
    high = np.where(use, hi, 2.0)
    w = np.log(high / low)
    beta = np.clip((gamma + 1.0) * w, -500.0, 500.0)
    flat = np.abs(beta) < 1e-12
    bs = np.where(flat, 1.0, beta)
    em = np.expm1(bs)
    t = np.where(flat, p, np.log1p(p * em) / bs)
    x = low * np.exp(w * t)
    r = (x - low) / (high - low)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(flat, (high - low) / (x * w), (high - low) * bs * (1.0 + p * em) / (x * w * em))
        sd = np.sqrt(p * (1.0 - p) / np.maximum(count, 1.0)) / rho
    use &= np.isfinite(x) & (rho > 0) & (np.abs(r - p) >= NOISE_SD * sd)
    return np.where(use, np.clip(x, low, high), linear)


def non_monotonic(cumulative: Sequence[float], tolerance: float = 1e-9) -> bool:
    """True when cumulative bucket counts (sorted by ``le``) decrease somewhere."""
    c = np.asarray(cumulative, dtype=float)
    return bool(np.any(np.diff(c) < -tolerance * max(1.0, float(np.max(c, initial=0)))))


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True, eq=False)
class SampleDistribution:
    """Raw observations; the interval is a distribution-free order-statistic CI.

    For the ranks ``l``, ``u`` of the order statistics, P(X_(l) <= x_q <= X_(u)) >= 95%
    whatever the distribution (Hahn & Meeker, ch. 5). ``high`` is ``None`` when ``u``
    would be beyond the largest observation: the data cannot bound the quantile above.
    """

    kind: ClassVar[Kind] = "samples"

    values: np.ndarray

    def __post_init__(self) -> None:
        v = np.sort(np.asarray(self.values, dtype=float))
        if v.ndim != 1 or not np.all(np.isfinite(v)):
            raise ValueError("samples must be a 1-d array of finite numbers")
        object.__setattr__(self, "values", v)
        # Each answer kept: the reports, findings and charts ask for the same few quantiles of
        # the same (often million-value) distributions many times over.
        object.__setattr__(self, "_answers", {})

    @property
    def count(self) -> float:
        return float(self.values.size)

    @property
    def mean(self) -> float | None:
        return float(self.values.mean()) if self.values.size else None

    def quantile(self, q: float) -> Estimate:
        answers: dict[float, Estimate] | None = getattr(self, "_answers", None)
        if answers is None:  # a subclass that set its values itself
            answers = {}
            object.__setattr__(self, "_answers", answers)
        kept = answers.get(q)
        if kept is None:
            kept = answers[q] = self._quantile(q)
        return kept

    def _quantile(self, q: float) -> Estimate:
        check_q(q)
        v = self.values
        n = v.size
        if n == 0:
            return Estimate(q, None, None, None, 0.0, "no observations in the window")
        from scipy.stats import binom  # imported here: scipy costs ~0.4 s at start-up

        alpha = (1 - CONFIDENCE) / 2
        lo_rank = int(binom.ppf(alpha, n, q))  # 1-based rank of the lower order statistic
        hi_rank = int(binom.ppf(1 - alpha, n, q)) + 1
        low = float(v[lo_rank - 1]) if lo_rank >= 1 else float(v[0])
        high = float(v[hi_rank - 1]) if hi_rank <= n else None
        note = too_few_note(q, n)
        if note:
            return Estimate(q, None, low, None, float(n), note)
        return Estimate(q, float(np.quantile(v, q)), low, high, float(n))

    def point_masses(self, variant: str) -> PointMasses:
        return PointMasses(self.values, np.full(self.values.size, 1.0 / max(1, self.values.size)))
