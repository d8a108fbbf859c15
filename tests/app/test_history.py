"""`latmap report --history`: dated run directories, latest, index, pruning, exit codes;
the Pushgateway push scraped by a real Prometheus; the deploy files run the documented line."""

from __future__ import annotations

import configparser
import json
import math
import re
import shlex
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import yaml

from mapper.analysis.findings import find
from mapper.analysis.latency import LatencyMap, MapInput, analyse
from mapper.app.history import LATEST, IndexRow, RunRecord, index_rows, record_run, runs, to_index_html
from mapper.app.pushgw import push_run
from mapper.cli import exit_code
from mapper.core.distribution import HistogramDistribution
from mapper.core.errors import OutputError
from mapper.core.model import MeasurementResult, Window
from mapper.core.spec import loads_spec
from mapper.demo.localprom import free_port, running_prometheus, wait_ready
from tests.paths import ROOT
from tests.servers import require_binary

N = 20_000
NOW = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)
DEPLOY = ROOT / "deploy"
COMMAND = "latmap report -c /etc/latmap/stream.yaml --history /var/lib/latmap/history --keep 30"



def _exit(record: RunRecord) -> int:
    """The CLI's exit code for a recorded run (the rule lives in mapper.cli alone)."""
    return exit_code(broken=record.broken, regressions=len(record.regressions))

def _spec(name: str = "chain", objective: str = "1s") -> str:
    return f"""\
name: {json.dumps(name)}
objectives: {{end_to_end: {{p99: {objective}}}}}
sources: {{prom: {{kind: prometheus, url: "http://127.0.0.1:9"}}}}
stages:
  - {{name: a, owner: x, process: {{source: prom, histogram: a_seconds}}}}
  - {{name: b, owner: y, wait: {{source: prom, histogram: bw_seconds}},
     process: {{source: prom, histogram: b_seconds}}}}
"""


def _map(slow_b: float = 1.0, seed: int = 2, name: str = "chain", objective: str = "1s") -> LatencyMap:
    rng = np.random.default_rng(seed)
    bounds = [0.001, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, math.inf]
    parts = {
        ("a", "process"): rng.lognormal(math.log(0.002), 0.1, N),
        ("b", "wait"): rng.lognormal(math.log(0.001), 0.1, N),
        ("b", "process"): rng.lognormal(math.log(0.003), 0.1, N) * slow_b,
    }
    results = {k: MeasurementResult(HistogramDistribution.from_cumulative(
        bounds, [(v <= b).sum() for b in bounds], sum=float(v.sum())), "test") for k, v in parts.items()}
    return analyse(loads_spec(_spec(name, objective)), Window(0, 86400), MapInput(results))


def _find(lm: LatencyMap):  # type: ignore[no-untyped-def]
    return find(lm)


def test_two_runs_the_same_day_do_not_clobber_and_latest_points_at_the_newest(tmp_path: Path) -> None:
    first = record_run(_map(seed=2), _find, tmp_path, 30, NOW)
    second = record_run(_map(seed=3), _find, tmp_path, 30, NOW + timedelta(hours=1))
    assert (first.path.name, second.path.name) == ("2026-11-25", "2026-11-25.2")
    assert first.previous is None and second.previous == first.path
    expected = {"report.json", "report.md", "report.html", "map.svg"}
    for run in (first.path, second.path):
        assert {p.name for p in run.iterdir()} == expected
    latest = tmp_path / "chain" / LATEST
    assert latest.resolve() == second.path.resolve()
    assert not [p for p in (tmp_path / "chain").iterdir() if p.name.startswith(".")]  # no temp left
    # same distributions: noise, not regression (the CLI's exit code would be 0 for both)
    assert (first.regressions, second.regressions, first.broken, second.broken) == ((), (), False, False)
    doc = json.loads((second.path / "report.json").read_text())
    assert doc["history"]["previous"]["baseline"] == str(first.path / "report.json")


def test_index_lists_the_runs_newest_first_with_the_p99_trend(tmp_path: Path) -> None:
    record_run(_map(), _find, tmp_path, 30, NOW)
    record_run(_map(seed=3), _find, tmp_path, 30, NOW + timedelta(days=1))
    html = (tmp_path / "chain" / "index.html").read_text()
    assert html.index('href="2026-11-26/"') < html.index('href="2026-11-25/"')
    # issue 14: p50 and p99 lines (was one p99 sparkline), each with its interval band
    assert html.count("<polyline") == 2 and html.count('<polygon class="interval') == 2
    assert "<script" not in html and "http" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "oldest on the left" in html and "runs, newest first" in html
    rows = index_rows(tmp_path / "chain")
    assert [r.name for r in rows] == ["2026-11-26", "2026-11-25"] and all(r.p99 for r in rows)


def test_index_escapes_every_text() -> None:
    row = IndexRow("2026-11-25", "<script>x</script>", 0.01, 0.009, 0.011, True, 2)
    html = to_index_html("<b>&pay", [row])
    assert "&lt;b&gt;&amp;pay" in html and "<b>&pay" not in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "objective broken, 2 regression(s)" in html


def test_index_shows_a_lower_bound_where_only_one_is_known() -> None:
    rows = [IndexRow("2026-11-26", "t2", None, 2.58, None, True, 0, 0.5, 0.4, 0.6),
            IndexRow("2026-11-25", "t1", 1.2, 1.0, 1.5, False, 0, 0.45, 0.4, 0.5)]
    html = to_index_html("chain", rows)
    assert "<td>&gt;2.58s</td>" in html and "<td>1.2s</td>" in html
    assert "2026-11-26 p99 &gt;2.58s" in html  # the trend marks the bound, titled


def test_runs_older_than_keep_days_are_pruned(tmp_path: Path) -> None:
    for day in range(5):
        record_run(_map(seed=day + 2), _find, tmp_path, 3, NOW + timedelta(days=day))
    kept = [r.path.name for r in runs(tmp_path / "chain")]
    assert kept == ["2026-11-27", "2026-11-28", "2026-11-29"]
    assert "2026-11-26" not in (tmp_path / "chain" / "index.html").read_text()


def test_a_regression_against_the_previous_run_exits_1_and_is_listed_first(tmp_path: Path) -> None:
    record_run(_map(seed=2), _find, tmp_path, 30, NOW)
    slow = record_run(_map(slow_b=2.0, seed=3), _find, tmp_path, 30, NOW + timedelta(days=1))
    assert _exit(slow) == 1
    assert slow.regressions[0].what == "b process"
    md = (slow.path / "report.md").read_text()
    assert "REGRESSION b process" in md


def test_a_regression_against_the_pinned_baseline_exits_1(tmp_path: Path) -> None:
    pinned = record_run(_map(seed=2), _find, tmp_path / "pin", 30, NOW).path / "report.json"
    rec = record_run(_map(slow_b=2.0, seed=3), lambda lm: find(lm, str(pinned)), tmp_path / "h", 30, NOW)
    assert rec.previous is None and _exit(rec) == 1
    assert rec.regressions[0].what == "b process"


def test_a_broken_objective_exits_1_and_a_clean_run_0(tmp_path: Path) -> None:
    assert _exit(record_run(_map(objective="1ms"), _find, tmp_path / "x", 30, NOW)) == 1
    assert _exit(record_run(_map(objective="1s"), _find, tmp_path / "y", 30, NOW)) == 0


def test_a_pushed_run_is_scraped_by_prometheus(tmp_path: Path) -> None:
    binary = require_binary("prometheus-pushgateway")
    require_binary("prometheus")
    port = free_port()
    gw = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}"], stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            wait_ready(gw, proc)
            pushed = _map(name="pay")
            push_run(pushed, gw)
            config = (f"global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: pushgateway\n"
                      f"    honor_labels: true\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n")
            with running_prometheus(config=config) as prom:
                deadline = time.monotonic() + 20
                result: list[dict[str, Any]] = []
                while time.monotonic() < deadline and not result:
                    r = requests.get(f"{prom}/api/v1/query", timeout=5,
                                     params={"query": 'latmap_hop_latency_seconds{stream="pay"}'})
                    result = r.json()["data"]["result"]
                    time.sleep(0.3)
                # the dashboard's lead-time panels read latmap's own end-to-end numbers
                from dashboards.queries import pushed_lead_time

                lead = requests.get(f"{prom}/api/v1/query", timeout=5, params={
                    "query": pushed_lead_time(pushed.spec, 0.99)}).json()["data"]["result"]
            assert pushed.end_to_end is not None
            assert [(m["metric"], float(m["value"][1])) for m in lead] == [
                ({"percentile": "p99"}, pytest.approx(pushed.end_to_end.quantile(0.99).value, rel=1e-9))]
            labels = {(m["metric"]["stage"], m["metric"]["part"], m["metric"]["percentile"]): float(m["value"][1])
                      for m in result}
            assert labels[("b", "process", "p50")] == pytest.approx(0.003, rel=0.15)
            assert all(m["metric"]["job"] == "latmap" for m in result)
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def test_pushing_to_nowhere_is_a_source_error_naming_the_url() -> None:
    from mapper.core.errors import SourceError

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SourceError, match=re.escape(url)):
        push_run(_map(), url, timeout=2)


def _documented_command() -> str:
    readme = (DEPLOY / "README.md").read_text()
    lines = [ln.strip() for ln in readme.splitlines() if ln.strip().startswith("latmap report ")]
    assert lines and all(ln == lines[0] for ln in lines)
    return lines[0]


def test_the_deploy_files_parse_and_run_the_documented_command() -> None:
    command = _documented_command()
    assert command == COMMAND
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "cronjob.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"ConfigMap", "PersistentVolumeClaim", "CronJob"}
    loads_spec(kinds["ConfigMap"]["data"]["stream.yaml"])  # the shipped example spec is valid
    pod = kinds["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert shlex.join(container["command"]) == command
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "latmap-tokens"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["history"]["persistentVolumeClaim"]["claimName"] == kinds["PersistentVolumeClaim"][
        "metadata"]["name"]

    service = configparser.ConfigParser(interpolation=None)
    service.read_string((DEPLOY / "systemd" / "latmap-report.service").read_text())
    exec_start = shlex.split(service["Service"]["ExecStart"])
    assert Path(exec_start[0]).name == "latmap" and shlex.join(["latmap", *exec_start[1:]]) == command
    timer = configparser.ConfigParser(interpolation=None)
    timer.read_string((DEPLOY / "systemd" / "latmap-report.timer").read_text())
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == "timers.target"

    cmd = [ln for ln in (DEPLOY / "Dockerfile").read_text().splitlines() if ln.startswith("CMD ")]
    assert shlex.join(json.loads(cmd[0][4:])) == command


def test_an_unusable_history_dir_fails_without_touching_it_and_a_corrupt_previous_report_is_skipped(
        tmp_path: Path) -> None:
    blocked = tmp_path / "history-is-a-file"
    blocked.write_text("not a directory")
    lm = _map()
    with pytest.raises(OutputError, match=r"history-is-a-file/chain: cannot write the history"):
        record_run(lm, find, blocked, keep_days=3)
    assert blocked.read_text() == "not a directory"
    # A corrupt previous report: the comparison with it is skipped, the new run is written.
    first = record_run(lm, find, tmp_path / "h", keep_days=3)
    (first.path / "report.json").write_text("{corrupt")
    second = record_run(lm, find, tmp_path / "h", keep_days=3)
    assert second.path != first.path and (second.path / "report.json").is_file()
    assert first.path.is_dir()
