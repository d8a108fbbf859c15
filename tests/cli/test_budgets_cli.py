"""``latmap budgets`` end to end over known traces (real OTel SDK spans in an OTLP file): the
budgets printed, written into the spec (comments kept) and in report.json agree, and the
written spec maps with every budget met."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mapper.cli import main
from mapper.core.spec import load_spec
from tests.app.test_traces_map import SPEC, known_traces

WINDOW = ["--until", "2026-09-22T00:00:00Z", "--window", "2d"]


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("budgets")
    path = tmp / "stream.yaml"
    # Equal weights (the tail-share split is tested in tests/analysis/test_budgets.py). Four
    # hops, no time between them: budgets at p99.75, which 400 items just support.
    text = SPEC.format(path=known_traces(tmp)).replace(", traces:", ", weight: 1, traces:")
    path.write_text("# quotes chain, kept by sre\n" + text)
    return path


def test_budgets_print_write_and_report_agree(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["budgets", "-c", str(spec), *WINDOW, "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    (plan,) = printed
    assert plan["feasible"] and plan["holds"] and plan["method"] == "trace replay"
    assert plan["hop_percentile"] == "p99.75"
    assert sum(b["threshold"] for b in plan["budgets"]) == pytest.approx(0.05 - plan["reserve"], rel=1e-6)
    assert plan["margin"] >= 0

    out = spec.parent / "out"
    assert main(["map", "-c", str(spec), *WINDOW, "--out", str(out)]) == 0
    reported = json.loads((out / "report.json").read_text())["budgets"]
    assert [b["threshold"] for b in reported[0]["budgets"]] == [b["threshold"] for b in plan["budgets"]]

    assert main(["budgets", "-c", str(spec), *WINDOW, "--write"]) == 0
    text = spec.read_text()
    assert text.startswith("# quotes chain, kept by sre\n")
    written = {o.target: o.threshold for o in load_spec(spec).objectives if o.target != "end_to_end"}
    for b in plan["budgets"]:
        assert written[b["stage"]] == pytest.approx(b["threshold"], abs=1e-6)
        assert written[b["stage"]] <= b["threshold"]
    # The map of the written spec checks every budget as an objective.
    assert main(["map", "-c", str(spec), *WINDOW, "--out", str(out)]) == 0
    objectives = json.loads((out / "report.json").read_text())["objectives"]
    hops = {o["target"]: o["status"] for o in objectives if o["target"] != "end_to_end"}
    assert set(hops) == {b["stage"] for b in plan["budgets"]}
    assert set(hops.values()) <= {"met", "broken", "unknown"}


def test_a_percentile_too_high_for_the_data_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """p99.9 end to end from 400 items: neither the per-hop p99.975 nor the capped lead time's
    p99.9 can be measured, so no budget is shown to hold."""
    path = tmp_path / "stream.yaml"
    path.write_text(SPEC.format(path=known_traces(tmp_path)).replace("p99: 50ms", "p99.9: 50ms"))
    assert main(["budgets", "-c", str(path), *WINDOW]) == 2
    captured = capsys.readouterr()
    assert "no budget split can be shown to meet end_to_end p99.9 <= 0.05s" in captured.err
    assert "stream.yaml:" in captured.err
    assert "budget-percentile-too-high" in captured.out


def test_table_names_the_owner_and_the_verification(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["budgets", "-c", str(spec), *WINDOW]) == 0
    out = capsys.readouterr().out
    assert "budgets at p99.75 per hop" in out and "pricing-team" in out
    assert "every hop capped at its budget (trace replay)" in out and "holds" in out


def test_buckets_advises_every_traced_part(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["buckets", "-c", str(spec), *WINDOW, "--width", "10%", "--format", "json"]) == 0
    advice = json.loads(capsys.readouterr().out)
    assert {(a["stage"], a["part"]) for a in advice} >= {("pricing", "process"), ("notifier", "wait")}
    for a in advice:
        assert a["verified"]
        for p in a["percentiles"]:
            assert p["ok"] or p["note"]
    assert main(["buckets", "-c", str(spec), "--width", "150%"]) == 2
