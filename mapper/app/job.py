"""The map job: every command that maps a stream (``map``, ``report``, ``deps``, ``examples``,
``whatif``, ``budgets``, ``buckets``, the demo) asks :func:`run_map` for it, so loading the
spec, choosing the window and building the map happen in one order, in one place.

    >>> result = run_map(MapRequest("stream.yaml", length=3600.0))   # doctest: +SKIP
    >>> result.latency_map.end_to_end

What the command then does with the map (findings, reports, budgets, a future state) is its
own business; the map itself is the same whichever command asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from mapper.analysis.latency import LatencyMap
from mapper.app import pipeline
from mapper.app.gather import Sources
from mapper.app.request import MapRequest, requested_spec
from mapper.core.model import Window
from mapper.core.spec import StreamSpec

__all__ = ["MapRequest", "MapResult", "run_map"]


@dataclass(frozen=True)
class MapResult:
    """The map, and the spec (overrides applied) and window it was made for."""

    latency_map: LatencyMap
    spec: StreamSpec
    window: Window


def run_map(request: MapRequest, sources: Sources | None = None) -> MapResult:
    """Load the spec (with the request's overrides), choose the window, build the map.
    ``sources``: the sources to ask, shared with what the command asks after the map (an
    explanation's label slices, a second window); default: made from the spec.

    Raises what those steps raise: SpecError for the spec, UsageError for a window that
    would start before 1970 or a bad override, SourceError when a source does not answer.
    """
    spec = requested_spec(request)
    window = pipeline.window_for(spec, request.length, request.until)
    return MapResult(pipeline.build_map(spec, window, request.progress, sources, explain=request.explain),
                     spec, window)
