"""The flow from a spec's metrics on dashboards and in recording rules (issue 27): for stages
with ``errors:``, ``inventory:`` and ``workers:``, the queue gauge's time-average and peak, %C&A
as 1 - error rate / items rate, utilisation over the spec's workers; checked by promtool and
evaluated over synthetic series, the dashboard's queries giving the rules' numbers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from dashboards.grafana import build_dashboard, dashboard_queries
from dashboards.provisioning import concrete
from dashboards.rules import flow_rules, render_rules, rules_for
from mapper.core.spec import StreamSpec, loads_spec
from tests.dashboards.averages import averages_a_percentile
from tests.servers import require_binary

SPEC = """
name: flowprom
sources:
  prom: {kind: prometheus, url: "http://127.0.0.1:9"}
stages:
  - name: alerting
    process: {source: prom, histogram: fp_process_seconds, selector: {stage: alerting}}
    errors: {source: prom, counter: fp_alert_errors_total, selector: {stage: alerting}}
    workers: 2
  - name: notify
    upstream: alerting
    process: {source: prom, histogram: fp_process_seconds, selector: {stage: notify}}
    errors: {source: prom, selector: 'outcome="error"'}
    inventory: {source: prom, gauge: fp_queue_depth, selector: {queue: notify}}
    workers: 1
"""
TITLES = ["Inventory from queue gauges: mean and peak", "%C&A from error counters",
          "Utilisation: busy seconds / (second x workers)"]


def _spec() -> StreamSpec:
    return loads_spec(SPEC, "stream.yaml")


def test_a_metered_stream_gets_flow_panels_from_its_metrics() -> None:
    doc, _ = build_dashboard(_spec())
    titles = [p["title"] for p in doc["panels"]]
    start = titles.index("Flow") + 1
    assert titles[start:start + 3] == TITLES
    qs = dict(dashboard_queries(doc))
    assert qs["Inventory from queue gauges: mean and peak [A]"] == \
        'sum(avg_over_time(fp_queue_depth{queue="notify"}[$__rate_interval]))'
    assert qs["Inventory from queue gauges: mean and peak [B]"] == \
        'max_over_time(sum(fp_queue_depth{queue="notify"})[$__rate_interval:])'
    items = 'sum(rate(fp_process_seconds_count{stage="alerting"}[$__rate_interval]))'
    assert qs["%C&A from error counters [A]"] == \
        f'1 - (sum(rate(fp_alert_errors_total{{stage="alerting"}}[$__rate_interval])) or 0 * {items}) / {items}'
    assert 'fp_process_seconds_count{stage="notify",outcome="error"}' in qs["%C&A from error counters [B]"]
    assert qs["Utilisation: busy seconds / (second x workers) [A]"] == \
        'sum(rate(fp_process_seconds_sum{stage="alerting"}[$__rate_interval])) / 2'
    legends = [t["legendFormat"] for p in doc["panels"] if p["title"] == TITLES[0] for t in p["targets"]]
    assert legends == ["notify", "notify peak"]


def test_promtool_evaluates_the_metered_flow_rules_and_queries(tmp_path: Path) -> None:
    """alerting: 60 items a minute, 3 errors, 12 process seconds (2 workers): %C&A 0.95,
    utilisation 0.1. notify: 18 ok + 2 failed a minute (outcome label), 6.6 process seconds:
    %C&A 0.9, utilisation 0.11. The queue's partitions hold 1 and 2 (sum 3) with one spike of
    10 at 8m in one partition and 5 at 9m in the other: at 10m the peak of the sum is 12 (not
    15, the sum of each series' peak); at 20m the time-average is 3 (an average over time of a gauge,
    summed over its series) and the peak 3."""
    promtool = require_binary("promtool")
    spec = _spec()
    rules = tmp_path / "latmap.rules.yml"
    rules.write_text(render_rules(spec), encoding="utf-8")
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert len(flow_rules(spec)) == 6 and f"SUCCESS: {len(rules_for(spec))} rules found" in check.stdout, check.stderr
    p0 = " ".join("10" if i == 8 else "1" for i in range(31))
    p1 = " ".join("5" if i == 9 else "2" for i in range(31))
    hist = 'fp_process_seconds_{}{{stage="{}"{}}}'
    series = [
        {"series": hist.format("count", "alerting", ""), "values": "0+60x30"},
        {"series": hist.format("sum", "alerting", ""), "values": "0+12x30"},
        {"series": 'fp_alert_errors_total{stage="alerting"}', "values": "0+3x30"},
        {"series": hist.format("count", "notify", ',outcome="ok"'), "values": "0+18x30"},
        {"series": hist.format("count", "notify", ',outcome="error"'), "values": "0+2x30"},
        {"series": hist.format("sum", "notify", ',outcome="ok"'), "values": "0+6x30"},
        {"series": hist.format("sum", "notify", ',outcome="error"'), "values": "0+0.6x30"},
        {"series": 'fp_queue_depth{queue="notify",partition="0"}', "values": p0},
        {"series": 'fp_queue_depth{queue="notify",partition="1"}', "values": p1},
        {"series": 'fp_queue_depth{queue="other"}', "values": "100x30"},  # another queue must not leak in
    ]

    def at(expr: str, when: str, value: float, labels: str = "{}") -> dict:
        return {"expr": expr, "eval_time": when, "exp_samples": [{"labels": labels, "value": value}]}

    def rec(name: str, stage: str) -> str:
        return f'{name}{{stage="{stage}"}}'

    tests = [
        at(rec("stage:latmap_first_pass_yield:ratio_rate5m", "alerting"), "10m", 0.95,
           rec("stage:latmap_first_pass_yield:ratio_rate5m", "alerting")),
        at(rec("stage:latmap_first_pass_yield:ratio_rate5m", "notify"), "10m", 0.9,
           rec("stage:latmap_first_pass_yield:ratio_rate5m", "notify")),
        at(rec("stage:latmap_utilisation:ratio_rate5m", "alerting"), "10m", 0.1,
           rec("stage:latmap_utilisation:ratio_rate5m", "alerting")),
        at(rec("stage:latmap_utilisation:ratio_rate5m", "notify"), "10m", 0.11,
           rec("stage:latmap_utilisation:ratio_rate5m", "notify")),
        at(rec("stage:fp_queue_depth:max_over_time5m", "notify"), "10m", 12,
           rec("stage:fp_queue_depth:max_over_time5m", "notify")),
        at(rec("stage:fp_queue_depth:max_over_time5m", "notify"), "20m", 3,
           rec("stage:fp_queue_depth:max_over_time5m", "notify")),
        at(rec("stage:fp_queue_depth:avg_over_time5m", "notify"), "20m", 3,
           rec("stage:fp_queue_depth:avg_over_time5m", "notify")),
    ]
    qs = dict(dashboard_queries(build_dashboard(spec)[0]))
    for ref, when, want in (("A", "20m", 3), ("B", "10m", 12)):
        tests.append(at(concrete(qs[f"{TITLES[0]} [{ref}]"], spec), when, want))
    for ref, want in (("A", 0.95), ("B", 0.9)):
        tests.append(at(concrete(qs[f"{TITLES[1]} [{ref}]"], spec), "10m", want))
    for ref, want in (("A", 0.1), ("B", 0.11)):
        tests.append(at(concrete(qs[f"{TITLES[2]} [{ref}]"], spec), "10m", want))
    doc = {"rule_files": [rules.name], "evaluation_interval": "1m",
           "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    proc = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_gauges_are_averaged_over_time_and_nothing_averages_a_percentile() -> None:
    spec = _spec()
    exprs = [e for _, e in dashboard_queries(build_dashboard(spec)[0])] + [r.expr for r in rules_for(spec)]
    assert any("avg_over_time(fp_queue_depth" in e for e in exprs)
    assert [e for e in exprs if averages_a_percentile(e)] == []
    # the rule itself: what it refuses, and what it lets through
    assert averages_a_percentile("avg(histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))))")
    assert averages_a_percentile("avg by (stage) (stage:x:p99_5m)")
    assert averages_a_percentile("avg_over_time(stage:x:p99_99_5m[1h])")
    assert averages_a_percentile('avg_over_time(x{quantile="0.99"}[1h])')
    assert not averages_a_percentile('sum(avg_over_time(kafka_consumergroup_lag{group="a"}[5m]))')
