"""The flow on dashboards and in recording rules (issue 27): inventory, yield, %C&A and busy
workers per traced stage, from the live exporter's ``latmap_stage_items_total`` and
``latmap_stage_inventory``; checked by promtool and evaluated over synthetic series."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from dashboards.grafana import build_dashboard, dashboard_queries
from dashboards.provisioning import concrete
from dashboards.rules import flow_rules, render_rules, rules_for
from mapper.core.spec import StreamSpec, loads_spec
from mapper.demo.run import demo_spec
from tests.servers import require_binary

FLOW_TITLES = ["Inventory: items waiting before each stage", "Yield: items handed on / items in",
               "%C&A: first-pass yield", "Busy workers: process seconds per second"]


def _traced() -> StreamSpec:
    return loads_spec(demo_spec(spool="spool"), "stream.yaml")


def _panels_after(doc: dict, row: str) -> list[dict]:
    titles = [p["title"] for p in doc["panels"]]
    start = titles.index(row) + 1
    end = next((i for i in range(start, len(titles)) if doc["panels"][i]["type"] == "row"), len(titles))
    return doc["panels"][start:end]


def test_a_traced_stream_gets_a_flow_row_from_the_live_series() -> None:
    doc, _ = build_dashboard(_traced())
    panels = _panels_after(doc, "Flow")
    assert [p["title"] for p in panels] == FLOW_TITLES
    assert [p["fieldConfig"]["defaults"]["unit"] for p in panels] == ["short", "percentunit", "percentunit", "short"]
    qs = dict(dashboard_queries(doc))
    assert qs["Inventory: items waiting before each stage [A]"] == \
        'sum by (stage) (latmap_stage_inventory{stream="trading"})'
    assert qs["Inventory: items waiting before each stage [B]"] == \
        'sum by (stage) (max_over_time(latmap_stage_inventory{stream="trading"}[$__rate_interval]))'
    items_in = ('sum by (stage) (rate(latmap_stage_items_total{stream="trading",outcome=~"passed|stopped"}'
                '[$__rate_interval]))')
    assert qs["Yield: items handed on / items in [A]"] == (
        '(sum by (stage) (rate(latmap_stage_items_total{stream="trading",outcome=~"passed"}[$__rate_interval]))'
        f' or 0 * {items_in}) / {items_in}')
    assert 'outcome=~"failed|retried"' in qs["%C&A: first-pass yield [A]"]
    assert qs["Busy workers: process seconds per second [A]"] == \
        'sum by (stage) (rate(latmap_stage_process_seconds_sum{stream="trading"}[$__rate_interval]))'


def test_a_stream_measured_by_metrics_alone_has_no_flow_row_and_no_flow_rules() -> None:
    spec = loads_spec(demo_spec(spool=None), "stream.yaml")
    doc, missing = build_dashboard(spec)
    assert "Flow" not in [p["title"] for p in doc["panels"]] and missing == []
    assert flow_rules(spec) == []


def test_promtool_checks_the_flow_rules(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    spec = _traced()
    path = tmp_path / "latmap.rules.yml"
    path.write_text(render_rules(spec), encoding="utf-8")
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules_for(spec))} rules found" in proc.stdout
    assert len(flow_rules(spec)) == 6


def test_promtool_evaluates_the_flow_rules_and_the_dashboard_queries(tmp_path: Path) -> None:
    """alerting: 100 items a minute, 30 handed on and 70 stopped, 3 failed; notification: 30
    in, all stopped, none failed (no failed series: right first time, not dropped); the
    inventory gauge 2 then 6 a minute apart before alerting, 5 before notification; 12 process
    seconds a minute. At 10m: yield 0.3 and 0, %C&A 0.97 and 1, inventory peak 6 and 5 (mean 5
    before notification), 0.2 workers busy. Each dashboard query
    (rate range 5m) gives the same numbers."""
    promtool = require_binary("promtool")
    spec = _traced()
    rules = tmp_path / "latmap.rules.yml"
    rules.write_text(render_rules(spec), encoding="utf-8")
    items = 'latmap_stage_items_total{{stream="trading",stage="{}",outcome="{}"}}'
    series = [{"series": items.format("alerting", o), "values": f"0+{n}x15"}
              for o, n in (("passed", 30), ("stopped", 70), ("failed", 3))]
    series += [{"series": items.format("notification", "stopped"), "values": "0+30x15"},
               {"series": 'latmap_stage_inventory{stream="trading",stage="alerting"}',
                "values": "2 6 2 6 2 6 2 6 2 6 2 6"},
               {"series": 'latmap_stage_inventory{stream="trading",stage="notification"}', "values": "5x15"},
               {"series": 'latmap_stage_items_total{stream="other",stage="alerting",outcome="passed"}',
                "values": "0+999x15"},  # another stream's series must not leak in
               {"series": 'latmap_stage_process_seconds_sum{stream="trading",stage="alerting"}', "values": "0+12x15"}]

    def sample(record: str, value: float, stage: str = "alerting") -> dict:
        return {"labels": f'{record}{{stream="trading",stage="{stage}"}}', "value": value}

    tests = [
        {"expr": "stream_stage:latmap_stage_yield:ratio_rate5m", "eval_time": "10m",
         "exp_samples": [sample("stream_stage:latmap_stage_yield:ratio_rate5m", 0.3),
                         sample("stream_stage:latmap_stage_yield:ratio_rate5m", 0, "notification")]},
        {"expr": "stream_stage:latmap_stage_first_pass_yield:ratio_rate5m", "eval_time": "10m",
         "exp_samples": [sample("stream_stage:latmap_stage_first_pass_yield:ratio_rate5m", 0.97),
                         sample("stream_stage:latmap_stage_first_pass_yield:ratio_rate5m", 1, "notification")]},
        {"expr": "stream_stage:latmap_stage_inventory:max_over_time5m", "eval_time": "10m",
         "exp_samples": [sample("stream_stage:latmap_stage_inventory:max_over_time5m", 6),
                         sample("stream_stage:latmap_stage_inventory:max_over_time5m", 5, "notification")]},
        {"expr": 'stream_stage:latmap_stage_inventory:avg_over_time5m{stage="notification"}', "eval_time": "10m",
         "exp_samples": [sample("stream_stage:latmap_stage_inventory:avg_over_time5m", 5, "notification")]},
        {"expr": "stream_stage:latmap_stage_process_seconds:busy_rate5m", "eval_time": "10m",
         "exp_samples": [sample("stream_stage:latmap_stage_process_seconds:busy_rate5m", 0.2)]},
    ]
    qs = dict(dashboard_queries(build_dashboard(spec)[0]))
    for title, want in (("Yield: items handed on / items in [A]", {"alerting": 0.3, "notification": 0}),
                        ("%C&A: first-pass yield [A]", {"alerting": 0.97, "notification": 1}),
                        ("Busy workers: process seconds per second [A]", {"alerting": 0.2})):
        tests.append({"expr": concrete(qs[title], spec), "eval_time": "10m",
                      "exp_samples": [{"labels": f'{{stage="{k}"}}', "value": v} for k, v in want.items()]})
    doc = {"rule_files": [rules.name], "evaluation_interval": "1m",
           "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    proc = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
