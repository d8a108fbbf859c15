"""One path through the house: every command that maps a stream gets its map from
:func:`mapper.app.job.run_map`, with the request its command line asked for, and does its
own work on the map it was handed; nothing else builds a map."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mapper.analysis.findings import find
from mapper.analysis.latency import LatencyMap, MapInput, analyse
from mapper.app import job
from mapper.app.budgets import with_budgets
from mapper.app.request import MapRequest, requested_spec
from mapper.cli import cli, exit_code
from mapper.core.files import dumps
from mapper.core.model import Window
from mapper.core.spec import load_spec
from mapper.demo.run import demo_spec
from mapper.render.report import dependencies, to_json
from tests.paths import ROOT

URL = "http://127.0.0.1:9"
UNTIL = 1_764_547_200.0  # 2025-12-01T00:00:00Z
#: Every shared option, each away from its default, so the test sees each one arrive.
SHARED = ["--prometheus", "http://127.0.0.1:19", "--window", "2h", "--until", str(int(UNTIL)),
          "--timeout", "5s", "--engine", "local"]

#: Every command that maps, as a user would call it (``{tmp}``: a scratch directory).
MAPPING = {
    "map": ["map"],
    "map --out": ["map", "--out", "{tmp}/out", "--format", "json"],
    "report --out": ["report", "--out", "{tmp}/out", "--no-progress"],
    "report --history": ["report", "--history", "{tmp}/history"],
    "deps": ["deps", "alerting"],
    "examples --part lead": ["examples", "--part", "lead"],
    "examples --part wait": ["examples", "--stage", "alerting", "--part", "wait", "--percentile", "99.9"],
    "whatif --hop": ["whatif", "--hop", "alerting", "--scale", "0.5"],
    "whatif --change": ["whatif", "--change", "notification:cap=200ms"],
    "budgets": ["budgets"],
    "buckets": ["buckets", "--width", "10%"],
}


class Asked(Exception):
    """The fake run_map was reached: the command asked for its map there."""


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "stream.yaml"
    path.write_text(demo_spec("prometheus", URL, None))
    return path


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[MapRequest]:
    """The requests run_map got; each call raises :class:`Asked`, so no source is queried."""
    seen: list[MapRequest] = []

    def fake(request: MapRequest) -> job.MapResult:
        seen.append(request)
        raise Asked

    monkeypatch.setattr(job, "run_map", fake)
    return seen


@pytest.mark.parametrize("args", MAPPING.values(), ids=MAPPING.keys())
def test_every_mapping_command_asks_run_map_with_its_options(tmp_path: Path, spec_file: Path,
                                                             asked: list[MapRequest], args: list[str]) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(cli, [*argv, "-c", str(spec_file), *SHARED])
    assert isinstance(result.exception, Asked), result.output
    (request,) = asked
    assert (request.prometheus, request.timeout, request.engine, request.length, request.until) == (
        "http://127.0.0.1:19", 5.0, "local", 7200.0, UNTIL)
    spec = requested_spec(request)
    assert spec.name == load_spec(spec_file).name
    assert {s.url for s in spec.sources.values() if s.kind == "prometheus"} == {"http://127.0.0.1:19"}
    assert {s.timeout for s in spec.sources.values() if s.kind != "traces"} == {5.0}


def test_without_the_shared_options_the_request_leaves_the_spec_as_written(spec_file: Path,
                                                                           asked: list[MapRequest]) -> None:
    result = CliRunner().invoke(cli, ["map", "-c", str(spec_file)])
    assert isinstance(result.exception, Asked)
    assert asked == [MapRequest(str(spec_file))]


def test_a_command_that_refuses_its_arguments_never_asks(spec_file: Path, asked: list[MapRequest]) -> None:
    result = CliRunner().invoke(cli, ["deps", "nope", "-c", str(spec_file)])
    assert result.exit_code != 0 and not isinstance(result.exception, Asked)
    assert asked == []


def _prepared_map(spec_file: Path) -> LatencyMap:
    """A map with no measurement in it: what the command prints must come from this one."""
    spec = load_spec(spec_file)
    return analyse(spec, Window.ending(UNTIL, 3600.0), MapInput({}))


def test_commands_work_on_the_map_run_map_returns(spec_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lm = _prepared_map(spec_file)
    monkeypatch.setattr(job, "run_map", lambda request: job.MapResult(lm, lm.spec, lm.window))
    runner = CliRunner()
    printed = runner.invoke(cli, ["map", "-c", str(spec_file), "--format", "json"])
    assert printed.exit_code == exit_code(broken=lm.broken)
    assert json.loads(printed.stdout) == json.loads(dumps(to_json(lm, with_budgets(lm, find(lm)))))
    deps = runner.invoke(cli, ["deps", "alerting", "-c", str(spec_file)])
    assert deps.exit_code == 0 and deps.stdout == dependencies(lm, "alerting")


def _calls_of(name: str) -> list[str]:
    """``module:line`` of every call of a function named ``name`` in the product code."""
    found = []
    for package in ("mapper", "collectors", "dashboards"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call):
                    f = node.func
                    called = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
                    if called == name:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_only_the_job_builds_a_map() -> None:
    """The demo included (its run is too slow to replay here for a routing check)."""
    assert [c.split(":")[0] for c in _calls_of("build_map")] == ["mapper/app/job.py"]
    assert [c.split(":")[0] for c in _calls_of("window_for")] == ["mapper/app/job.py"]
