"""Bucket advice: for every measured part, the fewest bucket bounds that (a) put a bound on
every objective and budget threshold of the part and (b) make each asked percentile's
interval narrower than ``width`` of its value.

Why two methods:

* **From observations** (traces): the percentiles are known, so two bounds bracketing each
  percentile's order statistics tightly enough are all it takes; the advice is *verified* by
  counting the same observations into the advised buckets and asking each percentile's
  interval (:class:`~mapper.core.distribution.HistogramDistribution`), exactly as latmap will
  read the histogram. Where neighbouring observations are too far apart for any bucket to be
  that narrow, the part says so instead of advising bounds that would not deliver.
* **From a histogram** the true percentile may lie anywhere in its current bucket, so the
  advice covers that whole interval with a geometric grid whose ratio is below ``1 + width``
  (any bucket then is narrower than the width of any value in it). Not verifiable on the
  data it came from; said so (``verified`` False).

Native histograms achieve a relative width ``w`` everywhere with schema
``ceil(-log2(log2(1 + w)))`` (bucket ratio ``2**(2**-schema)``), capped at 8.

Pure; no I/O, no formatting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mapper.analysis.latency import LatencyMap
from mapper.core.distribution import Distribution, HistogramDistribution, SampleDistribution
from mapper.core.quantiles import min_count, percentile_label
from mapper.core.spec import Measurement

#: The largest native-histogram schema Prometheus accepts.
MAX_SCHEMA = 8


@dataclass(frozen=True)
class PercentileFit:
    """How one asked percentile fares with the advised bounds: its interval's relative width
    (``None`` when the data cannot support the percentile; ``note`` says why)."""

    q: float
    value: float | None
    low: float | None
    high: float | None
    width: float | None
    ok: bool
    note: str | None = None

    @property
    def label(self) -> str:
        return percentile_label(self.q)


@dataclass(frozen=True)
class BucketAdvice:
    """The advised bounds for one part (seconds, ascending, without +Inf), what they are for,
    and how the asked percentiles fare. ``metric`` is the histogram's name (None for a part
    measured from traces); ``scale`` converts seconds to the metric's unit (1 / spec scale)."""

    stage: str
    part: str
    metric: str | None
    unit: str
    scale: float
    method: str  # "observations" | "histogram"
    bounds: tuple[float, ...]
    thresholds: tuple[float, ...]
    fits: tuple[PercentileFit, ...]
    verified: bool
    native_schema: int

    @property
    def bounds_in_unit(self) -> tuple[float, ...]:
        return tuple(float(f"{b * self.scale:.6g}") for b in self.bounds)


#: The narrowest width advice is made for: the advised bounds keep four significant digits
#: (bounds people can read), which cannot step finer than 0.1% (1000 -> 1001), and a grid
#: that fine over a wide interval asks for more bounds than any histogram can hold.
MIN_WIDTH = 0.001


def native_schema(width: float) -> int:
    """The smallest native-histogram schema whose bucket ratio minus one is below ``width``."""
    s = math.ceil(-math.log2(math.log2(1.0 + width)) + 1e-12)
    return max(-4, min(MAX_SCHEMA, s))


def advise(lm: LatencyMap, width: float, budgets: Sequence[tuple[str, float]] = ()) -> tuple[BucketAdvice, ...]:
    """Advice for every part of ``lm`` with data. ``budgets`` are extra ``(stage, threshold)``
    pairs (per-hop budgets) to put bounds on, like the spec's stage objectives."""
    if not MIN_WIDTH <= width < 1:
        raise ValueError(f"width must be between {MIN_WIDTH:g} and 1 (5% is 0.05), got {width!r}")
    out = []
    for sr in lm.stages:
        parts = [(p, r) for p, r in (("wait", sr.wait), ("process", sr.process))
                 if r is not None and r.distribution is not None]
        thresholds: tuple[float, ...] = ()
        if len(parts) == 1:  # a stage objective bounds the hop, which is this one part
            thresholds = tuple(sorted({o.threshold for o in lm.spec.objectives if o.target == sr.stage.name}
                                      | {t for s, t in budgets if s == sr.stage.name}))
        for part, r in parts:
            m: Measurement | None = getattr(sr.stage, part)
            d = r.distribution
            assert d is not None
            out.append(_advise_part(sr.stage.name, part, m, d, lm.spec.percentiles, thresholds, width))
    return tuple(out)


def _advise_part(stage: str, part: str, m: Measurement | None, d: Distribution, qs: Sequence[float],
                 thresholds: tuple[float, ...], width: float) -> BucketAdvice:
    metric = m.name if m is not None and m.kind == "histogram" else None
    unit, scale = (m.unit, 1.0 / m.scale) if m is not None else ("s", 1.0)
    if isinstance(d, SampleDistribution):
        bounds = _from_samples(d.values, qs, thresholds, width)
        fits = _fits(HistogramDistribution.from_cumulative(
            [*bounds, math.inf], np.searchsorted(d.values, [*bounds, math.inf], side="right").tolist(),
            sum=float(d.values.sum())), qs, width)
        return BucketAdvice(stage, part, metric, unit, scale, "observations", bounds, thresholds, fits, True,
                            native_schema(width))
    bounds = _from_intervals(d, qs, thresholds, width)
    fits = tuple(PercentileFit(q, None, None, None, None, False,
                               "not verifiable: the current histogram does not say where in its bucket the "
                               "percentile lies; the grid covers that whole bucket") for q in qs)
    return BucketAdvice(stage, part, metric, unit, scale, "histogram", bounds, thresholds, fits, False,
                        native_schema(width))


def _from_samples(v: np.ndarray, qs: Sequence[float], thresholds: Sequence[float], width: float) -> tuple[float, ...]:
    """Two bounds around each supported percentile's order statistics, plus the thresholds."""
    n = v.size
    points = set(thresholds)
    a = 0.9 * width / (2.0 + width)  # bracket half-width: (1+a)/(1-a) - 1 < width
    for q in qs:
        if n < min_count(q):
            continue
        h = (n - 1) * q + 1
        lo_v = float(v[max(0, math.floor(h) - 1)])
        hi_v = float(v[min(n - 1, max(math.ceil(h), math.ceil(q * n)) - 1)])
        mid = (lo_v + hi_v) / 2
        lower = min(lo_v, mid * (1 - a))
        upper = max(hi_v, mid * (1 + a))
        if lo_v <= 0:
            continue
        points |= {_round_down(lower * (1 - 1e-9)), _round_up(upper)}
    return tuple(sorted(p for p in points if p > 0 and math.isfinite(p)))


def _from_intervals(d: Distribution, qs: Sequence[float], thresholds: Sequence[float],
                    width: float) -> tuple[float, ...]:
    """A geometric grid (ratio below 1 + width) over each percentile's current interval."""
    points = set(thresholds)
    ratio = 1.0 + 0.95 * width
    for q in qs:
        e = d.quantile(q)
        if e.note and e.note.startswith("too few"):
            continue
        low = e.low if e.low is not None and e.low > 0 else None
        high = e.high
        if low is None or high is None:
            continue
        k = max(1, math.ceil(math.log(high / low) / math.log(ratio)))
        points |= {_round_down(low * ratio**i) for i in range(k)} | {_round_up(high)}
    return tuple(sorted(p for p in points if p > 0 and math.isfinite(p)))


def _round_down(x: float) -> float:
    """Four significant digits, never above ``x`` (bounds people can read)."""
    e = math.floor(math.log10(x)) - 3
    return math.floor(x / 10**e) * 10**e if x > 0 else x


def _round_up(x: float) -> float:
    e = math.floor(math.log10(x)) - 3
    return math.ceil(x / 10**e - 1e-9) * 10**e if x > 0 else x


def _fits(h: HistogramDistribution, qs: Sequence[float], width: float) -> tuple[PercentileFit, ...]:
    out = []
    for q in qs:
        e = h.quantile(q)
        if e.value is None or e.low is None or e.high is None:
            out.append(PercentileFit(q, None, e.low, e.high, None, False, e.note))
            continue
        w = (e.high - e.low) / e.value if e.value > 0 else math.inf
        note = None if w < width else "observations too sparse here for any bucket this narrow"
        out.append(PercentileFit(q, e.value, e.low, e.high, w, w < width, note))
    return tuple(out)
