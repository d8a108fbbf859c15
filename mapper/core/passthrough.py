"""Percentiles computed elsewhere, passed through with what can honestly be said of them:
a client's summary quantiles, a back end's sketch percentiles (Datadog distributions) and an
agent's per-host percentiles (Datadog histograms). latmap never averages them, never
interpolates between them to make a number up; only a sketch's can be added to other parts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

import numpy as np

from mapper.core.estimate import PROBABILITY_EDGES, Estimate, Kind, PointMasses, too_few_note
from mapper.core.quantiles import check_q, percentile_label

_T = TypeVar("_T")


def _at(mapping: Mapping[float, _T], q: float) -> _T | None:
    """The entry for quantile ``q`` (keys compared to 1e-9: 0.9999 from YAML's 99.99 / 100)."""
    for have, value in mapping.items():
        if math.isclose(have, q, rel_tol=0, abs_tol=1e-9):
            return value
    return None


# --------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class SummaryDistribution:
    """Quantiles computed by an instrumented client (a Prometheus summary), passed through.

    A summary's quantiles cover the client's own sliding window (``max_age``) and one
    process, from a rank-approximate sketch; they can be neither aggregated across instances
    nor re-windowed nor verified, so the interval is unknown: ``low``/``high`` are ``None``
    and the note says where the number comes from. ``count`` and ``sum`` are the window's.
    """

    kind: ClassVar[Kind] = "summary"

    quantiles: Mapping[float, float]
    count: float
    sum: float | None = None
    origin: str = "summary"

    @property
    def mean(self) -> float | None:
        if self.sum is None or self.count <= 0:
            return None
        return self.sum / self.count

    def quantile(self, q: float) -> Estimate:
        value = _at(self.quantiles, q)
        if value is not None:
            if math.isnan(value):
                return Estimate(q, None, None, None, self.count, f"{self.origin}: no observations")
            return Estimate(q, value, None, None, self.count,
                            f"{self.origin}: client-computed over the client's own sliding window "
                            "(max_age, 10m by default), not the report's window; rank-approximate, "
                            "not verifiable, interval unknown")
        exposed = ", ".join(percentile_label(x) for x in sorted(self.quantiles)) or "none"
        return Estimate(
            q, None, None, None, self.count,
            f"not available: the summary exposes only {exposed}",
        )


# --------------------------------------------------------------------------- served sketches


@dataclass(frozen=True)
class SketchDistribution:
    """Percentiles a back end computed from its own quantile sketch over the whole window
    (Datadog distribution metrics: DDSketch), passed through with the sketch's guarantee.

    DDSketch answers a value within ``relative_accuracy`` of the true quantile, so the
    interval is ``value / (1 + a) .. value / (1 - a)`` (narrowed to the exact min and max
    when known). ``bounds`` holds quantiles known only as a range (from chunks of the window:
    the quantile of a union lies between its parts' quantiles), ``unavailable`` why a
    quantile the back end was asked for was not served. Anything else is "not available":
    latmap never interpolates between served percentiles to make a number up.
    """

    kind: ClassVar[Kind] = "sketch"

    quantiles: Mapping[float, float]
    count: float
    sum: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    relative_accuracy: float = 0.01
    origin: str = "Datadog DDSketch"
    bounds: Mapping[float, tuple[float, float]] = field(default_factory=dict)
    unavailable: Mapping[float, str] = field(default_factory=dict)

    @property
    def mean(self) -> float | None:
        if self.sum is None or self.count <= 0:
            return None
        return self.sum / self.count

    def _clip(self, low: float, high: float) -> tuple[float, float]:
        if self.minimum is not None:
            low = max(low, self.minimum)
        if self.maximum is not None:
            high = min(high, self.maximum)
        return low, max(low, high)

    def quantile(self, q: float) -> Estimate:
        check_q(q)
        if self.count <= 0:
            return Estimate(q, None, None, None, 0.0, "no observations in the window")
        short = too_few_note(q, self.count)
        if short:
            return Estimate(q, None, None, None, self.count, short)
        a = self.relative_accuracy
        if (value := _at(self.quantiles, q)) is not None:
            low, high = self._clip(value / (1 + a), value / (1 - a))
            return Estimate(q, value, low, high, self.count, f"{self.origin}: computed by the back end, "
                            f"relative accuracy {a:.2%}")
        if (bounds := _at(self.bounds, q)) is not None:
            low, high = self._clip(bounds[0] / (1 + a), bounds[1] / (1 - a))
            return Estimate(q, None, low, high, self.count,
                            f"bounded only: {self.origin} answered per chunk of the window, and "
                            "percentiles of chunks cannot be combined")
        if (why := _at(self.unavailable, q)) is not None:
            return Estimate(q, None, None, None, self.count, f"not available: {why}")
        served = ", ".join(percentile_label(x) for x in sorted(self.quantiles)) or "none"
        return Estimate(q, None, None, None, self.count, f"not available: {self.origin} serves {served}")

    def point_masses(self, variant: str) -> PointMasses:
        """Weighted points between the served percentiles, for convolution.

        Between served quantiles ``q_i < q_j`` lies probability ``q_j - q_i``; ``low`` puts it at
        the lower end's lower bound, ``high`` at the upper end's upper bound, so sums stay
        bounded. Below the lowest served quantile the mass reaches down to the minimum (0 when
        unknown), above the highest up to the maximum (unbounded when unknown). ``mid``
        interpolates log(value) linearly in logit(p) between the served values, with the exact
        min and max standing for the 1/(n+1) and n/(n+1) quantiles.
        """
        a = self.relative_accuracy
        qs = sorted(self.quantiles)
        vals = np.array([self.quantiles[q] for q in qs], dtype=float)
        probs = np.array(qs, dtype=float)
        lo_end = self.minimum if self.minimum is not None else 0.0
        hi_end = self.maximum if self.maximum is not None else math.inf
        if not qs:
            return PointMasses(np.array([lo_end if variant == "low" else hi_end]), np.array([1.0]))
        p = np.concatenate([[0.0], probs, [1.0]])
        v_low = np.concatenate([[lo_end], vals / (1 + a), [vals[-1] / (1 + a)]])
        v_high = np.concatenate([[vals[0] / (1 - a)], vals / (1 - a), [hi_end]])
        v_low, v_high = np.maximum(v_low, lo_end), np.minimum(v_high, hi_end)
        if variant == "low":
            return PointMasses(v_low[:-1], np.diff(p))
        if variant == "high":
            return PointMasses(v_high[1:], np.diff(p))
        edges = PROBABILITY_EDGES
        mids = (edges[:-1] + edges[1:]) / 2
        # logit(p) follows a tail better than p does
        n = max(self.count, 1.0)
        anchor_p = np.concatenate([[1 / (n + 1)] if self.minimum is not None else [], probs,
                                   [n / (n + 1)] if self.maximum is not None else []])
        anchor_v = np.concatenate([[self.minimum] if self.minimum is not None else [], vals,
                                   [self.maximum] if self.maximum is not None else []])
        order = np.argsort(anchor_p, kind="stable")
        anchor_p, anchor_v = anchor_p[order], np.maximum.accumulate(anchor_v[order])
        logit = np.log(anchor_p) - np.log1p(-anchor_p)
        values = np.exp(np.interp(np.log(mids) - np.log1p(-mids), logit, np.log(np.maximum(anchor_v, 1e-12))))
        return PointMasses(values, np.diff(edges))


@dataclass(frozen=True)
class HostAggregateDistribution:
    """Percentiles an agent computed per host and per flush interval (Datadog *histogram*
    metrics: ``.median``, ``.95percentile``), which no one can combine into the window's.

    What can honestly be said: the window's quantile over all hosts lies between the
    smallest and the largest per-host per-flush quantile (a quantile of a union lies between
    its parts'), so those are the interval and the value is not given. ``maximum`` (the
    largest ``.max``) is exact.
    """

    kind: ClassVar[Kind] = "host-aggregate"

    bounds: Mapping[float, tuple[float, float]]
    count: float
    maximum: float | None = None
    origin: str = "Datadog histogram (agent-side, per host and flush interval)"

    @property
    def mean(self) -> float | None:
        return None

    def quantile(self, q: float) -> Estimate:
        check_q(q)
        if self.count <= 0:
            return Estimate(q, None, None, None, 0.0, "no observations in the window")
        if (bounds := _at(self.bounds, q)) is not None:
            return Estimate(q, None, bounds[0], bounds[1], self.count,
                            f"not combinable: {self.origin}; the window's {percentile_label(q)} lies "
                            f"between the smallest and largest per-host value")
        exposed = ", ".join(percentile_label(x) for x in sorted(self.bounds)) or "none"
        return Estimate(q, None, None, None, self.count,
                        f"not available: {self.origin} exposes only {exposed}")
