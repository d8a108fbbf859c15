"""The spec's ``stages:``: the boxes of the map in flow order, each with its owner, what
measures its wait and process time (metrics, or spans by ``traces:``), and its upstreams.

Stages are listed in flow order, so an upstream must name an earlier stage and the graph has
no cycle by construction; without ``upstream:`` a stage follows the one listed before it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mapper.core.spec import keys
from mapper.core.spec._parse import Problems, check_keys, name_field, str_field
from mapper.core.spec.flow import FlowMetric, parse_inventory, parse_rework, parse_workers
from mapper.core.spec.measurements import Measurement, parse_measurement
from mapper.core.spec.objectives import Objective, parse_objectives
from mapper.core.spec.sources import TRACE_SOURCE_KINDS, SourceSpec
from mapper.core.yamlload import LDict, LList

#: Span attribute names a trace match may use, and the span column each is read from.
TRACE_ATTRIBUTES = ("messaging.destination.name", "messaging.system", "peer.service", "db.system")
#: The most paths (first stage to last) a stream may have: each path's lead time is computed.
MAX_PATHS = 1000


@dataclass(frozen=True)
class TraceMatch:
    """A stage measured from traces: its spans, by ``service.name`` and optional filters."""

    source: str
    service: str
    place: str
    span_name: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    name: str
    place: str
    owner: str | None = None
    wait: Measurement | None = None
    process: Measurement | None = None
    upstream: tuple[str, ...] = ()
    description: str | None = None
    traces: TraceMatch | None = None
    #: The stage's share weight when ``latmap budgets`` splits an end-to-end objective
    #: (``None``: split by the hops' current shares of the tail). Always > 0.
    weight: float | None = None
    #: How many work at the stage at once (utilisation, capacity); None: counted from the
    #: spans' distinct ``service.instance.id``, else unknown.
    workers: int | None = None
    #: The flow read from metrics (:mod:`mapper.core.spec.flow`): failed and retried
    #: attempts, and the gauge of the items waiting before the stage.
    errors: FlowMetric | None = None
    retries: FlowMetric | None = None
    inventory: FlowMetric | None = None


@dataclass
class ParsedStages:
    """What ``stages:`` gave: the stages, the objectives written under them, and the line of
    each stage name (the names later keys may refer to)."""

    stages: list[Stage] = field(default_factory=list)
    objectives: list[Objective] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)


def parse_stages(doc: LDict, src: Mapping[str, Any], sources: Mapping[str, SourceSpec],
                 p: Problems) -> ParsedStages:
    """Every stage of ``stages:``, in order; ``src`` is the ``sources:`` node as written and
    ``sources`` the sources that parsed."""
    out = ParsedStages()
    st = doc.get("stages")
    if not isinstance(st, LList) or not st:
        p.add(doc.line_of("stages"), "stages", "list at least one stage")
        st = LList()
    for i, snode in enumerate(st):
        line = st.line_of(i)
        if not isinstance(snode, LDict):
            p.add(line, f"stages[{i}]", "must be a mapping with name, owner, wait/process")
            continue
        out.stages.append(_stage(i, snode, line, src, sources, out, p))
    return out


def _stage(i: int, snode: LDict, line: int, src: Mapping[str, Any], sources: Mapping[str, SourceSpec],
           parsed: ParsedStages, p: Problems) -> Stage:
    """Stage ``i``; its objectives are added to ``parsed`` and its name to ``parsed.seen``."""
    seen = parsed.seen
    sname = name_field(snode, "name", f"stages[{i}]", p, required=True) or str(i)
    check_keys(snode, keys.STAGE, f"stages[{sname}]", p)
    if sname in seen:
        p.add(snode.line_of("name"), f"stages[{i}].name", f"duplicate stage {sname!r} (first at line {seen[sname]})")
    seen.setdefault(sname, snode.line_of("name"))
    where = f"stages[{sname}]"
    wait = parse_measurement(snode["wait"], snode.line_of("wait"), f"{where}.wait", src, p) if "wait" in snode else None
    process = (parse_measurement(snode["process"], snode.line_of("process"), f"{where}.process", src, p)
               if "process" in snode else None)
    if "upstream" in snode:
        upstream = _upstream(snode, sname, where, seen, p)
    else:
        upstream = (parsed.stages[-1].name,) if parsed.stages else ()
    if "objectives" in snode:
        parsed.objectives += parse_objectives(sname, snode["objectives"], snode.line_of("objectives"),
                                              f"{where}.objectives", p)
    weight = _weight(snode, where, p) if "weight" in snode else None
    rework = {k: parse_rework(snode[k], snode.line_of(k), f"{where}.{k}", process, src, p)
              for k in ("errors", "retries") if k in snode}
    inventory = (parse_inventory(snode["inventory"], snode.line_of("inventory"), f"{where}.inventory", src, p)
                 if "inventory" in snode else None)
    return Stage(name=sname, place=p.at(line), owner=name_field(snode, "owner", where, p),
                 wait=wait, process=process, upstream=upstream, weight=weight,
                 workers=parse_workers(snode, where, p) if "workers" in snode else None,
                 errors=rework.get("errors"), retries=rework.get("retries"), inventory=inventory,
                 description=str_field(snode, "description", where, p),
                 traces=_trace_match(snode["traces"], snode.line_of("traces"), f"{where}.traces",
                                     sources, p) if "traces" in snode else None)


def _upstream(snode: LDict, sname: str, where: str, seen: Mapping[str, int], p: Problems) -> tuple[str, ...]:
    """``upstream: a`` or ``[a, b]``: each an earlier stage (flow order keeps the graph acyclic)."""
    up = snode["upstream"]
    ups = [up] if isinstance(up, str) else list(up) if isinstance(up, list) else None
    if ups is None or not all(isinstance(u, str) for u in ups):
        p.add(snode.line_of("upstream"), f"{where}.upstream", "must be a stage name or a list of them")
        ups = []
    for u in ups:
        if u not in seen or u == sname:
            p.add(snode.line_of("upstream"), f"{where}.upstream",
                  f"{u!r} is not an earlier stage (stages are listed in flow order)")
    return tuple(ups)


def _trace_match(node: Any, line: int, where: str, sources: Mapping[str, SourceSpec],
                 p: Problems) -> TraceMatch | None:
    if not isinstance(node, LDict):
        p.add(line, where, "must be a mapping like {source: spans, service: alerting}")
        return None
    check_keys(node, keys.TRACE_MATCH, where, p)
    source = str_field(node, "source", where, p, required=True) or ""
    if source and (source not in sources or sources[source].kind not in TRACE_SOURCE_KINDS):
        known = ", ".join(n for n, s in sources.items() if s.kind in TRACE_SOURCE_KINDS) or "none defined"
        p.add(node.line_of("source"), f"{where}.source", f"{source!r} is not a traces source (traces sources: {known})")
    service = str_field(node, "service", where, p, required=True) or ""
    attributes: dict[str, str] = {}
    if "attributes" in node:
        a = node["attributes"]
        if not isinstance(a, LDict):
            p.add(node.line_of("attributes"), f"{where}.attributes", "must map attribute names to values")
        else:
            for k, v in a.items():
                if k not in TRACE_ATTRIBUTES:
                    p.add(a.line_of(k), f"{where}.attributes.{k}",
                          f"latmap matches only on {', '.join(TRACE_ATTRIBUTES)}")
                else:
                    attributes[str(k)] = str(v)
    return TraceMatch(source, service, p.at(node.line), str_field(node, "span_name", where, p), attributes)


def _weight(node: LDict, where: str, p: Problems) -> float | None:
    """A stage's budget weight: a finite number > 0 (a zero or negative share cannot be split)."""
    v = node["weight"]
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
    if not ok:
        p.add(node.line_of("weight"), f"{where}.weight", f"must be a number > 0, got {v!r}")
        return None
    return float(v)


def check_stage_sources(doc: LDict, stages: list[Stage], sources: Mapping[str, SourceSpec], p: Problems) -> None:
    """Spans come from one traces source per stream, and only through ``traces:`` (a traces
    source named as a stage's ``wait`` / ``process`` is a mistake worth saying so)."""
    trace_sources = {s.traces.source for s in stages if s.traces}
    if len(trace_sources) > 1:
        p.add(doc.line_of("stages"), "stages", "stages measured from traces must share one traces source "
              f"(found {', '.join(sorted(trace_sources))})")
    for s in stages:
        for part in (s.wait, s.process):
            if part and part.source in sources and sources[part.source].kind == "traces":
                p.add(int(part.place.rsplit(":", 1)[1]), f"stages[{s.name}]",
                      f"source {part.source!r} holds traces: use `traces: {{source: {part.source}, service: ...}}`")


def check_paths(doc: LDict, stages: list[Stage], p: Problems) -> None:
    """At most :data:`MAX_PATHS` paths through the stream: each one is mapped end to end."""
    paths = count_paths(stages)
    if paths > MAX_PATHS:
        p.add(doc.line_of("stages"), "stages", f"the upstream links make {paths if paths < 10**12 else 'over 10^12'} "
              f"paths through the stream (at most {MAX_PATHS}): each is mapped end to end; link fewer stages")


def count_paths(stages: list[Stage]) -> int:
    """Paths from a stage with no upstream to one with no downstream, counted in flow order
    (upstreams are earlier stages), in one pass: no walk, no recursion."""
    into: dict[str, int] = {}
    has_downstream = {u for s in stages for u in s.upstream}
    for s in stages:
        into[s.name] = sum(into.get(u, 0) for u in s.upstream) if s.upstream else 1
    return sum(n for name, n in into.items() if name not in has_downstream)
