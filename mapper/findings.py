"""What a value-stream review asks beyond the percentiles, gathered for the renderers:
where the time goes, which hop makes the tail slow, and what changed since the baseline.

Pure over a :class:`~mapper.analysis.LatencyMap` (and a baseline document); renderers take
the :class:`Findings` as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mapper import attribution as attr
from mapper import baseline as base
from mapper.analysis import LatencyMap
from mapper.model import Check


@dataclass(frozen=True)
class Findings:
    attribution: tuple[attr.TailAttribution, ...] = ()
    shares: tuple[attr.StageShare, ...] = ()
    comparison: base.Comparison | None = None
    #: Further report.json sections (JSON-ready), e.g. ``segments``, ``future_state``.
    sections: dict[str, Any] = field(default_factory=dict)
    lines: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(attr.to_json(self.attribution, self.shares)) if self.attribution else {}
        out["comparison"] = base.to_json(self.comparison) if self.comparison else None
        out.update(self.sections)
        return out

    def to_lines(self) -> list[str]:
        lines = attr.to_lines(self.attribution)
        if self.comparison is not None:
            c = self.comparison
            lines.append(f"vs baseline {c.baseline}: {len(c.regressions)} regression(s), "
                         f"{len(c.improvements)} improvement(s) beyond the intervals")
            lines += [f"  {ch.message()}" for ch in c.changes]
        return lines + list(self.lines)


def find(lm: LatencyMap, baseline: str | None = None) -> Findings:
    """Attribution and time shares always; the comparison when a baseline is named (the
    argument, else the spec's pinned one)."""
    parts = attr.trace_parts(lm)  # one pivot of the trace table, shared by both
    attributions = attr.attribute(lm, parts=parts)
    shares = attr.shares(lm, parts=parts)
    comparison = None
    path = baseline or lm.spec.baseline
    if path:
        comparison = base.compare(lm, base.load_baseline(path, lm.spec.name), str(path))
    checks = base.checks(comparison) if comparison else []
    return Findings(attributions, shares, comparison, lines=tuple(_future_lines(lm)), checks=tuple(checks))


def _future_lines(lm: LatencyMap) -> list[str]:
    """One line per asked percentile: the spec's planned changes, current -> future."""
    if not lm.spec.future:
        return []
    from mapper.errors import LatmapError
    from mapper.report import cell
    from mapper.whatif import future_state

    try:
        fs = future_state(lm, lm.spec.future)
    except LatmapError as err:
        return [f"future state: cannot apply the planned changes: {err}"]
    changes = "; ".join(c.describe() for c in fs.changes)
    out = [f"future state ({changes}; {fs.method}):"]
    for q in lm.spec.percentiles:
        from mapper.distribution import percentile_label

        out.append(f"  {percentile_label(q)}: {cell(fs.current.quantile(q))} -> {cell(fs.future.quantile(q))}")
    return out
