"""The first-hour walkthrough of docs/getting-started.md (discover -> edit -> map), run as
written against the demo's Prometheus (the demo's simulation, backfilled as the demo does)."""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path

import pytest

from mapper.cli import main
from tests.paths import ROOT

pytestmark = pytest.mark.prometheus


def _walkthrough() -> list[str]:
    text = (ROOT / "docs" / "getting-started.md").read_text()
    section = text.split("## First hour", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]


def _edit(path: Path) -> None:
    """What a person does in step 2: confirm the guesses, give owners, remove the mark."""
    lines = [line.replace("owner: TODO", "owner: sre") for line in path.read_text().splitlines()
             if not line.startswith("draft:")]
    path.write_text("\n".join(lines) + "\n")


def test_the_first_hour_walkthrough_runs_on_the_demo_prometheus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from mapper.demo.data import STEP, openmetrics_lines, simulate
    from mapper.demo.localprom import backfill, running_prometheus
    from tests.servers import require_binary

    require_binary("prometheus")
    require_binary("promtool")
    end = float(int(time.time() // STEP) * STEP)
    backfill(openmetrics_lines(simulate(end - 3600 + STEP, end, seed=7)), tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    steps = _walkthrough()
    assert [s.split(" ", 2)[:2] for s in steps] == [["latmap", "discover"], ["latmap", "map"],
                                                  ["$EDITOR", "stream.yaml"], ["latmap", "map"]]
    printed = []
    with running_prometheus(tmp_path / "data") as url:
        for step in steps:
            argv = shlex.split(step.replace("http://prom:9090", url))
            if argv[0] == "$EDITOR":
                _edit(tmp_path / argv[1])
                continue
            if argv[1] == "map":
                argv += ["--prometheus", url]
            assert main(argv[1:]) == 0, capsys.readouterr().err
            out = capsys.readouterr()
            printed.append(out.out + out.err)
    discovered, draft_map, final_map = printed
    assert "alert_queue_wait_seconds" in discovered
    assert "spec-draft" in draft_map and "owners of" in draft_map
    assert "spec-draft" not in final_map and "alerting" in final_map
    assert (tmp_path / "report" / "report.json").exists()
