"""What a value-stream review asks beyond the percentiles, gathered for the renderers:
where the time goes, which hop makes the tail slow, what changed since the baseline, and the
future state the spec plans.

Pure over a :class:`~mapper.analysis.latency.LatencyMap` (and a baseline document); the
renderers (:mod:`mapper.render.sections`) turn :class:`Findings` into report sections and lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mapper.analysis import attribution as attr
from mapper.analysis import baseline as base
from mapper.analysis.latency import LatencyMap
from mapper.analysis.whatif import FutureState, future_state
from mapper.core.errors import LatmapError
from mapper.core.model import Check


@dataclass(frozen=True)
class Findings:
    attribution: tuple[attr.TailAttribution, ...] = ()
    shares: tuple[attr.StageShare, ...] = ()
    comparison: base.Comparison | None = None
    #: The spec's planned changes applied (``future:``), or None when it plans none.
    future: FutureState | None = None
    #: Why the planned changes cannot be applied to this map, or None.
    future_error: str | None = None
    #: Further report.json sections (JSON-ready) added by the app layer, e.g. ``history``.
    sections: dict[str, Any] = field(default_factory=dict)
    #: Further lines for people, added by the app layer (the history comparison).
    lines: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()


def find(lm: LatencyMap, baseline: str | None = None) -> Findings:
    """Attribution and time shares always; the comparison when a baseline is named (the
    argument, else the spec's pinned one); the future state when the spec plans changes."""
    parts = attr.trace_parts(lm)  # one pivot of the trace table, shared by both
    attributions = attr.attribute(lm, parts=parts)
    shares = attr.shares(lm, parts=parts)
    comparison = None
    path = baseline or lm.spec.baseline
    if path:
        comparison = base.compare(lm, base.load_baseline(path, lm.spec.name), str(path))
    checks = base.checks(comparison) if comparison else []
    future, future_error = None, None
    if lm.spec.future:
        try:
            future = future_state(lm, lm.spec.future)
        except LatmapError as err:
            future_error = str(err)
    return Findings(attributions, shares, comparison, future, future_error, checks=tuple(checks))
