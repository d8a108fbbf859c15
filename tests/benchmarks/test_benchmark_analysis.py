"""The analysis benchmark's cross-check, on its quick run (50,000 traces).

latmap (``build_trace_table`` and ``part_results``) and the benchmark's naive pandas baseline
(``groupby.apply`` with a Python loop per trace) must give the same per-stage p50/p99 of
process and wait time, and of the lead time, to 1e-9 relative. No wall-time assertions: the
quick run's timings say nothing about the 1,000,000-trace target.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.paths import ROOT
from tests.servers import load_benchmark

SCRIPT = ROOT / "benchmarks" / "analysis.py"

pytestmark = pytest.mark.slow


def _load_benchmark() -> ModuleType:
    return load_benchmark("analysis")  # type: ignore[no-any-return]


@pytest.mark.timeout(90)
def test_quick_run_matches_the_naive_baseline() -> None:
    bench = _load_benchmark()
    # What ``main(["--quick"])`` runs (its exit code is 1 exactly when a check below fails).
    r = bench.run(bench.QUICK, baseline_traces=bench.QUICK, echo=False)
    assert r["checks_ok"], bench.report(r)
    assert not r["extrapolated"]
    # the linked variant: the same parts of the four unbatched stages, every item joined across traces
    linked = r["linked"]
    assert linked["checks_ok"] and len(linked["checks"]) == 16
    assert linked["items"] == bench.QUICK and linked["link_edges"] > 3 * bench.QUICK
    checks = r["checks"]
    # 5 stages x {process, wait} x {p50, p99} and the lead time's p50, p99; the first stage has no wait.
    assert len(checks) == 22
    for what, mine, theirs, ok in checks:
        assert ok, (what, mine, theirs)
        if what.startswith("gateway wait"):
            assert mine is None and theirs is None
        else:
            assert mine == pytest.approx(theirs, rel=1e-9, abs=0)
    assert r["attribution_top"] is not None
    top = r["attribution_top"]
    assert (top.stage, top.part) == r["naive_attribution_top"] == ("risk", "wait")
