"""What a map reads of its spec: the measurements in flow order, which parts take their
segments from hourly bucket counts, the single path a partitioned analysis replays, and the
traced parts it slots into segments. Pure functions of the spec (and the window); no I/O.
"""

from __future__ import annotations

from mapper.analysis.latency import PARTS
from mapper.analysis.segments import SamplePlan, sample_plan
from mapper.core.model import Window
from mapper.core.spec import Measurement, StreamSpec

#: The key of the measured lead time (the spec's top-level ``end_to_end:``) in ``collect``'s results.
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


def wants_segments(spec: StreamSpec) -> bool:
    """The spec asks for some segment (hours, weekdays, labels or events)."""
    seg = spec.segments
    return bool(seg.hours or seg.weekdays or seg.labels or spec.events)


def metric_hourly(spec: StreamSpec, m: Measurement) -> bool:
    """A part whose segments come from hourly bucket counts (metrics win over traces): a
    Prometheus histogram (a scrape has no history; summaries cannot be summed per hour)."""
    return spec.sources[m.source].kind == "prometheus" and m.kind == "histogram"


def single_path(spec: StreamSpec) -> tuple[str, ...] | None:
    """The stream's stages in order when they form one path, every stage measured from
    traces (then a partitioned analysis merges the tail attribution too); else None."""
    stages = spec.stages
    if not stages or any(s.traces is None for s in stages) or stages[0].upstream:
        return None
    if any(s.upstream != (stages[i].name,) for i, s in enumerate(stages[1:])):
        return None
    return tuple(s.name for s in stages)


def segment_plan(spec: StreamSpec, window: Window, qs: tuple[float, ...]) -> SamplePlan | None:
    """The traced parts a partitioned analysis slots into segments (those whose segments
    come from traces, not hourly bucket counts), or None when the spec asks for no segment."""
    if not wants_segments(spec):
        return None
    hourly = {(st, part) for st, part, m in measurements(spec) if metric_hourly(spec, m)}
    keys = [(s.name, part) for s in spec.stages if s.traces is not None for part in ("process", "wait")
            if (s.name, part) not in hourly]
    return sample_plan(spec, window, keys, qs)
