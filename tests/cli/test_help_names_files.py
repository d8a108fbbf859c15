"""Issue 26: each writing command's --help names every file it writes, checked against what a
run writes where that is cheap (the reports, the dashboards' provisioning, rules)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mapper.analysis.findings import find
from mapper.app.pipeline import write_reports
from mapper.cli import main
from mapper.core.files import REPORT_FILES
from tests.app.test_history import _map

DASHBOARD_FILES = ("DIR/dashboards/<uid>.json", "DIR/rules/<stream>.rules.yml",
                   "DIR/provisioning/dashboards/latmap.yaml", "DIR/provisioning/datasources/latmap.yaml")


def _help(capsys: pytest.CaptureFixture[str], command: str) -> str:
    assert main([command, "--help"]) == 0
    return re.sub(r"\s+", " ", capsys.readouterr().out)  # click wraps lines anywhere


@pytest.mark.parametrize(("command", "files"), [
    ("map", REPORT_FILES),
    ("report", (*REPORT_FILES, "DIR/<stream>/<YYYY-MM-DD>/", "DIR/<stream>/latest", "DIR/<stream>/index.html")),
    ("demo", ("stream.yaml", *REPORT_FILES)),
    ("dashboards", DASHBOARD_FILES),
    ("rules", ("rule file", ".test.yml")),
    ("budgets", ("Rewrite the spec file (-c FILE) in place", "nothing else is written")),
    ("discover", ("starter stream spec (stream.yaml) to FILE", "nothing else is written")),
])
def test_help_names_every_file_the_command_writes(command: str, files: tuple[str, ...],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, command)
    assert [f for f in files if f not in text] == []


def test_the_reports_written_are_the_ones_help_names(tmp_path: Path) -> None:
    lm = _map()
    written = write_reports(lm, tmp_path, find(lm))
    assert tuple(p.name for p in written) == REPORT_FILES
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(REPORT_FILES)


def test_dashboards_out_writes_what_help_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "stream.yaml"
    spec.write_text("name: chain\nsources: {prom: {kind: prometheus, url: 'http://127.0.0.1:9'}}\n"
                    "stages:\n  - {name: a, owner: x, process: {source: prom, histogram: a_seconds}}\n")
    out = tmp_path / "out"
    assert main(["dashboards", "-c", str(spec), "--out", str(out)]) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert len(written) == len(DASHBOARD_FILES)
    assert written[0].startswith("dashboards/") and written[0].endswith(".json")
    assert written[1:] == ["provisioning/dashboards/latmap.yaml", "provisioning/datasources/latmap.yaml",
                           "rules/chain.rules.yml"]
