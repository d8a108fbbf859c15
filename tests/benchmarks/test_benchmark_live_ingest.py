"""The live value stream's benchmark on a quick run: every request answered, and the store held
within its limits by a spec no item ever completes. No wall-time or ratio assertions: the quick
run's timings say nothing about the target (`python benchmarks/trace_ingest.py --stream`)."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.servers import load_benchmark

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs() -> list:
    bench: ModuleType = load_benchmark("live_ingest")
    result, _missed = bench.part_stream(30_000, clients=2)
    return result  # type: ignore[no-any-return]


def _live(run: object, name: str) -> float:
    return sum(v for k, v in run.live.items() if k.startswith(name))  # type: ignore[attr-defined]


def test_every_request_is_answered_with_and_without_the_stream(runs: list) -> None:
    assert [r.name for r in runs] == ["plain", "stream", "never"]
    assert all(r.failed == 0 and r.spans == runs[0].spans for r in runs)
    assert runs[0].live == {}  # no --stream: no live series
    assert _live(runs[1], "latmap_live_items_completed_total") > 0


def test_items_that_never_complete_stay_within_the_store_limits(runs: list) -> None:
    never = runs[2]
    assert _live(never, "latmap_live_items_completed_total") == 0
    assert _live(never, "latmap_live_open_items") <= 20_000
    assert _live(never, "latmap_live_held_spans") <= 100_000
    assert _live(never, "latmap_live_items_incomplete_total") + _live(never, "latmap_live_open_items") > 0
