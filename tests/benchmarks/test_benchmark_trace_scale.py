"""The trace-scale benchmark on a small run (``--items``): it generates its spools, maps
them partitioned in fresh processes and prints time, peak RSS and their ratios. No
wall-time or RSS assertions here: the 1M/10M targets are the full run's."""

from __future__ import annotations

import pytest

from tests.servers import load_benchmark

pytestmark = pytest.mark.slow


def test_small_run_maps_partitioned_and_prints_the_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_benchmark("trace_scale")
    assert bench.main(["--items", "3000", "6000", "--partition-spans", "10000", "--no-dask"]) == 0
    out = capsys.readouterr().out
    assert "local        3,000 items" in out and "local        6,000 items" in out
    assert "3 partitions" in out and "5 partitions" in out
    assert "ratio 6,000 / 3,000: time" in out


def test_generated_chain_has_the_known_timings() -> None:
    bench = load_benchmark("trace_scale")
    b = bench.chain(0, 100)
    assert len(b) == 100 * bench.SPANS_PER_ITEM
    assert len(b.all_links) == 200  # two links per item: B -> A and C -> B
    lead = bench.expected([(0, 100)])["lead"]
    assert lead.min() > 0.0221 and lead.size == 100  # 1 + 0.1 + 2 + 5 + 3 + 7 + 4 ms at least
