"""The budgets benchmark on its quick run (50,000 traces): the plan over the analysis
benchmark's data holds (every hop capped at its budget, the traces replayed) and both
commands' times are measured side by side. No wall-time assertion on the quick run: the 2x
target is about the 1,000,000-trace run (``python benchmarks/budgets.py``)."""

from __future__ import annotations

import pytest

from tests.servers import load_benchmark

pytestmark = pytest.mark.slow


@pytest.mark.timeout(120)
def test_quick_run_plans_budgets_that_hold_and_times_both_commands() -> None:
    bench = load_benchmark("budgets")
    r = bench.run(bench.QUICK, rounds=1, echo=False)
    assert r["map_seconds"] > 0 and r["budgets_seconds"] > 0
    assert r["ratio"] == pytest.approx(r["budgets_seconds"] / r["map_seconds"])
    assert "every hop capped at its budget (trace replay)" in r["table"] and ": holds" in r["table"]
    assert "budgets at p99.85 per hop" in r["table"]  # 5 hops + the time between them: 6 terms
