"""A stream's trace-measured stages as the live series ``latmap serve --stream`` exposes.

``latmap serve --stream stream.yaml`` turns the spans of every stage with a ``traces:``
selector into histograms on its ``/metrics`` (:mod:`mapper.core.names`: ``STAGE_WAIT``,
``STAGE_PROCESS``, labelled ``stream`` and ``stage``). Once a Prometheus scrapes them, those
stages can be charted, recorded and alerted on like any histogram: :func:`with_live_series`
gives the spec in which each such stage's missing ``wait`` / ``process`` reads those series,
so ``latmap dashboards`` and ``latmap rules`` cover traced stages too. ``latmap map`` keeps
reading the spans themselves (the same values, exact rather than bucketed).
"""

from __future__ import annotations

from dataclasses import replace

from mapper.core.names import LIVE_LEAD_TIME, STAGE_PROCESS, STAGE_WAIT
from mapper.core.spec.measurements import Measurement
from mapper.core.spec.sources import SourceSpec
from mapper.core.spec.stages import Stage
from mapper.core.spec.stream import StreamSpec

#: The source the live series are read from when the spec has no Prometheus source (its URL
#: comes from ``--prometheus``).
LIVE_SOURCE = "latmap_live"


def live_measurement(spec: StreamSpec, stage: Stage, part: str, source: str) -> Measurement:
    """The live histogram of ``stage``'s ``part`` (``wait`` or ``process``) in ``source``."""
    place = stage.traces.place if stage.traces is not None else stage.place
    return Measurement(source, "histogram", STAGE_WAIT if part == "wait" else STAGE_PROCESS, place,
                       {"stream": spec.name, "stage": stage.name})


def with_live_series(spec: StreamSpec) -> StreamSpec:
    """``spec`` with every traced stage's unmeasured parts read from the live series (a first
    traced stage has no wait); unchanged when no stage is traced. The series are read from
    the spec's first Prometheus source, else from a new one, :data:`LIVE_SOURCE`, whose URL
    is empty until ``with_source_url("prometheus", url)`` sets it."""
    traced = {s.name for s in spec.stages if s.traces is not None}
    if not traced:
        return spec
    prom = next((s for s in spec.sources.values() if s.kind == "prometheus"), None)
    sources = dict(spec.sources)
    if prom is None:
        prom = SourceSpec(LIVE_SOURCE, "prometheus", "", f"{spec.path}: latmap serve --stream")
        sources[LIVE_SOURCE] = prom
    stages = []
    for s in spec.stages:
        if s.name in traced:
            has_upstream = any(u in traced for u in s.upstream)
            wait = s.wait or (live_measurement(spec, s, "wait", prom.name) if has_upstream else None)
            s = replace(s, wait=wait, process=s.process or live_measurement(spec, s, "process", prom.name))
        stages.append(s)
    return replace(spec, sources=sources, stages=tuple(stages))


def live_lead_time(spec: StreamSpec) -> Measurement | None:
    """The live lead-time histogram (``latmap_lead_time_seconds{stream=...}``) of a stream whose
    every stage is traced, read from its first Prometheus source (as :func:`with_live_series`
    gives it); None when some stage is not traced (no item passes every stage in the spans) or
    there is no Prometheus source."""
    if not spec.stages or any(s.traces is None for s in spec.stages):
        return None
    prom = next((s for s in spec.sources.values() if s.kind == "prometheus"), None)
    if prom is None:
        return None
    return Measurement(prom.name, "histogram", LIVE_LEAD_TIME, f"{spec.path}: latmap serve --stream",
                       {"stream": spec.name})
