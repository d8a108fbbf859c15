"""The adversarial pass, on its quick subset: every hostile input at the CLI, the spec, the
servers latmap reads, the outputs it writes and ``latmap serve`` is handled cleanly (no
traceback, no internal error, no hang, no crash, no raw control character, no prefix of a
secret in any output, outputs that parse, refusals that happen), and no acknowledged span is
lost to SIGKILL or to retention. The full pass (``python benchmarks/adversarial.py``) prints
the figures for the issue's note."""

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
    assert figures["by_part"].keys() == {"cli", "answers", "outputs", "spool", "serve", "sigkill"}
    assert min(figures["by_part"].values()) >= 3 and figures["inputs"] >= 50
    assert figures["hangs"] == figures["internal_errors"] == figures["crashes"] == figures["secret_leaks"] == 0
    assert figures["acked_spans"] > 0 and figures["acked_spans_lost"] == 0
