"""From measured distributions to the latency map: hops, lead time, flow efficiency,
bottleneck, objectives and checks. Pure functions; no I/O.

Vocabulary (MISSION.md): a *stage* has a *wait* (before it starts work on an item) and a
*process* time; the *hop* into a stage is its wait plus its process; the *lead time* is
the sum over the stream; *flow efficiency* is process time over lead time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mapper.analysis.critical_path import critical_path, upstreams
from mapper.analysis.evidence import TraceEvidence
from mapper.analysis.examples import END_TO_END, MEDIAN, Examples, Threshold, choose
from mapper.analysis.explain import Explanation, explain, not_explained
from mapper.analysis.explain.kinds import AnyExplanation, has_join
from mapper.analysis.flow_checks import assemble_flow, flow_checks, new_checks
from mapper.analysis.flow_metrics import metered_flow, wants_metered_flow
from mapper.analysis.flow_model import StageFlow
from mapper.analysis.flow_sampled import against_metrics
from mapper.analysis.map_model import Bottleneck as Bottleneck
from mapper.analysis.map_model import FlowEfficiency as FlowEfficiency
from mapper.analysis.map_model import HopResult as HopResult
from mapper.analysis.map_model import LatencyMap as LatencyMap
from mapper.analysis.map_model import ObjectiveResult as ObjectiveResult
from mapper.analysis.map_model import StageResult as StageResult
from mapper.analysis.segments import SegmentData, build_segments
from mapper.analysis.verdicts import find_bottleneck as find_bottleneck
from mapper.analysis.verdicts import flow_efficiency
from mapper.core.convolve import convolve
from mapper.core.distribution import Distribution, Estimate, SampleDistribution, percentile_label, too_few_note
from mapper.core.estimate import addable
from mapper.core.flowread import FlowReads
from mapper.core.model import Check, MeasurementResult, Window
from mapper.core.spec import Objective, StreamSpec

PARTS = ("wait", "process")
#: An interval wider than this fraction of its value gets a ``bucket-too-coarse`` check.
COARSE_RATIO = 1.0


def sum_of(parts: Sequence[Distribution]) -> Distribution | None:
    """One part as is, several convolved (assuming independence), none -> None."""
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return convolve(parts)


def _paths(spec: StreamSpec) -> list[tuple[str, ...]]:
    """Every path from a stage with no upstream to a stage with no downstream."""
    downstream: dict[str, list[str]] = {s.name: [] for s in spec.stages}
    for up, down in spec.hops:
        downstream[up].append(down)
    roots = [s.name for s in spec.stages if not s.upstream]
    out: list[tuple[str, ...]] = []
    # Iterative, depth-first in flow order: a chain of thousands of stages is no recursion.
    todo: list[tuple[str, ...]] = [(r,) for r in reversed(roots)]
    while todo:
        path = todo.pop()
        nxt = downstream[path[-1]]
        if not nxt:
            out.append(path)
        todo.extend((*path, n) for n in reversed(nxt))
    return out


def _rank_value(d: Distribution | None, q: float) -> float:
    """A sortable figure for "how slow": the estimate, else its lower bound, else -inf."""
    if d is None:
        return -math.inf
    e = d.quantile(q)
    if e.value is not None:
        return e.value
    return e.low if e.low is not None else -math.inf


def _estimate_checks(stage: str, part: str, d: Distribution, qs: Sequence[float]) -> list[Check]:
    out = []
    for q in qs:
        e = d.quantile(q)
        label = percentile_label(q)
        if e.note and e.note.startswith("too few samples"):
            out.append(Check("info", "too-few-samples", f"{stage} {part} {label}: {e.note}", stage, part))
        elif e.note and "+Inf" in e.note:
            out.append(Check("warning", "quantile-in-inf-bucket", f"{stage} {part} {label}: {e.note}",
                             stage, part))
        elif (e.value and e.low is not None and e.high is not None
              and (e.high - e.low) > COARSE_RATIO * e.value):
            out += _wide_interval(stage, part, d, e)
    return out


def _wide_interval(stage: str, part: str, d: Distribution, e: Estimate) -> list[Check]:
    """Why an interval is wider than its value, by what the part is made of: bucket advice only
    where there are buckets; samples (traces) are sharpened by more items, nothing else by us."""
    where = f"{stage} {part} {e.label}: interval {e.low:g}..{e.high:g}s is wider than the value {e.value:g}s"
    if d.kind == "histogram":
        return [Check("info", "bucket-too-coarse",
                      f"{where}; finer buckets around it would sharpen it (`latmap buckets` advises the bounds)",
                      stage, part)]
    if d.kind in ("samples", "merged-samples"):
        return [Check("info", "interval-too-wide",
                      f"{where}: it is the order-statistic interval of {d.count:,.0f} samples (no buckets); "
                      "more items in the window (a longer window, less trace sampling) would narrow it",
                      stage, part)]
    return []  # sketches and served percentiles: their accuracy is the back end's, not ours to advise


def _objective(o: Objective, d: Distribution | None) -> ObjectiveResult:
    if d is None:
        return ObjectiveResult(o, None, "unknown")
    e = d.quantile(o.q)
    if e.value is not None:
        return ObjectiveResult(o, e, "broken" if e.value > o.threshold else "met")
    if e.low is not None and e.low > o.threshold:
        return ObjectiveResult(o, e, "broken")
    return ObjectiveResult(o, e, "unknown")


def _straddles(e: Estimate, threshold: float) -> bool:
    """The estimate says met or broken but its interval reaches the other side of ``threshold``."""
    if e.value is None:
        return False
    low = -math.inf if e.low is None else e.low
    high = math.inf if e.high is None else e.high
    return low <= threshold < high if e.value <= threshold else low <= threshold


def _bound(x: float | None) -> str:
    return "unbounded" if x is None else f"{x:g}s"


@dataclass(frozen=True)
class MapInput:
    """What :func:`analyse` makes a map of, once gathered.

    ``results``: each ``(stage, part)``'s collected result (metrics win over traces).
    ``traces``: the trace side; a path whose every stage is measured from traces gets its
    lead time per trace (exact) instead of the convolution of its parts, and ``totals``
    likewise gives a stage's hop (wait + process) per item where it is known.
    ``measured_lead`` (the spec's ``end_to_end:``) replaces the computed lead time when it
    has data: it was measured per item, so it needs neither every stage in the traces nor
    the independence of a convolution; the computed one is compared with it
    (``lead-time-disagrees`` when their intervals at the ranking percentile do not overlap).
    ``lead`` is the per-item lead time when it was computed elsewhere (a partitioned
    analysis: ``traces`` then has no per-item rows), and ``examples`` its examples (merged
    from every partition's proposals for the thresholds :func:`example_thresholds_for`
    gives). ``checks`` join the map's; ``segments`` is what the segments are built from.
    """

    results: Mapping[tuple[str, str], MeasurementResult]
    traces: TraceEvidence | None = None
    checks: Sequence[Check] = ()
    totals: Mapping[str, Distribution] = field(default_factory=dict)
    segments: SegmentData | None = None
    measured_lead: MeasurementResult | None = None
    lead: Distribution | None = None
    examples: Examples | None = None
    #: Each stage's flow from traces (:func:`~mapper.analysis.flow_checks.assemble_flow` slots
    #: it together with the flow from metrics), and the items that reached the stream's end
    #: (None: unknown).
    flow_traced: Mapping[str, StageFlow] = field(default_factory=dict)
    items_completed: float | None = None
    #: The stages' flow metrics as gathered (errors, retries, inventory gauges).
    flow_reads: FlowReads | None = None
    #: Whether to explain the tail (``latmap map --no-explain``: not, and no attribute read).
    explain: bool = True
    #: A partitioned analysis's explanations (merged from the partitions' counts; None: the
    #: map makes them from the per-item table, or there is none to make).
    explained: Sequence[Explanation] | None = None

    def lead_time(self) -> Distribution | None:
        """The per-item lead time: given, or the traces' own."""
        items = self.traces.items() if self.traces is not None else None
        if self.lead is None and items is not None and items.lead.size:
            return SampleDistribution(items.lead)
        return self.lead


@dataclass(frozen=True)
class _Shape:
    """The map's stages, its lead time and the path it runs along, with their checks."""

    stages: tuple[StageResult, ...]
    path: tuple[str, ...]
    end_to_end: Distribution | None  # the measured lead time when it has data
    computed: Distribution | None  # the lead time from the stages
    lead: Distribution | None  # per item, from traces
    q_rank: float
    lead_measured: bool  # the spec's end_to_end: had data
    checks: tuple[Check, ...]


def analyse(spec: StreamSpec, window: Window, given: MapInput) -> LatencyMap:
    """Build the latency map of the stream over ``window`` from what was gathered (see
    :class:`MapInput`): stages, hops, lead time, flow efficiency, bottleneck, objectives,
    segments and examples, with every check."""
    shape = _shape(spec, given)
    by_name = {s.stage.name: s for s in shape.stages}
    hops = tuple(HopResult(up, down, by_name[down].total) for up, down in spec.hops)
    end_to_end, path, traces = shape.end_to_end, shape.path, given.traces
    checks = [*given.checks, *shape.checks]
    flow = flow_efficiency([by_name[n] for n in path], end_to_end)
    bottleneck = find_bottleneck(shape.stages, shape.q_rank)
    objectives = tuple(_objective(o, end_to_end if o.target == "end_to_end" else by_name[o.target].total)
                       for o in spec.objectives)
    checks += _objective_checks(objectives)
    method = ("measured" if shape.lead_measured else
              "traces" if end_to_end is not None and end_to_end is shape.lead and traces is not None else
              "convolution" if len([n for n in path if by_name[n].total is not None]) > 1 else "single")
    seg = given.segments
    segments = (build_segments(spec, window, seg.hourly, seg.samples, seg.labels, seg.merged)
                if seg is not None else None)
    if segments is not None:
        checks += segments.checks
    examples = given.examples  # partitioned (no rows to choose from): as merged from the partitions
    if traces is None or spec.examples.count <= 0:
        examples = None
    elif (items := traces.items()) is not None:
        examples = choose(items, _map_thresholds(spec, shape.stages, end_to_end, path, traces),
                          spec.examples.count)
    # The flow: each stage's from metrics where the spec names flow metrics, else from traces.
    metered: dict[str, StageFlow] = {}
    if wants_metered_flow(spec):
        metered, metered_checks = metered_flow(spec, window, given.results, given.flow_reads,
                                               seg.hourly if seg is not None else None)
        checks += metered_checks
    stream_flow = assemble_flow(spec, given.flow_traced, metered, given.items_completed)
    if stream_flow is not None:
        stream_flow, sampled = against_metrics(stream_flow, shape.stages)
        checks += [*sampled, *new_checks(checks, flow_checks(stream_flow))]
    return LatencyMap(spec, window, shape.stages, hops, end_to_end, path, flow,
                      bottleneck, objectives, tuple(checks), traces, method, segments, examples,
                      given.measured_lead, shape.computed if shape.lead_measured else None, stream_flow,
                      explanations=_explanations(spec, shape, bottleneck, given) if given.explain else ())


def explained_targets(spec: StreamSpec, traces: TraceEvidence, bottleneck: str | None,
                      path: Sequence[str]) -> list[tuple[str, str]]:
    """What a map explains from the traces' attributes: the bottleneck's hop (when traced)
    and the lead time (when every stage of the path is)."""
    wanted = [(bottleneck, "hop")] if bottleneck is not None and bottleneck in traces.stages else []
    if all(n in traces.stages for n in path):
        wanted.append((END_TO_END, "lead"))
    return wanted


def _explanations(spec: StreamSpec, shape: _Shape, bottleneck: Bottleneck | None,
                  given: MapInput) -> tuple[AnyExplanation, ...]:
    """Why the tail is slow, from the traces' attributes, for the bottleneck's hop and the
    lead time at the ranking percentile (only what the traces measure; a partitioned
    analysis's as merged); then the critical path of a stream with a join."""
    traces = given.traces
    if traces is None:
        return ()
    q = shape.q_rank
    wanted = explained_targets(spec, traces, bottleneck.stage if bottleneck is not None else None, shape.path)
    items = traces.items()
    if items is None:
        merged = {(e.target, e.part): e for e in given.explained or ()}
        return tuple(merged.get((t, p)) or not_explained(t, p, q, "the traces were analysed partition by partition")
                     for t, p in wanted)
    thresholds = _map_thresholds(spec, shape.stages, shape.end_to_end, shape.path, traces)
    out: list[AnyExplanation] = [
        explain(items, t, p, q, t_.low if (t_ := thresholds.get((t, p, q))) is not None else None)
        for t, p in wanted]
    ups = upstreams(spec.stages)
    if has_join(ups) and all(s.name in traces.stages for s in spec.stages):
        out.append(critical_path(items, ups, q))
    return tuple(out)


def example_thresholds_for(spec: StreamSpec, given: MapInput) -> dict[tuple[str, str, float], Threshold]:
    """The thresholds :func:`analyse` chooses the examples of the map of ``given`` with
    (none without traces), without the rest of the map: what a partitioned analysis's
    partitions propose examples for."""
    if given.traces is None:
        return {}
    shape = _shape(spec, given)
    return _map_thresholds(spec, shape.stages, shape.end_to_end, shape.path, given.traces)


def explain_targets_for(spec: StreamSpec, given: MapInput) -> list[tuple[str, str, float, float | None]]:
    """What :func:`analyse` explains from the traces' attributes for the map of ``given``,
    with each tail's threshold, ``(target, part, q, low)``, without the rest of the map: what
    a partitioned analysis's partitions count for."""
    if given.traces is None:
        return []
    shape = _shape(spec, given)
    b = find_bottleneck(shape.stages, shape.q_rank)
    thresholds = _map_thresholds(spec, shape.stages, shape.end_to_end, shape.path, given.traces)
    return [(t, p, shape.q_rank, th.low if (th := thresholds.get((t, p, shape.q_rank))) is not None else None)
            for t, p in explained_targets(spec, given.traces, b.stage if b is not None else None, shape.path)]


def _stage_results(spec: StreamSpec, given: MapInput) -> tuple[list[StageResult], list[Check]]:
    checks: list[Check] = []
    stage_results: list[StageResult] = []
    for stage in spec.stages:
        parts: dict[str, MeasurementResult | None] = {}
        dists = []
        for part in PARTS:
            r = given.results.get((stage.name, part))
            parts[part] = r
            if r is None:
                continue
            checks += [Check(c.level, c.code, c.message, stage.name, part) for c in r.checks]
            if r.distribution is not None:
                dists.append(r.distribution)
                checks += _estimate_checks(stage.name, part, r.distribution, spec.percentiles)
        if stage.wait is None and stage.process is None and stage.traces is None:
            checks.append(Check("warning", "no-measurement",
                                f"{stage.name}: the spec gives no wait or process measurement", stage.name))
        if not stage.owner:
            checks.append(Check("info", "no-owner", f"{stage.name}: no owner in the spec ({stage.place})",
                                stage.name))
        complete = all(r is None or r.distribution is not None for r in parts.values())
        total = given.totals.get(stage.name) or (sum_of(dists) if complete else None)
        stage_results.append(StageResult(stage, parts["wait"], parts["process"], total))
    return stage_results, checks


def _slowest_path(spec: StreamSpec, by_name: Mapping[str, StageResult], traces: TraceEvidence | None,
                  lead: Distribution | None, q_rank: float
                  ) -> tuple[tuple[str, ...], Distribution | None, set[str]]:
    """The path whose lead time is slowest at ``q_rank``, that lead time (per item from
    traces when every stage of the path is traced, else the convolution of its parts) and
    the stages whose missing data left a path without one."""
    paths = _paths(spec)
    best: tuple[float, tuple[str, ...], Distribution | None] = (-math.inf, paths[0] if paths else (), None)
    missing: set[str] = set()
    for path in paths:
        measured = [by_name[n] for n in path if by_name[n].stage.wait or by_name[n].stage.process
                    or by_name[n].stage.traces]
        if any(s.total is None for s in measured):
            missing |= {n for n in path if by_name[n].total is None}
            continue
        parts_d = [d for n in path for p in PARTS
                   if (r := by_name[n].part(p)) is not None and (d := r.distribution) is not None]
        # Lead time per trace is exact; it needs every stage of the path in the traces.
        from_traces = (traces is not None and lead is not None and lead.count > 0
                       and all(n in traces.stages for n in path))
        e2e = lead if from_traces else sum_of(parts_d)
        if _rank_value(e2e, q_rank) >= best[0]:
            best = (_rank_value(e2e, q_rank), path, e2e)
    return best[1], best[2], missing


def _shape(spec: StreamSpec, given: MapInput) -> _Shape:
    stage_results, checks = _stage_results(spec, given)
    by_name = {s.stage.name: s for s in stage_results}
    q_rank = 0.99 if 0.99 in spec.percentiles else max(spec.percentiles)
    lead, traces, measured_lead = given.lead_time(), given.traces, given.measured_lead
    path, end_to_end, missing = _slowest_path(spec, by_name, traces, lead, q_rank)
    lead_measured = measured_lead is not None and measured_lead.distribution is not None
    if (not lead_measured and end_to_end is not None and traces is not None and len(path) > 1
            and end_to_end is not lead):
        checks.append(Check("warning", "lead-time-not-from-traces", _why_not_from_traces(path, traces)))
    if lead_measured:
        pass  # the lead time was measured: a computed one missing is no gap in the map
    elif end_to_end is None and missing:
        checks.append(Check("warning", "no-end-to-end",
                            f"no end-to-end lead time: no data for {', '.join(sorted(missing))}"))
    elif end_to_end is None and len(path) > 1:
        blockers = [f"{n} {p}" for n in path for p in PARTS
                    if (r := by_name[n].part(p)) is not None and r.distribution is not None
                    and not addable(r.distribution)]
        if blockers:
            checks.append(Check("warning", "no-end-to-end", (
                f"no end-to-end lead time: {', '.join(blockers)} cannot be added to the other parts "
                "(percentiles computed per instance or per host are not a distribution)")))
    computed = end_to_end
    if measured_lead is not None:
        checks += [Check(c.level, c.code, f"end to end: {c.message}") for c in measured_lead.checks]
        if measured_lead.distribution is None:
            checks.append(Check("warning", "no-end-to-end", (
                f"the measured lead time ({measured_lead.provenance}) has no data in the window: "
                "the end to end is computed from the stages")))
        else:
            end_to_end = measured_lead.distribution
            checks += [Check(c.level, c.code, c.message)
                       for c in _estimate_checks("end to end", "lead time", end_to_end, spec.percentiles)]
            if computed is not None:
                checks += _disagreement(measured_lead.distribution, computed, q_rank)
    return _Shape(tuple(stage_results), path, end_to_end, computed, lead, q_rank, lead_measured, tuple(checks))


def _objective_checks(objectives: Sequence[ObjectiveResult]) -> list[Check]:
    checks = []
    for o in objectives:
        target = None if o.objective.target == "end_to_end" else o.objective.target
        if o.status == "unknown":
            why = o.estimate.note if o.estimate and o.estimate.note else "no data"
            checks.append(Check("warning", "objective-unknown",
                                f"objective {o.objective.label} <= {o.objective.threshold:g}s: cannot tell ({why})",
                                target))
        elif o.estimate is not None and _straddles(o.estimate, o.objective.threshold):
            checks.append(Check("warning", "objective-uncertain", (
                f"objective {o.objective.label} <= {o.objective.threshold:g}s: {o.status} by the estimate "
                f"{o.estimate.value:g}s, but its interval [{_bound(o.estimate.low)}..{_bound(o.estimate.high)}] "
                "crosses the threshold: the data cannot confirm the verdict"), target))
    return checks


def _map_thresholds(spec: StreamSpec, stage_results: Sequence[StageResult], end_to_end: Distribution | None,
                    path: Sequence[str], traces: TraceEvidence) -> dict[tuple[str, str, float], Threshold]:
    thresholds = example_thresholds(spec.percentiles, stage_results, end_to_end)
    if not all(n in traces.stages for n in path):
        # The traces' items span only the traced stages: their lead is part of the lead
        # time, not an example of it (the lead time is a convolution or a measurement).
        thresholds = {k: t for k, t in thresholds.items() if k[0] != END_TO_END}
    return thresholds


def example_thresholds(qs: Sequence[float], stage_results: Sequence[StageResult],
                       end_to_end: Distribution | None) -> dict[tuple[str, str, float], Threshold]:
    """What qualifies as an example of each part and percentile: at or beyond the lower
    bound of the interval the report prints (its value when it has no interval); the median
    contrast inside the p50's interval. A percentile the data cannot support has none."""
    dists: list[tuple[str, str, Distribution | None]] = [
        (s.stage.name, p, r.distribution if r is not None else None)
        for s in stage_results for p in PARTS for r in (s.part(p),)]
    dists += [(s.stage.name, "hop", s.total) for s in stage_results]
    dists.append((END_TO_END, "lead", end_to_end))
    out: dict[tuple[str, str, float], Threshold] = {}
    for target, part, d in dists:
        if d is None or not d.count:
            continue
        for q in qs:
            if too_few_note(q, d.count):  # no percentile, so no item is "behind" it
                continue
            e = d.quantile(q)
            low = e.low if e.low is not None else e.value
            if low is not None and math.isfinite(low):
                out[(target, part, q)] = Threshold(low)
        m = d.quantile(0.5)
        if m.value is not None:
            lo = m.low if m.low is not None else m.value
            hi = m.high if m.high is not None else m.value
            out[(target, part, MEDIAN)] = Threshold(lo, hi, m.value)
    return out


def _disagreement(measured: Distribution, computed: Distribution, q: float) -> list[Check]:
    """An info check when the measured and the computed lead time's intervals at ``q`` miss
    each other: the stages do not explain the items' lead time (gaps, a missing stage, or
    dependent hops for a convolution)."""
    m, c = measured.quantile(q), computed.quantile(q)
    if None in (m.low, m.high, c.low, c.high):
        return []
    if m.high < c.low or c.high < m.low:  # type: ignore[operator]
        return [Check("info", "lead-time-disagrees", (
            f"end to end {percentile_label(q)}: measured [{m.low:g}..{m.high:g}]s, computed from the stages "
            f"[{c.low:g}..{c.high:g}]s: the stages do not add up to the measured lead time"))]
    return []


def _why_not_from_traces(path: Sequence[str], traces: TraceEvidence) -> str:
    """Why the lead time is a convolution although traces were read (for a check)."""
    head = "end to end is a convolution of the hops, not a lead time per item from traces: "
    untraced = [n for n in path if n not in traces.stages]
    if untraced:
        return head + f"{', '.join(untraced)} {'is' if len(untraced) == 1 else 'are'} not measured from traces"
    shares = ", ".join(f"{n} {traces.completeness(n):.1%}" for n in path)
    return head + (f"none of the {traces.traces:,} traced items contains every stage of the path (present in: "
                   f"{shares}); are consumers in other traces linked to their producers?")
