"""The library facade: spec -> collectors -> distributions -> analysis -> renderers.

Everything the CLI does is a call to a function here, so it can be done from Python too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from collectors.prom_segments import hourly_buckets, label_buckets
from collectors.prometheus import PrometheusClient, PrometheusCollector
from collectors.sources import make_collector
from collectors.spool.reader import QUARANTINE_DIR, WAL_DIR
from collectors.traces import is_spool, load_spans
from mapper.analysis.examples import Examples, Threshold
from mapper.analysis.examples import Key as ExampleKey
from mapper.analysis.latency import PARTS, LatencyMap, analyse, map_example_thresholds
from mapper.analysis.partition import LEAD, merged_part_results
from mapper.analysis.segments import MergedSegment, SamplePlan, SegmentData, sample_plan, trace_samples
from mapper.analysis.servicegraph import Edge, service_graph
from mapper.analysis.traces import StageMatch, TraceTable, build_trace_table, compare, part_results
from mapper.app.engine import ExampleRequest, Merged, analyse_partitioned, needed_qs
from mapper.app.exemplars import attach_exemplars
from mapper.core.distribution import Distribution, SampleDistribution
from mapper.core.durations import format_duration, format_time
from mapper.core.errors import QueryRejected, SourceError, UsageError
from mapper.core.files import dumps, write_atomic
from mapper.core.model import Check, MeasurementResult, Window
from mapper.core.spans import ATTRIBUTE_COLUMNS
from mapper.core.spec import Measurement, SourceSpec, StreamSpec
from mapper.core.spec.engine import BYTES_PER_SPAN, is_url
from mapper.render.html import to_html
from mapper.render.report import to_json, to_markdown
from mapper.render.vsm_svg import to_svg

if TYPE_CHECKING:
    from collectors.base import Collector
    from mapper.analysis.findings import Findings

log = logging.getLogger(__name__)

#: Called after each measurement with (done, total, label).
Progress = Callable[[int, int, str], None]


def window_for(spec: StreamSpec, length: float | None = None, until: float | None = None) -> Window:
    """The window to map: ``length`` (default: the spec's) ending at ``until`` (default: now)."""
    end = time.time() if until is None else until
    length = spec.window if length is None else length
    if end - length < 0:
        raise UsageError(f"--window/--until: the window of {format_duration(length)} ending at "
                         f"{format_time(end)} would start before 1970")
    return Window.ending(end, length)


#: The key of the measured lead time (the spec's top-level ``end_to_end:``) in :func:`collect`'s results.
END_TO_END = ("end_to_end", "lead")


def measurements(spec: StreamSpec) -> list[tuple[str, str, Measurement]]:
    """Every ``(stage, part, measurement)`` of the spec, in flow order."""
    out = []
    for s in spec.stages:
        for part in PARTS:
            m = getattr(s, part)
            if m is not None:
                out.append((s.name, part, m))
    return out


def collect(spec: StreamSpec, window: Window, progress: Progress | None = None,
            collectors: dict[str, Collector] | None = None) -> dict[tuple[str, str], MeasurementResult]:
    """Read every measurement of the spec over the window.

    A source error is raised with the stage and part it happened for; data problems that
    still let the map be drawn come back as checks inside the results instead.
    """
    # Imported here: collectors import the model from mapper, so mapper must not need
    # collectors while it is itself being imported.

    made = dict(collectors or {})
    todo = measurements(spec)
    if spec.end_to_end is not None:  # the measured lead time, under END_TO_END
        todo.append((*END_TO_END, spec.end_to_end))
    results: dict[tuple[str, str], MeasurementResult] = {}
    for i, (stage, part, m) in enumerate(todo):
        if m.source not in made:
            made[m.source] = make_collector(spec.sources[m.source], spec.percentiles)
        try:
            results[(stage, part)] = made[m.source].collect(m, window)
        except QueryRejected as err:
            # The back end refused this one query: the other stages can still be mapped.
            results[(stage, part)] = MeasurementResult(None, f"{m.source}: {m.name} ({m.place})", (
                Check("error", "query-rejected", f"{stage} {part}: {err}"),))
        except SourceError as err:
            raise SourceError(f"{stage} {part}: {err}") from err
        if progress:
            progress(i + 1, len(todo), f"{stage} {part}")
    return results


class Traced(NamedTuple):
    """The trace side of a map: the per-item table (a summary without rows when the window
    was merged from partitions and does not fit the memory budget), the stage results, the
    checks, each stage's hop per item and the lead time (None: from ``table``)."""

    table: TraceTable | None
    results: dict[tuple[str, str], MeasurementResult]
    checks: list[Check]
    totals: dict[str, Distribution]
    lead: Distribution | None = None
    #: A partitioned analysis's examples (merged from the partitions' proposals).
    examples: Examples | None = None
    #: Merged from partitions: the traced parts' segments (see :func:`collect_segments`).
    segments: dict[tuple[str, str], MergedSegment] | None = None


def collect_traces(spec: StreamSpec, window: Window,
                   thresholds_of: Callable[[Traced], Mapping[ExampleKey, Threshold]] | None = None) -> Traced:
    """Per-trace stage timings for the stages measured from traces, and their results.

    A part the spec also measures with metrics keeps the metric result in the map; the two
    are compared in checks. A spool window of more spans than ``engine.partition_spans`` is
    analysed partition by partition (:mod:`mapper.app.engine`); then ``thresholds_of`` (the
    thresholds the map chooses examples with, from the merged trace side) gets the examples.
    """
    staged = [s for s in spec.stages if s.traces is not None]
    if not staged:
        return Traced(None, {}, [], {})

    source = spec.sources[staged[0].traces.source]  # type: ignore[union-attr]
    names = {s.name for s in staged}
    matches = [StageMatch(s.name, s.traces.service, s.traces.span_name,  # type: ignore[union-attr]
                          {ATTRIBUTE_COLUMNS[k]: v for k, v in s.traces.attributes.items()})  # type: ignore[union-attr]
               for s in staged]
    upstream = {s.name: next((u for u in s.upstream if u in names), None) for s in staged}
    url = source.kind == "traces" and bool(source.path) and is_url(source.path or "")
    if url or (source.kind == "traces" and source.path and is_spool(Path(source.path))):
        qs = needed_qs(spec)
        try:
            # A spool given by URL is only read partition by partition, whatever its size.
            engine = replace(spec.engine, memory_budget=-1) if url else spec.engine
            wanted = None if thresholds_of is None or spec.examples.count <= 0 else ExampleRequest(
                spec.examples.count, lambda m: thresholds_of(_from_partitions(spec, source, staged, matches, m)))
            merged = analyse_partitioned(source.path or "", int(window.start * 1e9), int(window.end * 1e9),
                                         engine, matches, upstream, qs, item_path=single_path(spec),
                                         examples=wanted, segments=segment_plan(spec, window, qs),
                                         replay=all(s.traces is not None for s in spec.stages))
        except SourceError as err:
            raise SourceError(f"traces from {source.name!r}: {err}") from err
        if merged is not None:
            return _from_partitions(spec, source, staged, matches, merged)
    try:
        loaded = load_spans(source, window, [s.traces.service for s in staged])  # type: ignore[union-attr]
    except SourceError as err:
        raise SourceError(f"traces from {source.name!r}: {err}") from err
    table = build_trace_table(loaded.batch, matches, upstream)
    checks = []
    if loaded.set_aside:
        reasons = ", ".join(f"{n:,} {r}" for r, n in sorted(loaded.set_aside.items()))
        checks.append(Check("warning", "spans-set-aside", f"{loaded.origin}: spans set aside: {reasons}"))
    checks += [Check("warning", "spans-limited", note) for note in loaded.notes]
    checks += list(table.checks)  # the span links' checks (mapper.analysis.items)
    if loaded.damaged:
        checks.append(_damaged_check(loaded.origin, list(loaded.damaged)))
    results: dict[tuple[str, str], MeasurementResult] = {}
    totals: dict[str, Distribution] = {}
    for s in staged:
        m = s.traces
        where = f"{source.name} ({loaded.origin}): service={m.service}"  # type: ignore[union-attr]
        if m.span_name:  # type: ignore[union-attr]
            where += f" span={m.span_name}"  # type: ignore[union-attr]
        for part, r in part_results(table, s.name, where).items():
            results[(s.name, part)] = r
        if s.wait is None and s.process is None and not table.stage_frame(s.name).empty:
            totals[s.name] = SampleDistribution(table.totals(s.name))
    return Traced(table, results, checks, totals)


def single_path(spec: StreamSpec) -> tuple[str, ...] | None:
    """The stream's stages in order when they form one path, every stage measured from
    traces (then a partitioned analysis merges the tail attribution too); else None."""
    stages = spec.stages
    if not stages or any(s.traces is None for s in stages) or stages[0].upstream:
        return None
    if any(s.upstream != (stages[i].name,) for i, s in enumerate(stages[1:])):
        return None
    return tuple(s.name for s in stages)


def _wants_segments(spec: StreamSpec) -> bool:
    seg = spec.segments
    return bool(seg.hours or seg.weekdays or seg.labels or spec.events)


def _metric_hourly(spec: StreamSpec, stage: str, part: str, m: Measurement) -> bool:
    """A part whose segments come from hourly bucket counts (metrics win over traces)."""
    return spec.sources[m.source].kind == "prometheus" and m.kind == "histogram"


def segment_plan(spec: StreamSpec, window: Window, qs: tuple[float, ...]) -> SamplePlan | None:
    """The traced parts a partitioned analysis slots into segments (those :func:`collect_segments`
    reads from traces), or None when the spec asks for no segment."""
    if not _wants_segments(spec):
        return None
    hourly = {(st, part) for st, part, m in measurements(spec) if _metric_hourly(spec, st, part, m)}
    keys = [(s.name, part) for s in spec.stages if s.traces is not None for part in ("process", "wait")
            if (s.name, part) not in hourly]
    return sample_plan(spec, window, keys, qs)


def _damaged_check(origin: str, damaged: list[str]) -> Check:
    return Check("warning", "spool-damaged", (
        f"{origin}: {len(damaged)} damaged segment(s) not read, their spans missing from "
        f"the map: {', '.join(damaged[:10])}{' ...' if len(damaged) > 10 else ''} "
        "(latmap serve moves damaged segments into _wal/quarantine/ when it starts)"))


def _from_partitions(spec: StreamSpec, source: SourceSpec, staged: list[Any],
                     matches: list[StageMatch], merged: Merged) -> Traced:
    """The trace side from merged partitions (a window over ``engine.memory_budget``): the
    distributions exact; a check says which per-item figures are approximate."""
    origin = f"spool {source.path}"
    sums = merged.parts
    checks = [Check("info", "traces-partitioned", (
        f"{origin}: {merged.spans:,} spans analysed in {merged.partitions} partitions ({spec.engine.label} "
        "engine); percentiles, intervals and counts are exact (merged order statistics)"))]
    if merged.torn:
        checks.append(Check("warning", "spans-set-aside",
                            f"{origin}: spans set aside: {merged.torn:,} damaged spool records (torn by a crash)"))
    checks += list(sums.checks)
    damaged = [*merged.damaged, *(f"{WAL_DIR}/{QUARANTINE_DIR}/{n}" for n in merged.quarantined)]
    if damaged:
        checks.append(_damaged_check(origin, damaged))
    need = merged.spans * BYTES_PER_SPAN
    empty = pd.DataFrame(columns=["trace", "stage", "start", "end", "process", "wait", "linked", "primary"])
    table = TraceTable(empty, tuple(m.stage for m in matches), sums.traces, np.array([]), sums.spans_used,
                       link_edges=sums.link_edges, stage_rows=dict(sums.stage_rows), per_item=False,
                       part_means=merged.part_means, replays=merged.replays)
    why = (f"a spool given by URL is read partition by partition only ({merged.spans:,} spans)"
           if is_url(source.path or "") else
           f"the window's {merged.spans:,} spans (~{need / 2**30:.2g} GiB in memory) exceed "
           f"engine.memory_budget ({spec.engine.memory_budget / 2**30:.3g} GiB)")
    approx = []
    if merged.part_means is None:
        approx.append("the tail attribution and the time shares are approximated from the parts' distributions "
                      "(exact when every stage is from traces and the map's process reads the scratch directory)")
    if not merged.replays:
        approx.append("what-if futures are convolutions of the parts and budgets assume no unexplained time "
                      "(exact when every stage is from traces and the map's process reads the scratch directory)")
    if approx:
        checks.append(Check("warning", "per-item-figures-approximate", (
            f"{origin}: {why}, and the partition merge does not make every per-item figure here: "
            f"{'; '.join(approx)}; a window within engine.memory_budget gets the exact ones")))
    results: dict[tuple[str, str], MeasurementResult] = {}
    totals: dict[str, Distribution] = {}
    for s in staged:
        m = s.traces
        where = f"{source.name} ({origin}): service={m.service}"
        if m.span_name:
            where += f" span={m.span_name}"
        for part, r in merged_part_results(s.name, where, merged.distributions, sums).items():
            results[(s.name, part)] = r
        total = merged.distributions.get((s.name, "total"))
        if s.wait is None and s.process is None and total is not None and total.count:
            totals[s.name] = total
    lead = merged.distributions.get(LEAD)
    return Traced(table, results, checks, totals, lead if lead is not None and lead.count else None,
                  examples=merged.examples,
                  segments=dict(merged.segments) if merged.segments is not None else None)


def trace_graph(path: str) -> list[Edge]:
    """The service graph of every span under ``path`` (a spool or OTLP files)."""

    source = SourceSpec(name="traces", kind="traces", url="", place="--traces", path=path)
    return service_graph(load_spans(source, Window(0.0, 4e9)).batch)


def collect_segments(spec: StreamSpec, window: Window, table: TraceTable | None = None,
                     collectors: dict[str, Collector] | None = None,
                     merged: dict[tuple[str, str], MergedSegment] | None = None) -> SegmentData | None:
    """Hourly bucket counts and label slices from the Prometheus sources, samples from the
    traces (``merged``: the traced parts' segments merged from partitions); None when the
    spec asks for no segment."""

    seg = spec.segments
    if not _wants_segments(spec):
        return None
    clients: dict[str, PrometheusClient] = {}
    hourly: dict[tuple[str, str], list[Any]] = {}
    labels: dict[str, dict[Any, Any]] = {label: {} for label in seg.labels}
    for stage, part, m in measurements(spec):
        source = spec.sources[m.source]
        if not _metric_hourly(spec, stage, part, m):
            continue  # a scrape has no history; summaries cannot be summed per hour
        made = (collectors or {}).get(m.source)
        client = clients.setdefault(m.source, made.client if isinstance(made, PrometheusCollector)
                                    else PrometheusClient(source))
        try:
            hourly[(stage, part)] = hourly_buckets(client, m, window)
            for label in seg.labels:
                labels[label][(stage, part)] = label_buckets(client, m, window, label)
        except SourceError as err:
            raise SourceError(f"{stage} {part} segments: {err}") from err
    samples = {}
    if table is not None and table.per_item:
        for s in spec.stages:
            if s.traces is not None:
                for part, tv in trace_samples(table, s.name).items():
                    if (s.name, part) not in hourly:  # metrics win, as in the map
                        samples[(s.name, part)] = tv
    return SegmentData(hourly, samples, labels, merged or {})


def build_map(spec: StreamSpec, window: Window, progress: Progress | None = None,
              collectors: dict[str, Collector] | None = None) -> LatencyMap:
    """Collect and analyse: the latency map of the stream over the window."""
    metric_results = collect(spec, window, progress, collectors)
    measured_lead = metric_results.pop(END_TO_END, None)

    def thresholds_of(partial: Traced) -> Mapping[ExampleKey, Threshold]:
        # The map as analyse makes it of the merged trace side (metrics win, as below).
        lm = analyse(spec, window, {**partial.results, **metric_results}, partial.table, (), partial.totals,
                     None, measured_lead, partial.lead)
        return map_example_thresholds(lm)

    tr = collect_traces(spec, window, thresholds_of)
    table, traced, checks = tr.table, tr.results, tr.checks
    results = dict(traced)
    for key, r in metric_results.items():
        t = traced.get(key)
        if t is not None and t.distribution is not None and r.distribution is not None:
            checks += compare(key[0], key[1], r.distribution, t.distribution, spec.percentiles)
        results[key] = r
    totals = tr.totals
    segment_data = collect_segments(spec, window, table, collectors, tr.segments)
    if segment_data is not None:
        checks += [Check("info", "segments-not-from-datadog", (
            f"{stage} {part}: measured in Datadog, whose percentiles cannot be added across hours or days: "
            "no hour-of-day, weekday, label or event segments for it (its hour-by-hour series is charted)"),
            stage, part)
            for stage, part, m in measurements(spec) if spec.sources[m.source].kind == "datadog"]
    lm = analyse(spec, window, results, table, checks, totals, segment_data, measured_lead, tr.lead, tr.examples)
    return attach_exemplars(lm, spec, window, dict(collectors or {}))


def write_reports(lm: LatencyMap, out: str | Path, findings: Findings | None = None) -> list[Path]:
    """Write ``report.json``, ``report.md``, ``report.html`` and the value stream map
    ``map.svg`` into ``out`` (each atomically); return the paths."""

    d = Path(out)
    return [write_atomic(d / "report.json", dumps(to_json(lm, findings))),
            write_atomic(d / "report.md", to_markdown(lm, findings)),
            write_atomic(d / "report.html", to_html(lm, findings)),
            write_atomic(d / "map.svg", to_svg(lm))]
