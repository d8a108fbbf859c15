"""What a source of the spec can give a map: the one seam between a map and its I/O.

Every source kind (Prometheus, a scrape, Datadog, OTLP files and the spool) is a
:class:`Source`: it says what it gives in :attr:`Source.gives`, a closed set of
:data:`Give` words, and answers the methods for those; asked for anything else it raises
:class:`~mapper.core.errors.SourceError` (a caller checks ``gives`` first). The app's
``gather`` asks each source of a map for everything the map needs over its window, once,
so that no identical query is sent twice and no module above the collectors knows which
concrete client sits behind a source.

What each word promises:

* ``histograms``, ``summaries``: :meth:`Source.collect` reads a measurement of that kind
  over the window (a summary's percentiles per instance; a histogram's buckets).
* ``hourly``: :meth:`Source.hourly_buckets`, the cumulative bucket counts of each whole hour
  of the window (bucket counts add across hours; percentiles would not).
* ``labels``: :meth:`Source.label_buckets`, the window's bucket counts per value of a label.
* ``slices``: :meth:`Source.slice_labels`, each label of a histogram's series in the window
  with its number of values, and :meth:`Source.label_histograms`, the window's histogram per
  value of one label (classic or native; counts, never percentiles, per slice).
* ``exemplars``: :meth:`Source.exemplars`, observations kept with their trace id.
* ``spans``: :meth:`Source.spans`, the spans that start in the window.
* ``flow``: :meth:`Source.counter_increase` and :meth:`Source.gauge_range`, a counter's
  exact increase and a gauge over the window (a stage's errors, retries and inventory).
* ``partitions``: a spool that can be analysed partition by partition
  (:attr:`Source.partitioned` names it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from mapper.core.distribution import HistogramDistribution
from mapper.core.flowread import CounterRead, GaugeRead
from mapper.core.model import Check, HourBuckets, MeasurementResult, Window
from mapper.core.spans import LoadedSpans
from mapper.core.spec import Measurement, SourceSpec
from mapper.core.spec.flow import FlowMetric

#: What a source can give (see the module's docstring).
Give = Literal["histograms", "summaries", "hourly", "labels", "slices", "exemplars", "spans", "partitions",
               "flow"]

#: One exemplar as a map uses it: (trace id, observed value in seconds, Unix timestamp).
ExemplarPoint = tuple[str, float, float]


class Source(Protocol):
    """One source of the spec, read for one map (a source may remember its answers for the
    map's lifetime: the same question is then asked of the back end once)."""

    spec: SourceSpec
    #: What this source gives; any other method raises SourceError.
    gives: frozenset[Give]

    def collect(self, measurement: Measurement, window: Window) -> MeasurementResult:
        """The measurement's distribution over ``window``; raises SourceError on failure."""
        ...

    def hourly_buckets(self, measurement: Measurement, window: Window) -> list[HourBuckets]:
        """Per whole hour of the window, the cumulative bucket counts (bounds in seconds)."""
        ...

    def label_buckets(self, measurement: Measurement, window: Window, label: str) -> dict[str, dict[float, float]]:
        """Per value of ``label``, the window's cumulative bucket counts (empty: no series has it)."""
        ...

    def slice_labels(self, measurement: Measurement, window: Window) -> dict[str, int]:
        """Each label of the histogram's series in ``window`` and how many values it takes."""
        ...

    def label_histograms(self, measurement: Measurement, window: Window,
                         label: str) -> tuple[dict[str, HistogramDistribution], list[Check]]:
        """Per value of ``label``: the window's histogram (seconds), and what could not be counted."""
        ...

    def exemplars(self, measurement: Measurement, window: Window, trace_labels: Sequence[str],
                  where: str) -> tuple[list[ExemplarPoint], list[Check]]:
        """The window's exemplars with a well-formed trace id (seconds); the others counted in checks."""
        ...

    def spans(self, window: Window, services: Sequence[str] = (), attributes: bool = False) -> LoadedSpans:
        """The spans that start inside ``window``, deduplicated (``services`` narrows a remote source);
        ``attributes``: with :attr:`~mapper.core.spans.SpanBatch.attributes` where the source
        keeps them (what ``latmap explain`` compares; None otherwise)."""
        ...

    def counter_increase(self, metric: FlowMetric, window: Window) -> CounterRead:
        """The counter's (or histogram ``_count``'s) exact increase over ``window``, summed across series."""
        ...

    def gauge_range(self, metric: FlowMetric, window: Window) -> GaugeRead:
        """The gauge at each step of ``window``, summed across series, with its smallest series."""
        ...

    @property
    def partitioned(self) -> str | None:
        """The spool path or URL a partitioned analysis reads (``partitions``), else None."""
        ...
