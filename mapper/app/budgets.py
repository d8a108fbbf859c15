"""``latmap budgets``: per-hop budgets from the end-to-end objective, and ``--write``, which
adds them to the spec as each stage's ``objectives:``.

The spec is edited with ruamel.yaml's round-trip mode, so its comments, key order and
quoting stay as the owner wrote them; only the budget keys are added (or replaced, when a
stage already has an objective at that percentile). The file is written atomically and
loaded back through the spec loader before it replaces the original, so a write never
leaves a spec latmap cannot read. Stages that share a node through YAML anchors, aliases or
``<<:`` merge keys each get their own ``objectives`` mapping before a budget goes in, and the
reloaded spec must hold exactly the old objectives plus each stage's own budget, or nothing
is written (:class:`SpecError`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from mapper.analysis.budgets import BudgetPlan, plan_budgets
from mapper.analysis.findings import Findings
from mapper.analysis.latency import LatencyMap
from mapper.core.distribution import percentile_label
from mapper.core.durations import format_duration, parse_duration
from mapper.core.errors import LatmapError, SpecError
from mapper.core.files import write_atomic
from mapper.core.spec import loads_spec
from mapper.render.budgets import budgets_json

__all__ = ["budget_text", "budget_thresholds", "spec_with_budgets", "with_budgets", "write_budgets"]


def budget_text(seconds: float) -> str:
    """A budget as a spec duration that is never above the budget (``123.4ms`` rounded down
    to whole microseconds), so the written objective is at least as strict as the plan."""
    us = int(seconds * 1e6)
    if us >= 1000 and us % 1000 == 0:
        return f"{us // 1000}ms"
    return f"{us}us"


def spec_with_budgets(text: str, plans: Sequence[BudgetPlan], path: str = "<string>") -> str:
    """The spec ``text`` with every feasible plan's budgets under its stages' ``objectives``.

    Raises :class:`SpecError` when a stage is not found or the result does not load.
    """
    yaml = YAML()  # round trip: comments and order kept
    yaml.preserve_quotes = True
    yaml.width = 1_000_000
    doc = yaml.load(text)
    stages = {str(s.get("name")): s for s in doc.get("stages", []) if isinstance(s, CommentedMap)}
    for plan in plans:
        for h in plan.budgets:
            if h.stage not in stages:
                raise SpecError(f"{path}: stages: no stage {h.stage!r} to write its budget to")
    _unshare_objectives(list(stages.values()), {h.stage for p in plans for h in p.budgets})
    owner: dict[int, str] = {}  # each objectives mapping written into, and its stage
    for plan in plans:
        for h in plan.budgets:
            node = stages[h.stage]
            objectives = node.get("objectives")
            if not isinstance(objectives, CommentedMap) or owner.get(id(objectives), h.stage) != h.stage:
                # none yet, or another stage's reached through a merge key: this stage's own
                objectives = CommentedMap(objectives.items() if isinstance(objectives, CommentedMap) else ())
                node["objectives"] = objectives
            owner[id(objectives)] = h.stage
            objectives[h.label] = budget_text(h.threshold)
            objectives.yaml_add_eol_comment(
                f"budget for end_to_end {plan.objective.label.split()[-1]} <= "
                f"{format_duration(plan.objective.threshold)} (latmap budgets)", h.label)
    out = io.StringIO()
    yaml.dump(doc, out)
    written = out.getvalue()
    _check_written(text, written, plans, path)
    return written


def _unshare_objectives(nodes: list[CommentedMap], written: set[str]) -> None:
    """Give every stage that reaches a shared ``objectives`` mapping its own copy of it.

    Stages may share one (``objectives: *common``, or a ``<<: *base`` merge); a budget added to
    it would then be every sharing stage's budget. A mapping is shared when two stages reach
    it, or when it carries an anchor (an alias elsewhere may read it). Only mappings a budget
    is written into are copied; the copies say the same, so the other stages' objectives do
    not change."""
    reached: dict[int, list[CommentedMap]] = {}
    for node in nodes:
        objectives = node.get("objectives")  # merged keys included
        if isinstance(objectives, CommentedMap):
            reached.setdefault(id(objectives), []).append(node)
    for sharing in reached.values():
        shared = sharing[0]["objectives"]
        if len(sharing) < 2 and shared.anchor.value is None:
            continue
        if not any(str(node.get("name")) in written for node in sharing):
            continue
        for node in sharing:
            copy = CommentedMap(shared.items())
            if shared.fa.flow_style():
                copy.fa.set_flow_style()
            node["objectives"] = copy


def _check_written(text: str, written: str, plans: Sequence[BudgetPlan], path: str) -> None:
    """Load the written spec back (refusing one latmap could not read) and check that every
    objective is what it was, but each budgeted stage's own budget: a budget that landed on
    another stage too (a node shared through YAML anchors) is caught here, before writing."""
    before = loads_spec(text, path)
    after = loads_spec(written, path)
    expected = {(o.target, o.q): o.threshold for o in before.objectives}
    for plan in plans:
        for h in plan.budgets:
            expected[(h.stage, h.q)] = parse_duration(budget_text(h.threshold))
    got = {(o.target, o.q): o.threshold for o in after.objectives}
    wrong = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
    if wrong:
        target, q = wrong[0]
        raise SpecError(f"{path}: writing the budgets would make {target}'s {percentile_label(q)} objective "
                        f"{got.get((target, q))!r}s instead of {expected.get((target, q))!r}s; nothing written")


def write_budgets(spec_path: str | Path, plans: Sequence[BudgetPlan]) -> Path:
    """Add the budgets to the spec file in place (atomically); return its path."""
    p = Path(spec_path)
    text = p.read_text(encoding="utf-8")
    return write_atomic(p, spec_with_budgets(text, plans, str(p)))


def budget_thresholds(lm: LatencyMap) -> list[tuple[str, float]]:
    """``(stage, budget)`` of every feasible plan, for bucket advice; none when no plan can be
    made (no end-to-end objective, no end to end)."""
    if not any(o.target == "end_to_end" for o in lm.spec.objectives) or lm.end_to_end is None:
        return []
    try:
        plans = plan_budgets(lm)
    except LatmapError:
        return []
    return [(h.stage, h.threshold) for p in plans for h in p.budgets]


def with_budgets(lm: LatencyMap, found: Findings) -> Findings:
    """``found`` with report.json's ``budgets`` section when the spec has an end-to-end
    objective: the plans, or ``{"error": ...}`` when none can be made."""
    if not any(o.target == "end_to_end" for o in lm.spec.objectives):
        return found
    try:
        section: object = budgets_json(plan_budgets(lm))
    except LatmapError as err:
        section = {"error": str(err)}
    return replace(found, sections={**found.sections, "budgets": section})
