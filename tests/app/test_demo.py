"""``latmap demo``: all three stages, the outputs on disk, in both modes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mapper.cli import main
from mapper.core.spec import load_spec
from tests.servers import require_binary


def _check_outputs(out: Path) -> dict:
    doc = json.loads((out / "report.json").read_text())
    assert [s["name"] for s in doc["stages"]] == ["market-data", "alerting", "notification"]
    # The lead time comes from the traces the demo sent through latmap's own receiver.
    assert doc["end_to_end"]["count"] == 12_000
    assert doc["end_to_end"]["source"].startswith("traces")
    assert not [c for c in doc["checks"] if c["code"] == "metrics-traces-disagree"]
    assert (out / "spool").is_dir()
    import xml.etree.ElementTree as ET

    svg = ET.fromstring((out / "map.svg").read_text())
    assert svg.tag.endswith("svg") and "notification" in (out / "map.svg").read_text()
    assert "```mermaid\nflowchart LR" in (out / "report.md").read_text()
    assert "<script" not in (out / "report.html").read_text()
    assert doc["bottleneck"]["stage"] == "notification"
    assert "# Latency map: trading" in (out / "report.md").read_text()
    assert len(load_spec(out / "stream.yaml").stages) == 3
    # The demo traces 12,000 items of over a million the metrics count: the flow's counts and
    # ratios are the sample's, and nothing that scales with the items is given as the stage's.
    flows = {s["name"]: s["flow"] for s in doc["stages"]}
    assert all(f["items_in"] == 12_000 and f["first_pass_yield"] == 1.0 for f in flows.values())
    assert all(f["utilisation"] is None and f["inventory"] is None and f["throughput_in_per_s"] is None
               for f in flows.values())
    assert {c["stage"] for c in doc["checks"] if c["code"] == "flow-traces-sampled"} == set(flows)
    return doc


@pytest.mark.prometheus
def test_demo_through_a_real_prometheus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_binary("prometheus")
    assert main(["demo", "--out", str(tmp_path), "--mode", "prometheus"]) == 0
    captured = capsys.readouterr()
    assert "market-data" in captured.out and "notification" in captured.out
    assert "mapped through prometheus" in captured.err and str(tmp_path / "report.json") in captured.err
    doc = _check_outputs(tmp_path)
    # alerting's hop p99 is met by the estimate (about 88ms) but its interval reaches 105ms,
    # past the 100ms objective: the verdict stands, and a check says the data cannot confirm it.
    uncertain = [c for c in doc["checks"] if c["code"] == "objective-uncertain"]
    assert [c["stage"] for c in uncertain] == ["alerting"], uncertain
    assert "crosses the threshold" in uncertain[0]["message"]


def test_demo_through_the_scrape_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path), "--mode", "scrape", "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    doc = _check_outputs(tmp_path)
    assert printed["stages"] == doc["stages"]
    assert "scrape-since-start" in {c["code"] for c in doc["checks"]}


def test_demo_intervals_contain_the_simulated_truth(tmp_path: Path) -> None:
    from mapper.demo.run import run_demo

    run = run_demo(tmp_path, mode="scrape", seed=3)
    lm = run.latency_map
    for stage, part, metric, sel in [("alerting", "wait", "alert_queue_wait_seconds", None),
                                     ("notification", "process", "notify_send_seconds", {"provider": "twilio"})]:
        r = getattr(lm.stage_result(stage), part)
        raw = run.data.raw(metric, sel)
        for q in (0.5, 0.99):
            e = r.distribution.quantile(q)
            assert e.low <= np.quantile(raw, q) <= e.high


def test_python_dash_m_mapper_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "mapper", "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "latmap" in proc.stdout
