"""Per-hop budgets on chains with known timings: traces (every hop known per item) and
independent histograms; the budgets printed, written to the spec and in report.json agree."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from mapper.analysis.budgets import hop_quantile, plan_budgets
from mapper.analysis.findings import Findings
from mapper.analysis.latency import LatencyMap
from mapper.analysis.whatif import CONVOLUTION, TRACE_REPLAY
from mapper.app.budgets import budget_text, spec_with_budgets, with_budgets
from mapper.core.distribution import HistogramDistribution
from mapper.core.durations import parse_duration
from mapper.core.errors import SpecError, UsageError
from mapper.core.spec import Objective, loads_spec
from mapper.render.budgets import budgets_json, budgets_table, budgets_yaml
from mapper.render.report import to_json
from tests.analysis.test_whatif import _histogram, _metrics_map, _traced_map


def _with_objective(lm: LatencyMap, threshold: float, q: float = 0.99) -> LatencyMap:
    return replace(lm, spec=replace(lm.spec, objectives=(Objective("end_to_end", q, threshold, "s.yaml:9"),)))


@pytest.fixture(scope="module")
def traced() -> tuple[LatencyMap, dict[str, np.ndarray]]:
    return _traced_map()


def test_per_hop_percentile_keeps_the_union_bound() -> None:
    assert hop_quantile(0.99, 3) == 0.997
    assert hop_quantile(0.99, 1) == 0.99
    for q, k in ((0.99, 3), (0.999, 7), (0.9999, 4), (0.5, 3)):
        assert k * (1 - hop_quantile(q, k)) <= (1 - q) + 1e-12


def test_capping_every_hop_at_its_budget_and_replaying_the_traces_meets_the_objective(
        traced: tuple[LatencyMap, dict[str, np.ndarray]]) -> None:
    lm, h = traced
    lead = h["a"] + h["b"] + h["c"]
    threshold = float(np.quantile(lead, 0.99)) * 0.9  # broken now: budgets must bring it in
    (plan,) = plan_budgets(_with_objective(lm, threshold))
    assert plan.feasible and plan.method == TRACE_REPLAY and plan.holds
    assert plan.hop_q == 0.997
    assert sum(b.threshold for b in plan.budgets) == pytest.approx(threshold - plan.reserve)
    # Independently: cap each known hop at its budget, add them up.
    caps = {b.stage: b.threshold for b in plan.budgets}
    capped = sum(np.minimum(h[s], caps[s]) for s in "abc")
    assert np.quantile(capped, 0.99) <= threshold
    assert plan.margin is not None and plan.margin >= 0
    # The shares follow the hops' current p99.7 and every hop is over its share of a broken objective.
    now = {s: float(np.quantile(h[s], 0.997)) for s in "abc"}
    for b in plan.budgets:
        assert b.share == pytest.approx(now[b.stage] / sum(now.values()), rel=0.02)
        assert b.over


def test_a_hop_over_its_budget_is_named_first_with_weights(traced: tuple[LatencyMap, dict[str, np.ndarray]]) -> None:
    lm, h = traced
    lead = h["a"] + h["b"] + h["c"]
    spec = replace(lm.spec, stages=tuple(replace(s, weight={"a": 1.0, "b": 1.0, "c": 8.0}[s.name])
                                         for s in lm.spec.stages))
    lm = _with_objective(replace(lm, spec=spec), float(np.quantile(lead, 0.99)) * 1.5)
    (plan,) = plan_budgets(lm)
    assert plan.split == "weights"
    assert plan.budgets[0].over is True
    assert plan.budgets[0].stage in ("a", "b")
    assert {b.stage: b.share for b in plan.budgets} == pytest.approx({"a": 0.1, "b": 0.1, "c": 0.8})
    assert any(c.code == "budget-exceeded" for c in plan.checks)


def test_weights_on_only_some_stages_are_refused(traced: tuple[LatencyMap, dict[str, np.ndarray]]) -> None:
    lm, _ = traced
    spec = replace(lm.spec, stages=(replace(lm.spec.stages[0], weight=2.0), *lm.spec.stages[1:]))
    with pytest.raises(UsageError, match="weight to every stage"):
        plan_budgets(_with_objective(replace(lm, spec=spec), 1.0))


def test_budgets_from_histograms_are_verified_by_convolution() -> None:
    rng = np.random.default_rng(3)
    dists = {s: _histogram(rng.lognormal(np.log(0.005), 0.5, 200_000)) for s in "abc"}
    lm = _with_objective(_metrics_map(dists), 0.05)
    (plan,) = plan_budgets(lm)
    assert plan.method == CONVOLUTION and plan.feasible and plan.holds
    assert sum(b.threshold for b in plan.budgets) == pytest.approx(0.05)


def test_a_percentile_too_high_for_the_data_gives_no_budget() -> None:
    rng = np.random.default_rng(4)
    dists = {s: _histogram(rng.lognormal(np.log(0.005), 0.5, 200)) for s in "abc"}
    (plan,) = plan_budgets(_with_objective(_metrics_map(dists), 0.05))
    assert not plan.feasible and plan.budgets == ()
    codes = {c.code for c in plan.checks}
    assert {"budget-percentile-too-high", "budget-no-shares"} <= codes


def test_a_budget_beyond_the_observations_or_the_buckets_is_said() -> None:
    rng = np.random.default_rng(5)
    dists = {s: _histogram(rng.uniform(0.01, 0.019, 50_000)) for s in "abc"}
    dists["c"] = _histogram(rng.uniform(0.05, 0.07, 50_000))
    spec_w = {"a": 1.0, "b": 1.0, "c": 1000.0}
    lm = _with_objective(_metrics_map(dists), 3.0)
    lm = replace(lm, spec=replace(lm.spec, stages=tuple(replace(s, weight=spec_w[s.name]) for s in lm.spec.stages)))
    (plan,) = plan_budgets(lm)
    codes = {(c.code, c.stage) for c in plan.checks}
    assert ("budget-below-observations", "a") in codes
    assert ("budget-above-buckets", "c") in codes


def test_trace_gaps_beyond_the_objective_make_it_infeasible(traced: tuple[LatencyMap, dict[str, np.ndarray]]) -> None:
    lm, _ = traced
    assert lm.traces is not None
    table = lm.traces
    gapped = replace(table, lead=table.lead + 10.0)  # 10 s no hop explains
    (plan,) = plan_budgets(_with_objective(replace(lm, traces=gapped), 2.0))
    assert not plan.feasible
    assert any(c.code == "budget-infeasible" for c in plan.checks)


def test_weights_zero_or_negative_are_spec_errors() -> None:
    text = ("name: s\nsources: {p: {kind: prometheus, url: http://x}}\nstages:\n"
            "  - {name: a, process: {source: p, histogram: a_seconds}, weight: 0}\n"
            "  - {name: b, process: {source: p, histogram: b_seconds}, weight: -1}\n")
    with pytest.raises(SpecError) as err:
        loads_spec(text, "s.yaml")
    assert "s.yaml:4: stages[a].weight: must be a number > 0" in str(err.value)
    assert "s.yaml:5: stages[b].weight" in str(err.value)


SPEC = """\
# the trading chain
name: s
sources:
  p: {kind: prometheus, url: http://x}   # our Prometheus
stages:
  - name: a
    owner: team-a
    process: {source: p, histogram: a_seconds}
  - name: b
    process: {source: p, histogram: b_seconds}
    objectives: {p50: 1s}   # kept
  - name: c
    process: {source: p, histogram: c_seconds}
objectives: {end_to_end: {p99: 50ms}}
"""


def test_printed_written_and_reported_budgets_agree() -> None:
    rng = np.random.default_rng(6)
    dists = {s: _histogram(rng.lognormal(np.log(0.005), 0.5, 200_000)) for s in "abc"}
    lm = _with_objective(_metrics_map(dists), 0.05)
    plans = plan_budgets(lm)
    written = spec_with_budgets(SPEC, plans, "s.yaml")
    assert "# the trading chain" in written and "# our Prometheus" in written and "# kept" in written
    spec = loads_spec(written, "s.yaml")
    got = {o.target: o for o in spec.objectives if o.target != "end_to_end" and o.q == plans[0].hop_q}
    report = to_json(lm, with_budgets(lm, Findings()))
    printed = budgets_json(plans)
    assert report["budgets"] == json.loads(json.dumps(printed))
    for b, row in zip(plans[0].budgets, printed[0]["budgets"], strict=True):
        assert row["threshold"] == pytest.approx(b.threshold, rel=1e-8)
        assert got[b.stage].threshold == pytest.approx(b.threshold, abs=1e-6)
        assert got[b.stage].threshold <= b.threshold  # written never looser than planned
        assert f"{b.stage}" in budgets_table(plans)
    assert "budgets:" in budgets_yaml(plans)
    assert any(o.target == "b" and o.q == 0.5 for o in spec.objectives)


def test_budget_text_rounds_down() -> None:
    assert budget_text(0.0123456) == "12345us"
    assert parse_duration(budget_text(0.0123456)) <= 0.0123456
    assert budget_text(0.02) == "20ms"


def test_a_single_bucketed_hop_is_its_own_budget() -> None:
    d = HistogramDistribution.from_cumulative([0.01, 0.02, float("inf")], [50_000, 100_000, 100_000])
    lm = _with_objective(_metrics_map({"a": d, "b": d, "c": d}), 0.06)
    (plan,) = plan_budgets(lm)
    assert plan.holds and all(b.threshold == pytest.approx(0.02) for b in plan.budgets)


def test_no_end_to_end_objective_is_a_usage_error(traced: tuple[LatencyMap, dict[str, np.ndarray]]) -> None:
    with pytest.raises(UsageError, match="no end_to_end objective"):
        plan_budgets(traced[0])

