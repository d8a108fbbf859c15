"""The trace-map benchmark's requirements, on its quick run (50,000 spans).

``latmap map`` (the real CLI, over a spool written by the receiver's export path and compacted
to Parquet) must report the same numbers as the benchmark's naive map, which decodes the same
export requests with ``MessageToDict`` and applies the definitions of :mod:`mapper.analysis.traces`
span by span in Python: every count, mean and percentile of every wait, process time, hop and
the lead time, at the report's 9 significant digits. No wall-time assertions: the timings of
the quick run say nothing about the 1,000,000-span targets.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest

from tests.paths import ROOT
from tests.servers import load_benchmark

SCRIPT = ROOT / "benchmarks" / "trace_ingest.py"

pytestmark = pytest.mark.slow


def _load_benchmark() -> ModuleType:
    return load_benchmark("trace_map")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _load_benchmark()


@pytest.fixture(scope="module")
def run(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("trace-map")
    result = bench.part_b(bench.QUICK_SPANS, work)
    return {"result": result,
            "report": json.loads((work / "latmap-report.json").read_text()),
            "naive": json.loads((work / "naive-result.json").read_text())}


def test_the_map_ran_over_every_span(bench: ModuleType, run: dict[str, Any]) -> None:
    r = run["result"]
    assert r.latmap.exit_code == 0, r.failed
    assert r.naive.exit_code == 0, r.failed
    assert r.failed == ()
    assert r.spans >= bench.QUICK_SPANS
    assert run["naive"]["spans"] == r.spans
    assert r.parquet_files > 1
    report = run["report"]
    assert [s["name"] for s in report["stages"]] == list(bench.FLOW)
    assert report["path"] == list(bench.FLOW)
    assert report["end_to_end"]["method"].startswith("samples")  # per-trace lead time, not a convolution


@pytest.mark.parametrize("label", ["p50", "p99"])
@pytest.mark.parametrize(("against", "rel"), [("report", 1e-8), ("library", 1e-9)])
def test_every_hop_percentile_equals_the_naive_map(bench: ModuleType, run: dict[str, Any], label: str,
                                                   against: str, rel: float) -> None:
    """report.json has 9 significant digits; the library's numbers, unrounded, agree within 1e-9."""
    cells = {(c.against, c.what, c.stat): c for c in run["result"].checks}
    parts = [f"{s} {p}" for s in bench.FLOW for p in ("process", "total")]
    parts += [f"{s} wait" for s in bench.FLOW[1:]]
    parts += [f"hop {a}->{b}" for a, b in zip(bench.FLOW, bench.FLOW[1:], strict=False)]
    parts.append("end to end")
    for what in parts:
        c = cells[(against, what, label)]
        assert c.latmap is not None, (what, c.note)
        assert c.ok, (what, label, c.latmap, c.naive)
        assert c.latmap == pytest.approx(c.naive, rel=rel)


def test_counts_means_and_every_other_cell_agree(run: dict[str, Any]) -> None:
    checks = run["result"].checks
    assert {c.stat for c in checks} >= {"present", "count", "mean", "p50", "p99", "p99.99"}
    assert [(c.against, c.what, c.stat, c.latmap, c.naive, c.note) for c in checks if not c.ok] == []
    # The first stage has no wait, in both.
    first_wait = [(c.latmap, c.naive) for c in checks if (c.what, c.stat) == ("gateway wait", "present")]
    assert first_wait == [(None, None)] * 2
    assert {c.against for c in checks} == {"report", "library"}


def test_the_data_exercise_the_edge_cases(run: dict[str, Any]) -> None:
    """Incomplete traces, negative waits and retried exports are in the data, so the cross-check
    covers them; the naive run finds no stage whose first span is ambiguous."""
    naive, report = run["naive"], run["report"]
    assert naive["duplicates"] > 0
    assert naive["first_span_ties"] == 0
    assert report["end_to_end"]["count"] < naive["traces"]  # traces that stop at pricing or alerting
    assert naive["parts"]["notification/wait"]["negative"] > 0
    assert any(c["code"] == "negative-wait" and c["stage"] == "notification" for c in report["checks"])


def test_the_linked_variant_maps_the_same_waits_as_the_parent_variant(run: dict[str, Any]) -> None:
    """Consumers in new traces with links (10% of notifications batched): the same waits and
    counts before notification; no wall-time assertion (the quick run says nothing about it)."""
    lk = run["result"].linked
    assert lk is not None
    assert lk.run.exit_code == 0
    assert lk.cells == 20 and lk.differ == ()


def test_the_map_was_timed_with_and_without_examples(bench: ModuleType, run: dict[str, Any]) -> None:
    ex = run["result"].examples
    assert ex is not None and len(ex.with_seconds) == len(ex.without_seconds) == bench.EXAMPLE_REPEATS
    assert ex.chosen > 0 and ex.ratio > 0 and ex.library_ratio >= 1.0  # figures printed, never asserted
    # the run with examples wrote them; the one without did not
    assert run["report"]["end_to_end"]["p99"]["examples"]
