"""What every distribution answers, and the closed set of kinds they come in.

:class:`Estimate` is a percentile with its interval; :class:`Distribution` the protocol every
kind implements (:mod:`mapper.core.distribution` holds the kinds a source reads,
:mod:`mapper.core.convolve` the sum of parts, :mod:`mapper.analysis.merge` samples merged
from partitions). Each kind says what it is in ``kind``, one of :data:`Kind`; the kinds whose
observations can be added to others' (convolution, what-if) are :data:`ADDABLE`, and
:func:`addable` is the one test of it, so no caller asks a distribution what methods it has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol, TypeGuard, runtime_checkable

import numpy as np

from mapper.core.quantiles import min_count, percentile_label

#: Every kind of distribution: bucket counts, raw samples, samples merged from partitions,
#: a back end's sketch percentiles, a client's summary quantiles, per-host percentiles, and
#: the convolution of independent parts.
Kind = Literal["histogram", "samples", "merged-samples", "sketch", "summary", "host-aggregate", "convolution"]

#: The kinds that give point masses (:meth:`AddableDistribution.point_masses`): they can be
#: added to other parts. Client-computed quantiles (summary, per-host) cannot; a convolution
#: keeps its parts' masses instead.
ADDABLE: frozenset[Kind] = frozenset({"histogram", "samples", "merged-samples", "sketch"})


@dataclass(frozen=True)
class Estimate:
    """A percentile with its uncertainty.

    ``value`` is the point estimate in seconds, or ``None`` when the data cannot support it
    (then ``note`` says why). ``low``/``high`` bound the true value; ``high is None`` means
    unbounded above (the quantile is in the ``+Inf`` bucket or beyond the largest sample).
    ``low is None`` only for a histogram whose lowest bucket is open below.
    """

    q: float
    value: float | None
    low: float | None
    high: float | None
    count: float
    note: str | None = None

    @property
    def label(self) -> str:
        """The report key for this quantile: ``p50``, ``p99``, ``p99.99``."""
        return percentile_label(self.q)


def too_few_note(q: float, count: float) -> str | None:
    """The note for an unsupported quantile, or ``None`` when ``count`` is enough."""
    need = min_count(q)
    if count < need:
        needed = "more than any count" if need == math.inf else f"{need:,.0f}"
        return f"too few samples: {count:,.0f} < {needed} needed for {percentile_label(q)}"
    return None


@runtime_checkable
class Distribution(Protocol):
    """What the rest of latmap needs of a latency distribution, whatever its source."""

    @property
    def count(self) -> float:
        """Number of observations (may be fractional for rate-extrapolated histograms)."""
        ...

    @property
    def mean(self) -> float | None:
        """Exact mean in seconds when the source has a sum, else ``None``."""
        ...

    @property
    def kind(self) -> Kind:
        """Which of the closed set of kinds this is (:data:`Kind`)."""
        ...

    def quantile(self, q: float) -> Estimate:
        """The ``q``-quantile (0 < q < 1) with its interval."""
        ...


class AddableDistribution(Distribution, Protocol):
    """A distribution whose observations can be added to others' (see :data:`ADDABLE`)."""

    def point_masses(self, variant: str) -> PointMasses:
        """The distribution as point masses: ``variant`` ``low``, ``mid`` or ``high`` bounds."""
        ...


def addable(d: Distribution) -> TypeGuard[AddableDistribution]:
    """``d`` can be added to other parts (its kind is in :data:`ADDABLE`)."""
    return d.kind in ADDABLE


# --------------------------------------------------------------------------- point masses


def _probability_edges() -> np.ndarray:
    """Probability grid for point-mass representations: even in the body, dense in the tail.

    The tail part reaches 1 - 1e-7, so p99.99 of a sum keeps ~300 points of resolution.
    """
    body = np.linspace(0.0, 1.0, 513)
    tail = 1.0 - np.logspace(-0.3, -7.0, 700)
    return np.unique(np.concatenate([body, tail, [1.0]]))


PROBABILITY_EDGES = _probability_edges()


@dataclass(frozen=True, eq=False)
class PointMasses:
    """A discrete distribution: ``values`` with ``weights`` summing to 1."""

    values: np.ndarray
    weights: np.ndarray

    def quantile(self, q: float) -> float:
        """The lower q-quantile (smallest value whose cumulative weight reaches q)."""
        order = np.argsort(self.values, kind="stable")
        v, w = self.values[order], self.weights[order]
        cum = np.cumsum(w)
        i = int(np.searchsorted(cum, q * cum[-1] - 1e-12, side="left"))
        return float(v[min(i, v.size - 1)])
