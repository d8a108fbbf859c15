"""Per-hop budgets (:mod:`mapper.analysis.budgets`) as JSON (report.json's ``budgets``), YAML
and a terminal table. Formatting only: every number comes from the plans.

JSON shape, one entry per end-to-end objective::

    {"objective": {"target": "end_to_end", "percentile": "p99", "threshold": 2.0},
     "hop_percentile": "p99.7", "split": "tail shares"|"weights", "reserve": s,
     "feasible": true, "holds": true, "method": "trace replay"|"convolution, ...",
     "verified": EST, "margin": s|null,
     "budgets": [{"stage", "owner", "percentile", "threshold", "share", "current": EST|null, "over"}],
     "checks": [{"level", "code", "message", "stage"}]}

Hops over budget come first. Latencies are seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from mapper.analysis.budgets import BudgetPlan
from mapper.core.durations import format_duration
from mapper.core.quantiles import percentile_label
from mapper.render.cells import estimate_json, num

__all__ = ["budgets_json", "budgets_table", "budgets_yaml"]


def budgets_json(plans: Sequence[BudgetPlan]) -> list[dict[str, Any]]:
    """The plans as JSON-ready dicts (report.json's ``budgets``)."""
    out = []
    for p in plans:
        o = p.objective
        out.append({
            "objective": {"target": o.target, "percentile": percentile_label(o.q), "threshold": num(o.threshold)},
            "hop_percentile": percentile_label(p.hop_q),
            "split": p.split,
            "reserve": num(p.reserve),
            "feasible": p.feasible,
            "holds": p.holds,
            "method": p.method,
            "verified": None if p.verified is None else estimate_json(p.verified),
            "margin": num(p.margin),
            "budgets": [{
                "stage": h.stage, "owner": h.owner, "percentile": h.label, "threshold": num(h.threshold),
                "share": num(h.share), "current": None if h.current is None else estimate_json(h.current),
                "over": h.over,
            } for h in p.budgets],
            "checks": [{"level": c.level, "code": c.code, "message": c.message, "stage": c.stage}
                       for c in p.checks],
        })
    return out


def budgets_yaml(plans: Sequence[BudgetPlan]) -> str:
    """The same document as :func:`budgets_json`, as YAML."""
    return str(yaml.safe_dump({"budgets": budgets_json(plans)}, sort_keys=True, width=1_000_000,
                              allow_unicode=True))


def budgets_table(plans: Sequence[BudgetPlan]) -> str:
    """For people: per objective, the budgets (over-budget hops first, marked ``!``), the
    verification and the checks."""
    lines: list[str] = []
    for p in plans:
        o = p.objective
        lines.append(f"end_to_end {percentile_label(o.q)} <= {format_duration(o.threshold)}: "
                     f"budgets at {percentile_label(p.hop_q)} per hop, split by {p.split}"
                     + (f", {format_duration(p.reserve)} reserved for time between stages" if p.reserve > 0 else ""))
        if not p.feasible:
            lines.append("  no budget: no split can be shown to meet this objective")
        else:
            lines.append(f"  {'stage':<16} {'owner':<14} {'budget':>10} {'share':>7} {'now':>10}")
            for h in p.budgets:
                now = "n/a" if h.current is None or h.current.value is None else format_duration(h.current.value)
                mark = " !" if h.over else ""
                lines.append(f"  {h.stage + mark:<16} {h.owner or '-':<14} {format_duration(h.threshold):>10} "
                             f"{h.share:>7.1%} {now:>10}")
            v = p.verified
            if v is not None:
                shown = "n/a" if v.value is None else format_duration(v.value)
                high = "unbounded" if v.high is None else format_duration(v.high)
                margin = "unknown" if p.margin is None else format_duration(p.margin)
                lines.append(f"  every hop capped at its budget ({p.method}): {percentile_label(o.q)} {shown} "
                             f"(up to {high}), margin {margin}: {'holds' if p.holds else 'NOT SHOWN TO HOLD'}")
        for c in p.checks:
            lines.append(f"  {c.level}: {c.code}: {c.message}")
    return "\n".join(lines) + "\n"
