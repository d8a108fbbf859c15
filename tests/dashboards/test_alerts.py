"""Burn-rate alerts: which objectives get them and why not, the bound they count errors at,
``promtool check rules`` and the generated ``promtool test rules`` suite, and a real
Prometheus that scrapes a live exporter producing a burn and shows the page alert."""

from __future__ import annotations

import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests
import yaml

from dashboards.alerts import (
    BurnWindow,
    Layout,
    Policy,
    alert_group,
    alert_rules,
    alert_targets,
    bucket_layout_from,
    le_pattern,
    not_alertable,
    promtool_tests,
    to_yaml,
    with_alert_group,
)
from dashboards.rules import render_rules
from mapper.cli import main
from mapper.core.spec import Objective, StreamSpec, loads_spec
from mapper.demo.data import MD
from mapper.demo.localprom import free_port, running_prometheus
from mapper.demo.run import demo_spec
from tests.servers import require_binary

MD_LAYOUT = {("market-data", "process"): Layout(MD.buckets)}


def _spec(*objectives: Objective) -> StreamSpec:
    spec = loads_spec(demo_spec(spool=None), "stream.yaml")
    return replace(spec, objectives=(*spec.objectives, *objectives))


def _md(threshold: float, q: float = 0.99) -> Objective:
    return Objective("market-data", q, threshold, "stream.yaml:14")


def test_only_objectives_on_one_histogram_get_alerts_and_the_rest_say_why() -> None:
    targets, checks = alert_targets(_spec(_md(0.025)), MD_LAYOUT)
    assert [(t.stage, t.part, t.bound, t.conservative) for t in targets] == [
        ("market-data", "process", 0.025, False)]
    lines = not_alertable(checks)
    assert any("alerting p99 <= 0.1s" in line and "wait and a process histogram" in line for line in lines)
    assert any("end_to_end p99 <= 2s" in line and "latmap budgets" in line for line in lines)


def test_no_bound_on_the_threshold_uses_the_bound_above_and_says_so() -> None:
    targets, checks = alert_targets(_spec(_md(0.02)), MD_LAYOUT)
    (t,) = targets
    assert t.bound == 0.025 and t.conservative
    assert any(c.code == "bucket-above-threshold" and "add a bound at 0.02s" in c.message for c in checks)
    page = next(r for r in alert_rules(targets) if r.alert == "LatmapLatencyBurnPage")
    assert "above 0.025s (the bound just above)" in dict(page.annotations)["bucket"]
    ratio = next(r for r in alert_rules(targets) if r.record and r.record.endswith("rate1h"))
    assert ratio.expr == ('1 - sum(rate(md_tick_process_seconds_bucket{service="market-data",le=~"0\\\\.025"}[1h])) '
                          '/ sum(rate(md_tick_process_seconds_count{service="market-data"}[1h]))')


def test_thresholds_above_the_largest_bound_or_without_layout_get_no_alert() -> None:
    _, checks = alert_targets(_spec(_md(0.2)), MD_LAYOUT)
    assert any("above the largest finite bucket bound 0.05s" in line for line in not_alertable(checks))
    _, checks = alert_targets(_spec(_md(0.025)), {})
    assert any("bucket layout of md_tick_process_seconds is unknown" in line for line in not_alertable(checks))


def test_burn_thresholds_follow_the_workbook() -> None:
    (t,), _ = alert_targets(_spec(_md(0.025, q=0.999)), MD_LAYOUT)
    page, ticket = (r for r in alert_rules([t]) if r.alert)
    # 2% in 1h of 30d = 14.4x, 5% in 6h = 6x, 10% in 3d = 1x; times the 0.1% budget.
    assert "ratio_rate1h{" in page.expr and "> 0.0144 and" in page.expr and "> 0.006 and" in page.expr
    assert "ratio_rate3d{" in ticket.expr and "> 0.001 and" in ticket.expr and "ratio_rate6h{" in ticket.expr
    labels = dict(page.labels)
    assert labels["owner"] == "md-team" and labels["severity"] == "page" and labels["stage"] == "market-data"
    assert dict(page.annotations)["threshold"] == "0.025s"
    (t7,), _ = alert_targets(_spec(_md(0.025, q=0.999)), MD_LAYOUT)
    week = Policy(period=7 * 86400.0)
    assert "> 0.00336 and" in next(r for r in alert_rules([t7], week) if r.alert).expr


def test_native_histograms_use_histogram_fraction() -> None:
    (t,), _ = alert_targets(_spec(_md(0.02)), {("market-data", "process"): Layout(native=True)})
    ratio = next(r for r in alert_rules([t]) if r.record and r.record.endswith("rate5m"))
    assert ratio.expr == ('1 - histogram_fraction(0, 0.02, sum(rate(md_tick_process_seconds'
                          '{service="market-data"}[5m])))')


def test_layouts_from_series_and_le_spellings() -> None:
    assert bucket_layout_from([{"le": "0.5"}, {"le": "1.0"}, {"le": "+Inf"}], 1.0) == Layout((0.5, 1.0))
    assert bucket_layout_from([{"__name__": "x"}], 1.0) == Layout(native=True)
    assert bucket_layout_from([{"le": "250"}, {"le": "+Inf"}], 0.001) == Layout((0.25,))
    assert set(le_pattern(1.0).split("|")) == {"1", "1\\.0"}


def _files(tmp_path: Path, spec: StreamSpec) -> tuple[Path, Path]:
    targets, checks = alert_targets(spec, MD_LAYOUT)
    rules = tmp_path / "trading.rules.yml"
    rules.write_text(with_alert_group(render_rules(spec), alert_group(spec, targets), not_alertable(checks)))
    tests = tmp_path / "trading.rules.test.yml"
    tests.write_text(to_yaml(promtool_tests(spec, targets, rules.name)))
    return rules, tests


@pytest.mark.parametrize("threshold", [0.025, 0.02])
def test_promtool_checks_the_rules_and_runs_the_generated_tests(tmp_path: Path, threshold: float) -> None:
    promtool = require_binary("promtool")
    spec = _spec(_md(threshold), _md(0.005, q=0.5))
    rules, tests = _files(tmp_path, spec)
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60,
                           check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    doc = yaml.safe_load(tests.read_text())
    assert len(doc["tests"]) == 4  # two objectives, a burn and a quiet hop each
    burn = doc["tests"][0]["alert_rule_test"]
    assert [len(a["exp_alerts"]) for a in burn] == [1, 1]
    # p50: a burn rate of 14.4 x 50% can never be reached; only the ticket (1x) can fire.
    assert [len(a["exp_alerts"]) for a in doc["tests"][2]["alert_rule_test"]] == [0, 1]
    run = subprocess.run([promtool, "test", "rules", tests.name], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_cli_rules_alerts_reads_the_bounds_and_writes_the_tests(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The bucket bounds come from a real Prometheus's series API."""
    require_binary("prometheus")
    from prometheus_client import CollectorRegistry, Histogram, start_http_server

    registry = CollectorRegistry()
    Histogram(MD.name, MD.help, ["service"], buckets=MD.buckets, registry=registry).labels("market-data").observe(0.001)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    config = (f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: md\n"
              f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n")
    try:
        with running_prometheus(config=config) as url:
            _until(lambda: _query(url, f"{MD.name}_count"))
            spec_path = tmp_path / "stream.yaml"
            spec_path.write_text(demo_spec(spool=None).replace(
                "    process: {source: prom, histogram: md_tick_process_seconds, selector: {service: market-data}}",
                "    process: {source: prom, histogram: md_tick_process_seconds, selector: {service: market-data}}\n"
                "    objectives: {p99.9: 20ms}"))
            out = tmp_path / "trading.rules.yml"
            assert main(["rules", "-c", str(spec_path), "--alerts", "--prometheus", url, "--out", str(out)]) == 0
    finally:
        server.shutdown()
        thread.join(timeout=5)
    err = capsys.readouterr().err
    assert "bucket-above-threshold" in err and "add a bound at 0.02s" in err
    doc = yaml.safe_load(out.read_text())
    assert [g["name"] for g in doc["groups"]] == ["latmap-trading", "latmap-trading-alerts"]
    assert (tmp_path / "trading.rules.test.yml").exists()
    promtool = require_binary("promtool")
    run = subprocess.run([promtool, "test", "rules", "trading.rules.test.yml"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def _query(url: str, expr: str) -> list[dict]:
    body = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5).json()
    return list(body["data"]["result"])


def _until(ok: object, timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = ok()  # type: ignore[operator]
        if got:
            return got
        time.sleep(0.25)
    raise AssertionError("not within the timeout")


@pytest.mark.prometheus
def test_real_prometheus_shows_the_page_alert_on_a_live_burn(tmp_path: Path) -> None:
    """A prometheus-client exporter observes market-data ticks, quiet first (all at 1ms) then
    burning (all at 40ms, above the 25ms objective); Prometheus scrapes it every second and
    evaluates the generated rules: the page alert goes pending (its ``for`` is 2m) or firing."""
    require_binary("prometheus")
    from prometheus_client import CollectorRegistry, Histogram, start_http_server

    spec = _spec(_md(0.025))
    targets, _ = alert_targets(spec, MD_LAYOUT)
    rules = tmp_path / "rules.yml"
    rules.write_text(with_alert_group(render_rules(spec), alert_group(spec, targets)))
    registry = CollectorRegistry()
    child = Histogram(MD.name, MD.help, ["service"], buckets=MD.buckets, registry=registry).labels("market-data")
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    config = (f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: ['{rules}']\n"
              f"scrape_configs:\n  - job_name: md\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n")

    def alerts(url: str) -> list[dict]:
        body = requests.get(f"{url}/api/v1/alerts", timeout=5).json()
        return [a for a in body["data"]["alerts"] if a["labels"]["alertname"] == "LatmapLatencyBurnPage"]

    try:
        with running_prometheus(config=config) as url:
            # Two scrapes of zero counts first, so the rates see every tick.
            _until(lambda: [r for r in _query(url, f"count_over_time({MD.name}_count[1m]) >= 2")])
            ratio = 'stage:md_tick_process_seconds:latency_errors:ratio_rate5m{stage="market-data"}'

            def quiet() -> list[dict]:
                for _ in range(50):
                    child.observe(0.001)  # quiet: fast ticks
                return [r for r in _query(url, ratio) if r["value"][1] != "NaN"]

            # No traffic yet is 0/0 (NaN: no alert); the quiet ticks give a ratio of 0.
            _until(quiet)
            assert float(_query(url, ratio)[0]["value"][1]) == 0.0
            assert alerts(url) == []
            deadline = time.monotonic() + 40
            seen: list[dict] = []
            while time.monotonic() < deadline and not seen:
                for _ in range(50):
                    child.observe(0.04)  # the burn: every tick over the objective
                time.sleep(0.25)
                seen = alerts(url)
            assert seen, "the page alert never went pending"
            (alert,) = seen
            assert alert["state"] in ("pending", "firing")
            assert alert["labels"]["owner"] == "md-team" and alert["labels"]["severity"] == "page"
            assert alert["annotations"]["threshold"] == "0.025s"
            assert "market-data" in alert["annotations"]["hop"]
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_dashboard_objectives_row_reads_the_series_the_alerts_record() -> None:
    from dashboards.grafana import build_dashboard, dashboard_queries

    spec = _spec(_md(0.025, q=0.999))
    doc, _ = build_dashboard(spec)
    titles = [p["title"] for p in doc["panels"]]
    assert "Objectives" in titles
    assert titles.index("Objectives") < titles.index("Stage: market-data (md-team)")
    queries = [e for t, e in dashboard_queries(doc) if t.startswith("market-data p99.9 <= 0.025s")]
    targets, _ = alert_targets(spec, MD_LAYOUT)
    recorded = {r.record for r in alert_rules(targets) if r.record}
    used = {q.split("{")[0].removeprefix("1 - ") for q in queries}
    assert used <= recorded and len(used) == 4  # 30d for the budget left; 1h, 6h, 3d burn rates
    assert any(q.startswith("1 - stage:md_tick_process_seconds:latency_errors:ratio_rate30d{") and
               q.endswith("} / 0.001") for q in queries)
    # the demo as shipped has no objective on a one-histogram stage: no row, the golden file holds
    assert "Objectives" not in [p["title"] for p in build_dashboard(_spec())[0]["panels"]]


@pytest.mark.parametrize(("burn", "error"), [
    ("page:2:1h:5m", "use SEVERITY:SHARE%:LONG:SHORT"),
    ("page:0%:1h:5m", "the share must be in (0%, 100%]"),
    ("page:2%:5m:1h", "the short window must be shorter than the long one"),
])
def test_bad_burn_windows_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], burn: str,
                                           error: str) -> None:
    spec = tmp_path / "stream.yaml"
    spec.write_text(demo_spec(spool=None))
    assert main(["rules", "-c", str(spec), "--alerts", "--burn", burn]) == 2
    assert error in capsys.readouterr().err


def test_custom_burn_windows_change_the_alerts() -> None:
    (t,), _ = alert_targets(_spec(_md(0.025, q=0.999)), MD_LAYOUT)
    policy = Policy(windows=(BurnWindow("page", 0.1, 3600.0, 300.0),))
    rules = alert_rules([t], policy)
    assert [r.alert for r in rules if r.alert] == ["LatmapLatencyBurnPage"]
    assert "> 0.072 and" in next(r for r in rules if r.alert).expr  # 10% of 30d in 1h = 72x, x 0.1%
