"""The cells every renderer shares: one percentile as JSON (the report schema's latency
object and estimate) and as text (``12.3ms [10ms..25ms]``, or why there is no number).

A value the data cannot support is ``null`` in JSON and a few words in text, never a bare
number; intervals are always shown with the estimate.
"""

from __future__ import annotations

import math
from typing import Any

from mapper.analysis.merge import MergedSamples
from mapper.core.convolve import ConvolvedDistribution
from mapper.core.distribution import (
    Distribution,
    Estimate,
    HistogramDistribution,
    HostAggregateDistribution,
    SampleDistribution,
    SketchDistribution,
    SummaryDistribution,
    percentile_label,
)
from mapper.core.durations import format_duration


def num(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.9g}")


def method_of(d: Distribution) -> str:
    """How a distribution's percentiles were computed, in words for the report."""
    if isinstance(d, HistogramDistribution):
        return "histogram: interval = bucket bounds; estimate = monotone interpolation in the bucket"
    if isinstance(d, SampleDistribution | MergedSamples):  # merged: the same order statistics
        return "samples: interval = 95% order-statistic confidence interval"
    if isinstance(d, SummaryDistribution):
        return f"client-computed quantiles ({d.origin}); not aggregatable"
    if isinstance(d, SketchDistribution):
        return (f"{d.origin}: percentiles computed by the back end over the whole window; interval = "
                f"its relative accuracy ({d.relative_accuracy:.2%}); percentiles it does not serve: not available")
    if isinstance(d, HostAggregateDistribution):
        return f"{d.origin}: not combinable; interval = smallest..largest per-host value, no point estimate"
    if isinstance(d, ConvolvedDistribution):
        if "metric histograms" in d.origin:
            return f"convolution of independent parts ({d.origin}); interval from bucket bounds"
        return (f"convolution of independent parts ({d.origin}); interval: the parts' resolution only, "
                "not the dependence between them")
    return type(d).__name__


def count_json(n: float) -> int | float | None:
    """A count as JSON: an integer when it is whole (exact window counts), else the float
    (a rate-extrapolated count from a back end that only serves those)."""
    if not math.isfinite(n):
        return None
    return round(n) if abs(n - round(n)) < 1e-9 else num(n)


def estimate_json(e: Estimate) -> dict[str, Any]:
    return {"value": num(e.value), "low": num(e.low), "high": num(e.high), "note": e.note}


def latency_json(d: Distribution | None, qs: tuple[float, ...],
                 source: str | None = None) -> dict[str, Any] | None:
    """The latency object of the schema, or ``None`` when there is no distribution."""
    if d is None:
        return None
    out: dict[str, Any] = {
        "count": count_json(d.count),
        "unit": "s",
        "mean": num(d.mean),
        "method": method_of(d),
        "source": source,
    }
    for q in qs:
        out[percentile_label(q)] = estimate_json(d.quantile(q))
    return out


def cell(e: Estimate) -> str:
    """One percentile for people: ``12.3ms [10ms..25ms]``, or why there is no number."""
    if e.value is None:
        # Too few first: a +Inf tail is worth a larger bound only once the percentile means anything.
        if e.note and e.note.startswith("too few"):
            return f"n/a (n={e.count:,.0f} too few)"
        if e.note and "+Inf" in e.note and e.low is not None:
            return f">{format_duration(e.low)} (+Inf bucket)"
        if e.low is not None and e.high is not None:  # only bounded (per-host, per-chunk values)
            why = e.note.split(":")[0] if e.note else "bounded"
            return f"n/a [{format_duration(e.low)}..{format_duration(e.high)}] ({why})"
        return "n/a" if not e.note else f"n/a ({e.note.split(':')[0]})"
    if e.low is None and e.high is None:  # a client-computed summary quantile
        return f"{format_duration(e.value)} [interval unknown]"
    hi = format_duration(e.high) if e.high is not None else "∞"
    lo = format_duration(e.low) if e.low is not None else "-∞"
    return f"{format_duration(e.value)} [{lo}..{hi}]"


def short_cell(e: Estimate) -> str:
    """A percentile in a few characters (maps, labels): the value, ``>bound`` in the +Inf
    bucket, or ``n/a``."""
    if e.value is not None:
        return format_duration(e.value)
    if e.note and "+Inf" in e.note and e.low is not None and not e.note.startswith("too few"):
        return f">{format_duration(e.low)}"
    return "n/a"
