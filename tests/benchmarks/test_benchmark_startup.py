"""The start-up benchmark runs and prints its figures (no wall-time assertions here: the
figures and their targets are in the benchmark's own output and the issue's note)."""

from __future__ import annotations

import pytest

from tests.servers import load_benchmark


@pytest.mark.timeout(120)
def test_startup_benchmark_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_benchmark("startup")
    assert bench.main(["--no-map", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for what in ('python -c "import click, yaml"', "latmap --help (now)", "decode worker start (now)"):
        assert what in out
    assert "x click+yaml" in out and "x bare python" in out
