"""What every collector is, and the pieces all of them share.

A collector reads one :class:`~mapper.core.spec.Measurement` over one window and answers a
:class:`~mapper.core.model.MeasurementResult`; it knows nothing about reports or output.
Each source kind is a :class:`~mapper.core.source.Source` built on :class:`SourceBase`, which
refuses what the kind does not give.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import NoReturn, Protocol

from collectors.classic import checked_histogram
from mapper.core.distribution import HistogramDistribution, SummaryDistribution
from mapper.core.errors import SourceError
from mapper.core.flowread import CounterRead, GaugeRead
from mapper.core.model import Check, HourBuckets, MeasurementResult, Window
from mapper.core.source import ExemplarPoint, Give
from mapper.core.spans import LoadedSpans
from mapper.core.spec import Measurement, SourceSpec
from mapper.core.spec.flow import FlowMetric


class Collector(Protocol):
    """Reads measurements from one source."""

    def collect(self, measurement: Measurement, window: Window) -> MeasurementResult:
        """The measurement's distribution over ``window``; raises SourceError on failure."""
        ...


class SourceBase:
    """A :class:`~mapper.core.source.Source` that gives nothing: each source kind overrides
    what it gives and lists it in ``gives``; the rest raises SourceError with the source's place."""

    spec: SourceSpec
    gives: frozenset[Give] = frozenset()

    def _refuse(self, what: str) -> NoReturn:
        raise SourceError(f"{self.spec.place}: a {self.spec.kind} source gives no {what}")

    def collect(self, measurement: Measurement, window: Window) -> MeasurementResult:
        self._refuse(f"{measurement.kind} measurement")

    def hourly_buckets(self, measurement: Measurement, window: Window) -> list[HourBuckets]:
        self._refuse("hourly bucket counts")

    def label_buckets(self, measurement: Measurement, window: Window, label: str) -> dict[str, dict[float, float]]:
        self._refuse("bucket counts per label")

    def slice_labels(self, measurement: Measurement, window: Window) -> dict[str, int]:
        self._refuse("label slices")

    def label_histograms(self, measurement: Measurement, window: Window,
                         label: str) -> tuple[dict[str, HistogramDistribution], list[Check]]:
        self._refuse("label slices")

    def exemplars(self, measurement: Measurement, window: Window, trace_labels: Sequence[str],
                  where: str) -> tuple[list[ExemplarPoint], list[Check]]:
        self._refuse("exemplars")

    def spans(self, window: Window, services: Sequence[str] = (), attributes: bool = False) -> LoadedSpans:
        self._refuse("spans")

    def counter_increase(self, metric: FlowMetric, window: Window) -> CounterRead:
        self._refuse("counters")

    def gauge_range(self, metric: FlowMetric, window: Window) -> GaugeRead:
        self._refuse("gauges")

    @property
    def partitioned(self) -> str | None:
        return None


def parse_le(text: str, where: str) -> float:
    """A bucket's ``le`` label as a float (``"+Inf"``, ``"0.5"``, ``"5e-1"``)."""
    try:
        value = float(text)
    except ValueError:
        raise SourceError(f"{where}: bucket bound le={text!r} is not a number") from None
    if math.isnan(value):
        raise SourceError(f"{where}: bucket bound le=NaN")
    return value


def histogram_from_buckets(
    buckets: Iterable[tuple[str, float]],
    scale: float,
    where: str,
    total_sum: float | None = None,
) -> tuple[HistogramDistribution | None, list[Check]]:
    """Build a distribution from ``(le, cumulative count)`` pairs, with the checks they raise.

    Pairs with the same bound (``le="0.1"`` and ``le="1e-1"``) are added. Bounds are scaled
    to seconds. Returns ``(None, checks)`` when there are no buckets, no ``+Inf`` bucket, or
    buckets no honest histogram can be made of (every rule of
    :func:`collectors.classic.checked_histogram`, which this is the ``le``-only form of).
    """
    return checked_histogram((({"le": le}, value) for le, value in buckets), scale, where, total_sum)


def no_data(where: str, what: str) -> MeasurementResult:
    """The result for a measurement whose source has nothing in the window."""
    return MeasurementResult(None, what, (Check("warning", "no-data", f"{where}: no data in the window"),))


def quantile_free_summary(where: str, provenance: str, count: float, total: float | None,
                          scale: float) -> MeasurementResult:
    """A summary with a count but no quantile series (prometheus-client for Python exports
    only ``_count`` and ``_sum``): the mean is known, no percentile is."""

    dist = SummaryDistribution({}, count, None if total is None else total * scale)
    return MeasurementResult(dist, provenance, (Check(
        "warning", "summary-without-quantiles",
        f"{where}: the summary exports no quantiles, only count and sum; use a histogram"),))


def pick_labels(labels: Mapping[str, str], drop: Iterable[str]) -> str:
    """A compact ``{a="b",...}`` rendering of labels minus ``drop`` (to name instances)."""
    d = set(drop)
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k not in d) + "}"
