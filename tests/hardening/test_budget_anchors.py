"""Issue 25: ``budgets --write`` into a spec whose stages share YAML nodes (anchors, aliases,
merge keys) writes each stage's own budget, or nothing.

Before, a budget written into ``objectives: *common`` became the budget of every stage
aliasing it (the last one written won), and one written under a ``<<: *base`` merge went into
the base stage's mapping.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mapper.analysis.budgets import BudgetPlan, HopBudget
from mapper.app.budgets import spec_with_budgets, write_budgets
from mapper.core.errors import SpecError
from mapper.core.spec import Objective, load_spec, loads_spec

SPEC = """\
name: s
sources:
  p: {kind: prometheus, url: http://x}
stages:
  - name: a
    process: &p {source: p, histogram: a_seconds}
    objectives: &common {p50: 1s}
  - name: b
    process: *p
    objectives: *common
  - &base
    name: c
    process: {source: p, histogram: c_seconds}
    objectives:
      p90: 2s
  - <<: *base
    name: d
  - <<: *base
    name: e
objectives: {end_to_end: {p99: 50ms}}
"""


def _plan(*budgets: tuple[str, float], q: float = 0.99) -> BudgetPlan:
    hops = tuple(HopBudget(s, None, q, t, 0.2, None, False) for s, t in budgets)
    return BudgetPlan(Objective("end_to_end", 0.99, 0.05, "s.yaml:19"), q, "weights", 0.0, hops, None, None, ())


def _objectives(text: str) -> dict[tuple[str, float], float]:
    return {(o.target, o.q): o.threshold for o in loads_spec(text, "s.yaml").objectives}


def test_stages_sharing_an_anchor_or_a_merge_each_get_their_own_budget() -> None:
    plan = _plan(("a", 0.010), ("b", 0.020), ("c", 0.003), ("d", 0.004))
    got = _objectives(spec_with_budgets(SPEC, [plan], "s.yaml"))
    assert got == {
        ("a", 0.5): 1.0, ("a", 0.99): 0.010,
        ("b", 0.5): 1.0, ("b", 0.99): 0.020,
        ("c", 0.9): 2.0, ("c", 0.99): 0.003,
        ("d", 0.9): 2.0, ("d", 0.99): 0.004,
        ("e", 0.9): 2.0,  # merges from c, budgeted by no plan: keeps c's objectives as they were
        ("end_to_end", 0.99): 0.05,
    }


@pytest.mark.parametrize("only", ["a", "b", "c", "d", "e"])
def test_a_budget_for_one_sharing_stage_stays_on_that_stage(only: str) -> None:
    before = _objectives(SPEC)
    got = _objectives(spec_with_budgets(SPEC, [_plan((only, 0.007))], "s.yaml"))
    assert got == {**before, (only, 0.99): 0.007}


def test_the_written_file_holds_each_stages_budget(tmp_path: Path) -> None:
    path = tmp_path / "stream.yaml"
    path.write_text(SPEC)
    write_budgets(path, [_plan(("a", 0.010), ("b", 0.020))])
    objectives = {(o.target, o.q): o.threshold for o in load_spec(path).objectives}
    assert objectives[("a", 0.99)] == 0.010 and objectives[("b", 0.99)] == 0.020


def test_a_budget_that_would_leak_through_a_merge_is_refused_and_nothing_is_written() -> None:
    # c has no objectives of its own; d merges c, so a map added to c would be d's too.
    text = SPEC.replace("    objectives:\n      p90: 2s\n", "")
    with pytest.raises(SpecError, match=r"^s.yaml: writing the budgets would make d's p99 objective "
                                        r"0.003s instead of None"):
        spec_with_budgets(text, [_plan(("c", 0.003))], "s.yaml")
    # written for every stage reaching it, it is each one's own
    got = _objectives(spec_with_budgets(text, [_plan(("c", 0.003), ("d", 0.004), ("e", 0.005))], "s.yaml"))
    assert (got[("c", 0.99)], got[("d", 0.99)], got[("e", 0.99)]) == (0.003, 0.004, 0.005)
