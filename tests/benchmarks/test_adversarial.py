"""The adversarial pass, on its quick subset: every hostile input at the CLI, the spec and
``latmap serve`` is handled cleanly (no traceback, no internal error, no crash, no raw control
character, no secret in any output), and no acknowledged span is lost to SIGKILL. The full
pass (``python benchmarks/adversarial.py``) prints the figures for the issue's note."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.servers import load_benchmark

pytestmark = pytest.mark.slow


@pytest.mark.timeout(600)
def test_quick_adversarial_pass_is_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_benchmark("adversarial")
    code = bench.main(["--quick", "--json", str(tmp_path / "adv.json")])
    out = capsys.readouterr().out
    figures = json.loads((tmp_path / "adv.json").read_text())
    bad = [c for c in figures["cases"] if c["verdict"] != "clean" or c["leaked"]]
    assert code == 0 and not bad, (bad, out[-2000:])
    assert figures["inputs"] >= 20 and figures["by_part"].keys() == {"cli", "serve", "sigkill"}
    assert figures["acked_spans"] > 0 and figures["acked_spans_lost"] == 0
