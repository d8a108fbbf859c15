"""``latmap explain``: why the tail of one part of one stage (or the lead time) is slow.

    >>> result = run_explain(ExplainRequest(MapRequest("stream.yaml"), "risk", "hop"))  # doctest: +SKIP
    >>> result.explanations[0].significant[0].key

The map is made as every command makes it (:func:`~mapper.app.job.run_map`, the asked
percentile added to the spec's); the explanation compares the tail's items with the others
(:mod:`mapper.analysis.explain`). ``baseline`` (a pinned report.json whose ``explanations``
hold the same target, part and percentile) or ``versus`` (the same hours ``versus`` seconds
earlier, mapped in this run) add the comparison with the baseline's tail.

Beside the attributes: when a metric measures the part (a Prometheus histogram), its
``slices`` by label (:func:`~mapper.app.explain_metrics.explain_slices_for`, through the
map's own sources; ``versus`` compares them with the earlier window too); when the stream
has a join (a stage with several upstreams) and traces, the ``critical_path`` of the items
at the percentile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mapper.analysis.baseline import load_baseline
from mapper.analysis.critical_path import critical_path, upstreams
from mapper.analysis.examples import END_TO_END, EXAMPLE_PARTS
from mapper.analysis.explain import CONTRASTS, KIND_ATTRIBUTES, Explanation, Options, ValueCount, against, explain
from mapper.analysis.explain.compare import not_explained
from mapper.analysis.explain.kinds import AnyExplanation, has_join
from mapper.analysis.latency import LatencyMap, example_thresholds
from mapper.analysis.slices import SlicesExplanation
from mapper.app.explain_metrics import earlier, explain_slices_for, part_measurement
from mapper.app.gather import Sources
from mapper.app.job import run_map
from mapper.app.request import MapRequest, requested_spec
from mapper.core.distribution import percentile_label
from mapper.core.durations import format_duration, format_time
from mapper.core.errors import UsageError
from mapper.core.model import Window
from mapper.core.source import Source
from mapper.core.spec import StreamSpec
from mapper.render.explain import explanations_json

__all__ = ["ExplainRequest", "ExplainResult", "Options", "changed", "explanations_doc", "run_explain"]


@dataclass(frozen=True)
class ExplainRequest:
    """One explanation to make: of ``part`` (wait, process, hop or lead) of ``stage`` (None
    for ``lead``) at ``percentile`` (e.g. 99), the tail against ``contrast`` (``rest`` or
    ``median``), grouped and tested as ``options`` say; ``baseline`` a report.json to
    compare the tail with, or ``versus`` seconds (the same hours that much earlier).
    ``collectors``: sources by name instead of those the spec makes (tests, embedders)."""

    map: MapRequest
    stage: str | None
    part: str
    percentile: float = 99.0
    contrast: str = "rest"
    options: Options = field(default_factory=Options)
    baseline: str | None = None
    versus: float | None = None
    collectors: Mapping[str, Source] | None = None


@dataclass(frozen=True)
class ExplainResult:
    """The explanations (this one's ``attributes`` first, then the baseline comparison when
    asked, then the ``slices`` of a metric-measured part and the ``critical_path`` of a
    stream with a join), the spec (overrides applied) and the window."""

    explanations: tuple[AnyExplanation, ...]
    spec: StreamSpec
    window: Window


def _target(spec: StreamSpec, req: ExplainRequest) -> str:
    if req.part not in EXAMPLE_PARTS:
        raise UsageError(f"--part: {req.part!r} is not one of {', '.join(EXAMPLE_PARTS)}")
    if not 0 < req.percentile < 100:
        raise UsageError(f"--percentile: {req.percentile:g} is not between 0 and 100")
    if req.contrast not in CONTRASTS[:2]:
        raise UsageError(f"--against: {req.contrast!r} is not one of {', '.join(CONTRASTS[:2])}")
    if req.baseline is not None and req.versus is not None:
        raise UsageError("--baseline and --versus: give one of them")
    if req.part == "lead":
        return END_TO_END
    if req.stage is None:
        raise UsageError(f"--stage: give the stage whose {req.part} to explain (or --part lead)")
    if req.stage not in {s.name for s in spec.stages}:
        raise UsageError(f"--stage: {req.stage!r} is not a stage of {spec.path} "
                         f"(stages: {', '.join(s.name for s in spec.stages)})")
    return req.stage


def run_explain(req: ExplainRequest) -> ExplainResult:
    """Map, then explain (see the module docstring). Arguments are checked against the
    spec before any source is asked (a UsageError names the option); a baseline is read
    before the map too (a UsageError names the file)."""
    spec = requested_spec(req.map)
    target = _target(spec, req)
    q = round(req.percentile / 100, 12)
    if q not in spec.percentiles:
        spec = dataclasses.replace(spec, percentiles=(*spec.percentiles, q))
    old = _baseline_counts(req.baseline, spec.name, target, req.part, q) if req.baseline else None
    request = dataclasses.replace(req.map, spec=spec, explain=True)  # explain reads every attribute
    made = Sources(spec, req.collectors)
    mapped = run_map(request, made)
    lm, window = mapped.latency_map, mapped.window
    measured = part_measurement(spec, req.stage or "", req.part) if req.part in ("wait", "process", "lead") else None
    traced = lm.traces is not None and (target == END_TO_END or target in lm.traces.stages)
    out: list[AnyExplanation] = []
    if traced or measured is None:
        now = _explain_map(lm, target, req.part, q, req.contrast, req.options)
        out.append(now)
        if old is not None:
            out.append(against(now, old[0], old[1], f"baseline {req.baseline}", req.options, old[2]))
        elif req.versus is not None:
            before = dataclasses.replace(request, until=window.end - req.versus, length=window.seconds)
            then = _explain_map(run_map(before, made).latency_map, target, req.part, q, req.contrast, req.options)
            out.append(against(now, then.counts, then.tail_items,
                               f"the same hours {format_duration(req.versus)} earlier", req.options, then.left_out))
    if measured is not None:
        out.append(explain_slices_for(spec, window, req.stage or target, req.part, q,
                                      earlier(window, req.versus) if req.versus is not None else None, made,
                                      req.options.max_values, req.options.include_pii))
    ups = upstreams(spec.stages)
    items = lm.traces.items() if lm.traces is not None else None
    if has_join(ups) and items is not None and all(s.name in items.stages for s in spec.stages):
        out.append(critical_path(items, ups, q))
    return ExplainResult(tuple(out), spec, window)


def changed(explanations: tuple[AnyExplanation, ...]) -> int:
    """What ``--baseline`` or ``--versus`` found changed: attribute values whose share of the
    tail grew significantly, and label slices now slower than in the earlier window (the
    command exits 1 when there is any)."""
    grew = sum(len(e.significant) for e in explanations if isinstance(e, Explanation) and e.contrast == "baseline")
    slower = sum(len(lc.slower) for e in explanations if isinstance(e, SlicesExplanation) and e.versus is not None
                 for lc in e.versus.labels)
    return grew + slower


def _explain_map(lm: LatencyMap, target: str, part: str, q: float, contrast: str, opts: Options) -> Explanation:
    """The explanation of ``part`` of ``target`` at ``q`` from the map's traces, with the
    threshold the map's own interval gives (what the report prints)."""
    traces = lm.traces
    if traces is None:
        return not_explained(target, part, q, "the spec measures no stage from traces")
    if target != END_TO_END and target not in traces.stages:
        return not_explained(target, part, q, f"{target} is not measured from traces")
    items = traces.items()
    if items is None:  # the map's own explanations were counted over the partitions
        made = [e for e in lm.explanations if isinstance(e, Explanation) and (e.target, e.part) == (target, part)
                and e.percentile == q and e.contrast == contrast]
        return made[0] if made else not_explained(
            target, part, q, "the traces were analysed partition by partition (a window over "
            "engine.memory_budget), which explains the bottleneck's hop and the lead time at the ranking "
            "percentile against the rest only: narrow the window")
    end = lm.end_to_end if all(n in traces.stages for n in lm.path) else None
    t = example_thresholds((q,), lm.stages, end).get((target, part, q))
    return explain(items, target, part, q, t.low if t is not None else None, contrast, opts)


def _baseline_counts(path: str, stream: str, target: str, part: str,
                     q: float) -> tuple[list[ValueCount], int, dict[str, list[str]]]:
    """The baseline report's counts for ``target``/``part``/``q``, its tail items and what
    it left out; a
    UsageError naming the file when it has none (an older report, another percentile)."""
    doc = load_baseline(path, stream)
    for e in doc.get("explanations") or []:
        if (isinstance(e, dict) and e.get("kind") == KIND_ATTRIBUTES and e.get("stage") == target
                and e.get("part") == part and e.get("percentile") == percentile_label(q)
                and e.get("contrast") in (None, "rest", "median")):
            left = e.get("left_out")
            left_out = ({str(k): [str(x) for x in v] for k, v in left.items() if isinstance(v, list)}
                        if isinstance(left, dict) else {})
            tail = _int(e.get("tail_items"), f"{path}: explanations: tail_items")
            counts = _counts(e.get("counts"), path)
            for i, c in enumerate(counts):  # more than the tail holds would make shares above 1
                if c.tail > tail:
                    raise UsageError(f"{path}: explanations: counts[{i}]: tail {c.tail} is more than the "
                                     f"{tail} tail items")
            return counts, tail, left_out
    raise UsageError(f"{path}: no explanation of {target} {part} {percentile_label(q)} in the baseline "
                     "(run latmap explain --format json for it, or map with it as the bottleneck)")


def _int(x: Any, where: str) -> int:
    if not isinstance(x, int) or isinstance(x, bool) or x < 0:
        raise UsageError(f"{where}: {x!r} is not a count")
    return x


def _counts(rows: Any, path: str) -> list[ValueCount]:
    if not isinstance(rows, list):
        raise UsageError(f"{path}: explanations: counts is not a list")
    out = []
    for i, r in enumerate(rows):
        where = f"{path}: explanations: counts[{i}]"
        if not isinstance(r, dict) or not all(isinstance(r.get(k), str) for k in ("stage", "scope", "key", "value")):
            raise UsageError(f"{where}: needs stage, scope, key and value as text")
        out.append(ValueCount(r["stage"], r["scope"], r["key"], r["value"], _int(r.get("tail"), where),
                              _int(r.get("rest"), where)))
    return out


def explanations_doc(result: ExplainResult) -> dict[str, Any]:
    """What ``--format json`` prints: the stream, the window and every explanation as in
    ``report.json`` ``explanations``."""
    return {"stream": result.spec.name,
            "window": {"start": format_time(result.window.start), "end": format_time(result.window.end)},
            "explanations": explanations_json(result.explanations, result.spec.links)}
