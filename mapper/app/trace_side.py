"""The trace side of a map: per-item stage timings for the stages measured from traces,
read whole (a window within ``engine.memory_budget``) or analysed partition by partition
(:mod:`mapper.app.engine`), and the results, checks, hops per item and lead time they give.

A part the spec also measures with metrics keeps the metric result in the map; the two are
compared in checks (by the pipeline).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from mapper.analysis.evidence import MergedTraces, TraceEvidence
from mapper.analysis.examples import Examples, Threshold
from mapper.analysis.examples import Key as ExampleKey
from mapper.analysis.explain import Explanation
from mapper.analysis.explain.merge import Target
from mapper.analysis.flow import FlowSums, flow_sums
from mapper.analysis.flow_checks import traced_flows
from mapper.analysis.flow_model import StageFlow
from mapper.analysis.latency import MapInput, example_thresholds_for, explain_targets_for
from mapper.analysis.partition import LEAD, merged_part_results
from mapper.analysis.segments import MergedSegment
from mapper.analysis.servicegraph import Edge, service_graph
from mapper.analysis.traces import StageMatch, build_trace_table, part_results
from mapper.app.engine import ExampleRequest, Merged, analyse_partitioned, needed_qs
from mapper.app.plan import segment_plan, single_path
from mapper.core.distribution import Distribution, SampleDistribution
from mapper.core.errors import SourceError
from mapper.core.model import Check, MeasurementResult, Window
from mapper.core.source import Source
from mapper.core.spans import ATTRIBUTE_COLUMNS, DUPLICATE_SPAN
from mapper.core.spec import SourceSpec, Stage, StreamSpec, TraceMatch
from mapper.core.spec.engine import BYTES_PER_SPAN, is_url

Results = Mapping[tuple[str, str], MeasurementResult]


@dataclass(frozen=True)
class Traced:
    """The trace side of a map: its evidence (the per-item table, or the summary merged from
    partitions), the stage results, the checks, each stage's hop per item and the lead time
    (None: from the table)."""

    table: TraceEvidence | None
    results: dict[tuple[str, str], MeasurementResult]
    checks: list[Check]
    totals: dict[str, Distribution]
    lead: Distribution | None = None
    #: A partitioned analysis's examples (merged from the partitions' proposals).
    examples: Examples | None = None
    #: Merged from partitions: the traced parts' segments.
    segments: dict[tuple[str, str], MergedSegment] | None = None
    #: Each traced stage's flow (items in and out, rework, inventory, utilisation).
    flow: dict[str, StageFlow] = field(default_factory=dict)
    #: Items that reached the stream's end (the lead time's items; None: no flow).
    items_completed: float | None = None
    #: Merged from partitions: the map's attribute explanations (None: made from the table).
    explained: tuple[Explanation, ...] | None = None


def _traced(spec: StreamSpec) -> list[tuple[Stage, TraceMatch]]:
    return [(s, s.traces) for s in spec.stages if s.traces is not None]


def collect_traces(spec: StreamSpec, window: Window, source: Source,
                   metrics: Results | None = None, measured_lead: MeasurementResult | None = None,
                   examples: bool = True, attributes: bool = False, explain: bool = True) -> Traced:
    """The trace side of the spec's map over ``window``, from ``source`` (the source the
    stages' ``traces:`` name). A spool window of more spans than ``engine.memory_budget`` (or a spool given by
    URL) is analysed partition by partition; with ``examples`` its partitions then propose
    examples for the thresholds the map makes of the merged trace side and of ``metrics`` and
    ``measured_lead`` (the map's metric side, which wins where both measure a part).
    ``attributes``: read every span and resource attribute (what the map's explanations
    compare; their cost is measured in benchmarks/explain_read.py); ``explain``: partitions
    count attribute values for the map's explanations (a fifth pass)."""
    staged = _traced(spec)
    if not staged:
        return Traced(None, {}, [], {})
    spec_source = spec.sources[staged[0][1].source]
    matches = [StageMatch(s.name, t.service, t.span_name, {ATTRIBUTE_COLUMNS[k]: v for k, v in t.attributes.items()})
               for s, t in staged]
    names = {s.name for s, _ in staged}
    upstream = {s.name: next((u for u in s.upstream if u in names), None) for s, _ in staged}
    where = source.partitioned
    if where is not None:
        qs = needed_qs(spec)

        def merged_input(m: Merged) -> MapInput:
            """What the map is made of, as merged so far: the examples' thresholds and the
            explanations' targets are the map's own."""
            partial = _from_partitions(spec, spec_source, staged, m)
            return MapInput({**partial.results, **(metrics or {})}, partial.table, totals=partial.totals,
                            measured_lead=measured_lead, lead=partial.lead)

        def thresholds(m: Merged) -> Mapping[ExampleKey, Threshold]:
            return example_thresholds_for(spec, merged_input(m))

        def targets(m: Merged) -> list[Target]:
            return explain_targets_for(spec, merged_input(m))

        try:
            # A spool given by URL is only read partition by partition, whatever its size.
            engine = replace(spec.engine, memory_budget=-1) if is_url(where) else spec.engine
            wanted = ExampleRequest(spec.examples.count, thresholds) if examples and spec.examples.count > 0 else None
            merged = analyse_partitioned(where, int(window.start * 1e9), int(window.end * 1e9),
                                         engine, matches, upstream, qs, item_path=single_path(spec),
                                         examples=wanted, segments=segment_plan(spec, window, qs),
                                         replay=all(s.traces is not None for s in spec.stages),
                                         explain=targets if explain else None)
        except SourceError as err:
            raise SourceError(f"traces from {spec_source.name!r}: {err}") from err
        if merged is not None:
            return _from_partitions(spec, spec_source, staged, merged)
    return _in_memory(spec_source, source, window, staged, matches, upstream, attributes)


def _in_memory(spec_source: SourceSpec, source: Source, window: Window, staged: list[tuple[Stage, TraceMatch]],
               matches: list[StageMatch], upstream: dict[str, str | None], attributes: bool = False) -> Traced:
    try:
        services = [t.service for _, t in staged]
        loaded = source.spans(window, services, attributes=True) if attributes else source.spans(window, services)
    except SourceError as err:
        raise SourceError(f"traces from {spec_source.name!r}: {err}") from err
    table = build_trace_table(loaded.batch, matches, upstream)
    sums = flow_sums(table, loaded.batch, matches, upstream, (window.start, window.end))
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
    for s, t in staged:
        missing = sums.stages[s.name].missing if s.name in sums.stages else None
        for part, r in part_results(table, s.name, _where(spec_source, loaded.origin, t), missing).items():
            results[(s.name, part)] = r
        if s.wait is None and s.process is None and not table.stage_frame(s.name).empty:
            totals[s.name] = SampleDistribution(table.totals(s.name))
    flows, flow_checks = _flows(staged, upstream, sums)
    return Traced(table, results, checks + flow_checks, totals, flow=flows, items_completed=float(sums.completed))


def _flows(staged: list[tuple[Stage, TraceMatch]], upstream: Mapping[str, str | None],
           sums: FlowSums | None) -> tuple[dict[str, StageFlow], list[Check]]:
    """The traced stages' flow and its trace-only checks (none without sums)."""
    if sums is None:
        return {}, []
    downstream = {s.name: [d for d, u in upstream.items() if u == s.name] for s, _ in staged}
    return traced_flows(sums, downstream, {s.name: s.workers for s, _ in staged})


def _where(source: SourceSpec, origin: str, t: TraceMatch) -> str:
    where = f"{source.name} ({origin}): service={t.service}"
    return where + f" span={t.span_name}" if t.span_name else where


def _damaged_check(origin: str, damaged: list[str]) -> Check:
    return Check("warning", "spool-damaged", (
        f"{origin}: {len(damaged)} damaged segment(s) or file(s) not read, their spans missing from "
        f"the map: {', '.join(damaged[:10])}{' ...' if len(damaged) > 10 else ''} "
        "(latmap serve moves damaged write-ahead segments into _wal/quarantine/ when it starts; "
        "a damaged Parquet file stays where it is)"))


def _from_partitions(spec: StreamSpec, source: SourceSpec, staged: list[tuple[Stage, TraceMatch]],
                     merged: Merged) -> Traced:
    """The trace side from merged partitions (a window over ``engine.memory_budget``): the
    distributions exact; a check says which per-item figures are approximate."""
    origin = f"spool {source.path}"
    sums = merged.parts
    checks = [Check("info", "traces-partitioned", (
        f"{origin}: {merged.spans:,} spans analysed in {merged.partitions} partitions ({spec.engine.label} "
        "engine); percentiles, intervals and counts are exact (merged order statistics); the explanations' "
        "attribute counts are added over partitions (the in-memory findings, without example traces)"))]
    aside = {"damaged spool records (torn by a crash)": merged.torn, DUPLICATE_SPAN: sums.duplicates}
    if any(aside.values()):  # worded as the in-memory route words it
        reasons = ", ".join(f"{n:,} {r}" for r, n in sorted(aside.items()) if n)
        checks.append(Check("warning", "spans-set-aside", f"{origin}: spans set aside: {reasons}"))
    checks += list(sums.checks)
    if merged.unread:
        checks.append(_damaged_check(origin, list(merged.unread)))
    need = merged.spans * BYTES_PER_SPAN
    evidence = MergedTraces(tuple(s.name for s, _ in staged), sums.traces, sums.spans_used, sums.link_edges,
                            dict(sums.stage_rows), merged.part_means, merged.replays)
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
    for s, t in staged:
        for part, r in merged_part_results(s.name, _where(source, origin, t), merged.distributions, sums).items():
            results[(s.name, part)] = r
        total = merged.distributions.get((s.name, "total"))
        if s.wait is None and s.process is None and total is not None and total.count:
            totals[s.name] = total
    lead = merged.distributions.get(LEAD)
    upstream = {s.name: next((u for u in s.upstream if u in {x.name for x, _ in staged}), None) for s, _ in staged}
    flows, flow_checks = _flows(staged, upstream, sums.flow)
    return Traced(evidence, results, checks + flow_checks, totals, lead if lead is not None and lead.count else None,
                  examples=merged.examples,
                  segments=dict(merged.segments) if merged.segments is not None else None,
                  flow=flows, items_completed=float(sums.flow.completed) if sums.flow is not None else None,
                  explained=merged.explained)


def source_graph(source: Source) -> list[Edge]:
    """The service graph of every span ``source`` gives (a spool or OTLP files)."""
    return service_graph(source.spans(Window(0.0, 4e9)).batch)
