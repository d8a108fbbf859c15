"""The map-limit benchmark on its quick run: a spool mapped unbounded and under a memory
budget small enough to partition it, in fresh processes; the budgeted numbers must equal
the unbounded ones. No wall-time or RSS assertions here: the targets are the full run's."""

from __future__ import annotations

import pytest

from mapper.core.spec.engine import MIN_PARTITION_SPANS, PARTITION_BYTES_PER_SPAN, EngineSpec
from tests.servers import load_benchmark

pytestmark = pytest.mark.slow


def test_quick_run_partitions_by_the_budget_and_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_benchmark("map_limit")
    assert bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "memory_budget 4MiB: 10,000 spans per partition" in out
    assert "budgeted numbers equal to the unbounded map's" in out and "OK" in out
    assert "floor: read into a batch" in out


def test_partition_size_follows_the_budget() -> None:
    assert EngineSpec(memory_budget=256 << 20).spans_per_partition == (256 << 20) // PARTITION_BYTES_PER_SPAN
    assert EngineSpec(memory_budget=8 << 30).spans_per_partition == 1_000_000  # partition_spans caps it
    assert EngineSpec(memory_budget=1 << 20).spans_per_partition == MIN_PARTITION_SPANS
    assert EngineSpec(partition_spans=500, memory_budget=1 << 20).spans_per_partition == 500
    assert EngineSpec(partition_spans=5000, memory_budget=0).spans_per_partition == 5000  # always partitioned
