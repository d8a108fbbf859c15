"""Gather: all the I/O of one map, before any analysis.

For the window, each source of the spec is asked, once, for everything the map reads of it
(:class:`~mapper.core.source.Source`): every metric measurement and the measured lead time
(with the progress bar), the trace side (:mod:`mapper.app.trace_side`), the segments' hourly
and per-label bucket counts, the histograms' exemplars, and the stages' flow metrics (error
and retry counters, inventory gauges). The sources are made here and
only here (:func:`collectors.sources.make_source`), one per source name for the map, so a
question two parts of the map ask is sent once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import numpy as np

from collectors.sources import make_source
from mapper.analysis.exemplars import ExemplarRead
from mapper.analysis.segments import SegmentData, trace_samples
from mapper.app.plan import END_TO_END, measurements, metric_hourly, wants_segments
from mapper.app.trace_side import Traced, collect_traces
from mapper.core.errors import QueryRejected, SourceError
from mapper.core.flowread import CounterRead, FlowReads, GaugeRead
from mapper.core.model import Check, MeasurementResult, Window
from mapper.core.source import Source
from mapper.core.spec import SourceSpec, StreamSpec
from mapper.core.spec.flow import FlowMetric

log = logging.getLogger(__name__)

#: Called after each measurement with (done, total, label).
Progress = Callable[[int, int, str], None]
Key = tuple[str, str]


class Sources:
    """The map's sources by name, each made on first use (``given`` ones as they are; given
    another :class:`Sources`, the same ones: what it made and what this one makes)."""

    def __init__(self, spec: StreamSpec, given: Mapping[str, Source] | Sources | None = None) -> None:
        self.spec = spec
        self.made: dict[str, Source] = given.made if isinstance(given, Sources) else dict(given or {})

    def __getitem__(self, name: str) -> Source:
        if name not in self.made:
            self.made[name] = make_source(self.spec.sources[name], self.spec.percentiles)
        return self.made[name]


@dataclass(frozen=True)
class Gathered:
    """Everything one map read: the metric results (metrics win over traces where both
    measure a part), the measured lead time, the trace side, the segments' data (None: the
    spec asks for none) and each histogram's exemplars, in flow order."""

    metrics: dict[Key, MeasurementResult]
    measured_lead: MeasurementResult | None
    traced: Traced
    segments: SegmentData | None
    exemplars: dict[Key, ExemplarRead]
    #: The stages' flow metrics (errors, retries, inventory) as read.
    flow: FlowReads = field(default_factory=FlowReads)


def gather(spec: StreamSpec, window: Window, progress: Progress | None = None,
           sources: Mapping[str, Source] | Sources | None = None, attributes: bool = False,
           explain: bool = True) -> Gathered:
    """Read everything the map of ``spec`` over ``window`` needs. A source error is raised
    with the stage and part it happened for; data problems come back as checks.
    ``sources``: sources by name to use (a :class:`Sources`: shared, so a caller asks the
    same ones again); ``attributes``: read the spans' attributes (for explanations);
    ``explain``: a partitioned trace side counts attribute values for them."""
    made = Sources(spec, sources)
    metrics = _collect(spec, window, made, progress)
    measured_lead = metrics.pop(END_TO_END, None)
    traced = _trace_side(spec, window, made, metrics, measured_lead, attributes, explain)
    return Gathered(metrics, measured_lead, traced, _segments(spec, window, made, traced),
                    _exemplars(spec, window, made), flow_reads(spec, window, made))


def collect(spec: StreamSpec, window: Window, progress: Progress | None = None,
            collectors: Mapping[str, Source] | None = None) -> dict[Key, MeasurementResult]:
    """Read every metric measurement of the spec over the window (the measured lead time
    under :data:`~mapper.app.plan.END_TO_END`).

    A source error is raised with the stage and part it happened for; data problems that
    still let the map be drawn come back as checks inside the results instead.
    """
    return _collect(spec, window, Sources(spec, collectors), progress)


def _collect(spec: StreamSpec, window: Window, made: Sources,
             progress: Progress | None) -> dict[Key, MeasurementResult]:
    todo = measurements(spec)
    if spec.end_to_end is not None:  # the measured lead time, under END_TO_END
        todo.append((*END_TO_END, spec.end_to_end))
    results: dict[Key, MeasurementResult] = {}
    for i, (stage, part, m) in enumerate(todo):
        source = made[m.source]  # a source that cannot be made says so itself
        try:
            results[(stage, part)] = source.collect(m, window)
        except QueryRejected as err:
            # The back end refused this one query: the other stages can still be mapped.
            results[(stage, part)] = MeasurementResult(None, f"{m.source}: {m.name} ({m.place})", (
                Check("error", "query-rejected", f"{stage} {part}: {err}"),))
        except SourceError as err:
            raise SourceError(f"{stage} {part}: {err}") from err
        if progress:
            progress(i + 1, len(todo), f"{stage} {part}")
    return results


def _trace_side(spec: StreamSpec, window: Window, made: Sources, metrics: Mapping[Key, MeasurementResult],
                measured_lead: MeasurementResult | None, attributes: bool = False, explain: bool = True) -> Traced:
    traced = [s.traces for s in spec.stages if s.traces is not None]
    if not traced:
        return Traced(None, {}, [], {})
    try:
        source = made[traced[0].source]
    except SourceError as err:  # e.g. a Datadog key not set
        raise SourceError(f"traces from {traced[0].source!r}: {err}") from err
    return collect_traces(spec, window, source, metrics, measured_lead, attributes=attributes, explain=explain)


def _segments(spec: StreamSpec, window: Window, made: Sources, traced: Traced) -> SegmentData | None:
    """Hourly bucket counts and label slices of the metric histograms, samples from the
    traces (or the traced parts' segments merged from partitions); None when the spec asks
    for no segment."""
    if not wants_segments(spec):
        return None
    hourly: dict[Key, list[Any]] = {}
    labels: dict[str, dict[Any, Any]] = {label: {} for label in spec.segments.labels}
    for stage, part, m in measurements(spec):
        if not metric_hourly(spec, m):
            continue  # a scrape has no history; summaries cannot be summed per hour
        source = made[m.source]
        try:
            hourly[(stage, part)] = source.hourly_buckets(m, window)
            for label in spec.segments.labels:
                labels[label][(stage, part)] = source.label_buckets(m, window, label)
        except SourceError as err:
            raise SourceError(f"{stage} {part} segments: {err}") from err
    samples = {}
    table = traced.table.items() if traced.table is not None else None
    if table is not None:
        for s in spec.stages:
            if s.traces is not None:
                for part, tv in trace_samples(table, s.name).items():
                    if (s.name, part) not in hourly:  # metrics win, as in the map
                        samples[(s.name, part)] = tv
    return SegmentData(hourly, samples, labels, traced.segments or {})


def _exemplars(spec: StreamSpec, window: Window, made: Sources) -> dict[Key, ExemplarRead]:
    """Each histogram's exemplars from a source that keeps them (none when the spec asks for
    no examples); a source that cannot answer (no exemplar API, an error) is logged and its
    part left out: the map stands without them."""
    if spec.examples.count <= 0:
        return {}
    out: dict[Key, ExemplarRead] = {}
    for stage, part, m in measurements(spec):
        if m.kind != "histogram":
            continue
        source = made[m.source]
        if "exemplars" not in source.gives:
            continue
        where = f"{stage} {part} exemplars ({m.place})"
        try:
            out[(stage, part)] = source.exemplars(m, window, spec.examples.trace_id_labels, where)
        except SourceError as err:
            log.info("%s: not read: %s", where, err)
    return out


def flow_reads(spec: StreamSpec, window: Window, made: Mapping[str, Source] | Sources) -> FlowReads:
    """Every stage's ``errors``, ``retries`` and ``inventory`` metric over the window. A query
    the back end refuses becomes a check on a read with no number (the rest of the map
    stands); any other source error is raised with the stage and key."""
    errors: dict[str, CounterRead] = {}
    retries: dict[str, CounterRead] = {}
    inventory: dict[str, GaugeRead] = {}
    for s in spec.stages:
        if s.errors is not None:
            errors[s.name] = _read(s.name, "errors", s.errors, window, made)
        if s.retries is not None:
            retries[s.name] = _read(s.name, "retries", s.retries, window, made)
        if s.inventory is not None:
            inventory[s.name] = _read(s.name, "inventory", s.inventory, window, made)
    return FlowReads(errors, retries, inventory)


@overload
def _read(stage: str, key: Literal["inventory"], metric: FlowMetric, window: Window,
          made: Mapping[str, Source] | Sources) -> GaugeRead: ...
@overload
def _read(stage: str, key: Literal["errors", "retries"], metric: FlowMetric, window: Window,
          made: Mapping[str, Source] | Sources) -> CounterRead: ...
def _read(stage: str, key: str, metric: FlowMetric, window: Window,
          made: Mapping[str, Source] | Sources) -> CounterRead | GaugeRead:
    source = made[metric.source]
    where = f"{stage} {key} ({metric.place})"
    if "flow" not in source.gives:
        raise SourceError(f"{where}: source {metric.source!r} gives no flow metrics")
    try:
        if key == "inventory":
            return source.gauge_range(metric, window)
        return source.counter_increase(metric, window)
    except QueryRejected as err:
        rejected = (Check("error", "query-rejected", f"{where}: {err}", stage, key),)
        if key == "inventory":
            empty = np.array([], dtype=float)
            return GaugeRead(empty, empty, empty, 0.0, metric.describe(), rejected)
        return CounterRead(None, metric.describe(), rejected)
    except SourceError as err:
        raise SourceError(f"{where}: {err}") from err


def traces_at(path: str) -> Source:
    """The traces source of a spool or OTLP files at ``path`` (``--traces``)."""
    return make_source(SourceSpec(name="traces", kind="traces", url="", place="--traces", path=path))
