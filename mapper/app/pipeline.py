"""The library facade of a map: spec -> gather -> analyse -> render.

:func:`build_map` is the map job every command runs: :func:`~mapper.app.gather.gather` does
all the I/O of the window (each source asked each question once), :func:`analyse_gathered`
makes the one latency map of it, and :func:`~mapper.app.reports.write_reports` renders it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace

from mapper.analysis.exemplars import with_exemplars
from mapper.analysis.latency import LatencyMap, MapInput, analyse
from mapper.analysis.servicegraph import Edge
from mapper.analysis.traces import compare
from mapper.app.draft import draft_check
from mapper.app.explain_metrics import explain_slices_for
from mapper.app.gather import Gathered, Progress, Sources, collect, gather, traces_at
from mapper.app.plan import measurements
from mapper.app.reports import write_reports
from mapper.app.trace_side import source_graph
from mapper.core.distribution import Distribution
from mapper.core.durations import format_duration, format_time
from mapper.core.errors import SourceError, UsageError
from mapper.core.model import Check, Window
from mapper.core.source import Source
from mapper.core.spec import StreamSpec

__all__ = ["Progress", "analyse_gathered", "build_map", "collect", "trace_graph", "window_for", "write_reports"]


def window_for(spec: StreamSpec, length: float | None = None, until: float | None = None) -> Window:
    """The window to map: ``length`` (default: the spec's) ending at ``until`` (default: now)."""
    end = time.time() if until is None else until
    length = spec.window if length is None else length
    if end - length < 0:
        raise UsageError(f"--window/--until: the window of {format_duration(length)} ending at "
                         f"{format_time(end)} would start before 1970")
    return Window.ending(end, length)


def build_map(spec: StreamSpec, window: Window, progress: Progress | None = None,
              collectors: Mapping[str, Source] | Sources | None = None, explain: bool | None = True) -> LatencyMap:
    """Gather and analyse: the latency map of the stream over the window (``collectors``:
    sources to use by name instead of making them from the spec). ``explain``: explain the
    tail, with every span and resource attribute read for it (True), from the span fields
    latmap keeps only (None: what ``latmap map`` does by default, the attributes' cost is
    measured in benchmarks/explain_read.py), or not at all (False: ``--no-explain``); the
    bottleneck's label slices are asked for unless False."""
    made = Sources(spec, collectors)
    lm = analyse_gathered(spec, window, gather(spec, window, progress, made, attributes=explain is True,
                                                 explain=explain is not False),
                          explain is not False)
    if explain is not False:
        lm = with_slices(lm, made)
    return lm


def with_slices(lm: LatencyMap, made: Sources) -> LatencyMap:
    """The map with its bottleneck's label slices among its explanations, when a Prometheus
    histogram measures a part of the bottleneck stage (the part with the larger
    percentile, the one whose tail is the hop's). The slices are an explanation beside the
    map: a back end that cannot give them (a timeout, a refused query) leaves a
    ``slices-unavailable`` check, never the map unmade."""
    b = lm.bottleneck
    if b is None:
        return lm
    stage = next(s for s in lm.stages if s.stage.name == b.stage)
    parts = [(part, r) for part, r, m in (("wait", stage.wait, stage.stage.wait), ("process", stage.process,
                                                                                    stage.stage.process))
             if r is not None and r.distribution is not None and m is not None and m.kind == "histogram"
             and "slices" in made[m.source].gives]
    if not parts:
        return lm
    part = max(parts, key=lambda pr: _value(pr[1].distribution, b.q))[0]
    try:
        e = explain_slices_for(lm.spec, lm.window, b.stage, part, b.q, sources=made)
    except SourceError as err:
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        return replace(lm, checks=(*lm.checks, Check("warning", "slices-unavailable", (
            f"{b.stage} {part}: the bottleneck's label slices could not be read ({why}); the map stands without "
            "them"), b.stage, part)))
    return replace(lm, explanations=(*lm.explanations, e))


def _value(d: Distribution | None, q: float) -> float:
    v = d.quantile(q).value if d is not None else None
    return v if v is not None else -1.0


def analyse_gathered(spec: StreamSpec, window: Window, g: Gathered, explain: bool = True) -> LatencyMap:
    """The one analysis of a map: the trace side and the metrics (which win where both
    measure a part, compared in checks), the segments, then the exemplars among the examples."""
    tr = g.traced
    checks = [*draft_check(spec), *tr.checks]
    results = dict(tr.results)
    for key, r in g.metrics.items():
        t = tr.results.get(key)
        if t is not None and t.distribution is not None and r.distribution is not None:
            checks += compare(key[0], key[1], r.distribution, t.distribution, spec.percentiles)
        results[key] = r
    if g.segments is not None:
        checks += [Check("info", "segments-not-from-datadog", (
            f"{stage} {part}: measured in Datadog, whose percentiles cannot be added across hours or days: "
            "no hour-of-day, weekday, label or event segments for it (its hour-by-hour series is charted)"),
            stage, part)
            for stage, part, m in measurements(spec) if spec.sources[m.source].kind == "datadog"]
    lm = analyse(spec, window, MapInput(results, tr.table, checks, tr.totals, g.segments, g.measured_lead,
                                        tr.lead, tr.examples, flow_reads=g.flow, flow_traced=tr.flow,
                                        items_completed=tr.items_completed, explain=explain,
                                        explained=tr.explained))
    return with_exemplars(lm, g.exemplars)


def trace_graph(path: str) -> list[Edge]:
    """The service graph of every span under ``path`` (a spool or OTLP files)."""
    return source_graph(traces_at(path))
