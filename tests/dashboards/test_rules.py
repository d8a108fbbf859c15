"""Recording rules: their names, ``promtool check rules``, ``promtool test rules`` over
synthetic series, and a real Prometheus that loads and evaluates them over scraped data."""

from __future__ import annotations

import math
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import yaml

from dashboards.rules import not_recordable, render_rules, rules_for
from mapper.core.errors import SpecError
from mapper.core.spec import Measurement, StreamSpec, loads_spec
from mapper.core.spec.extra import Segments
from mapper.demo.data import METRICS
from mapper.demo.localprom import free_port, running_prometheus
from mapper.demo.run import demo_spec
from tests.dashboards.averages import averages_a_percentile
from tests.servers import require_binary

DEMO_METRICS = ("md_tick_process_seconds", "alert_queue_wait_seconds", "alert_eval_seconds",
                "notify_queue_wait_seconds", "notify_send_seconds")


def _demo() -> StreamSpec:
    return loads_spec(demo_spec(spool=None), "stream.yaml")


def _write(tmp_path: Path, spec: StreamSpec, **kw: Any) -> Path:
    path = tmp_path / "latmap.rules.yml"
    path.write_text(render_rules(spec, **kw), encoding="utf-8")
    return path


def test_demo_rules_are_named_level_metric_operations() -> None:
    names = [r.record for r in rules_for(_demo())]
    expected = []
    for m in DEMO_METRICS:
        expected += [f"stage:{m}_bucket:rate5m", f"stage:{m}:p50_5m", f"stage:{m}:p99_5m",
                     f"stage:{m}:p99_99_5m"]
    assert names == expected


def test_percentiles_come_from_the_recorded_bucket_rate_of_their_own_stage() -> None:
    rules = rules_for(_demo())
    bucket, p50 = rules[16], rules[17]
    assert bucket.expr == ('sum by (le) (rate(notify_send_seconds_bucket{provider="twilio"}[5m]))')
    assert dict(bucket.labels) == {"stage": "notification", "part": "process"}
    assert p50.expr == ('histogram_quantile(0.5, stage:notify_send_seconds_bucket:rate5m'
                        '{stage="notification",part="process"})')
    assert not any(averages_a_percentile(r.expr) for r in rules)


def test_segment_labels_are_kept_and_named_in_the_level() -> None:
    spec = replace(_demo(), segments=Segments(labels=("region",)))
    r = rules_for(spec, rate_window=60)[0]
    assert r.record == "stage_region:md_tick_process_seconds_bucket:rate1m"
    assert r.expr.startswith("sum by (le, region) (rate(")


def test_render_has_one_group_and_lists_what_it_cannot_record() -> None:
    spec = _demo()
    alerting = spec.stages[1]
    stages = (spec.stages[0],
              replace(alerting, process=Measurement("prom", "summary", "alert_eval_legacy", "stream.yaml:9")),
              replace(spec.stages[2], wait=Measurement("prom", "query", "max(x[$window])", "stream.yaml:12")))
    spec = replace(spec, stages=stages)
    text = render_rules(spec, interval=30)
    doc = yaml.safe_load(text)
    assert [g["name"] for g in doc["groups"]] == ["latmap-trading"]
    assert doc["groups"][0]["interval"] == "30s"
    records = [r["record"] for r in doc["groups"][0]["rules"]]
    assert not any("alert_eval_legacy" in r for r in records)
    skipped = not_recordable(spec)
    assert len(skipped) == 2
    assert skipped[0].startswith("alerting process: summary alert_eval_legacy (stream.yaml:9)")
    assert skipped[1].startswith("notification wait: query (stream.yaml:12)")
    for line in skipped:
        assert f"#   {line}" in text


@pytest.mark.parametrize("selector", [{"bad-label": "x"}, {"1st": "x"}, {"__name__": "x"}])
def test_label_names_that_promql_cannot_express_are_spec_errors(selector: dict[str, str]) -> None:
    spec = _demo()
    stage = replace(spec.stages[0], process=Measurement("prom", "histogram", "md_tick_process_seconds",
                                                        "stream.yaml:14", selector))
    with pytest.raises(SpecError, match=r"stream\.yaml:14: selector: label name .* is not valid in PromQL"):
        rules_for(replace(spec, stages=(stage, *spec.stages[1:])))


def test_segment_label_that_collides_with_the_rule_labels_is_refused() -> None:
    with pytest.raises(SpecError, match="'stage' is reserved"):
        rules_for(replace(_demo(), segments=Segments(labels=("stage",))))


def test_promtool_checks_the_rule_file(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    path = _write(tmp_path, _demo())
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules_for(_demo()))} rules found" in proc.stdout


def test_promtool_evaluates_the_rules_over_synthetic_series(tmp_path: Path) -> None:
    """Buckets 0.1 / 0.2 / +Inf growing by 30 / 60 / 60 a minute: at 10m the rate of
    every bucket is exact, p50 is the 0.1 bound and p99 is 0.198 (linear in the bucket)."""
    promtool = require_binary("promtool")
    rules = _write(tmp_path, _demo())
    sel = 'service="market-data"'
    test = {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": f'md_tick_process_seconds_bucket{{{sel},le="0.1"}}', "values": "0+30x15"},
                {"series": f'md_tick_process_seconds_bucket{{{sel},le="0.2"}}', "values": "0+60x15"},
                {"series": f'md_tick_process_seconds_bucket{{{sel},le="+Inf"}}', "values": "0+60x15"},
                # Another service's series under the same name must not leak in.
                {"series": 'md_tick_process_seconds_bucket{service="other",le="+Inf"}', "values": "0+99x15"},
            ],
            "promql_expr_test": [
                {"expr": "stage:md_tick_process_seconds:p50_5m", "eval_time": "10m",
                 "exp_samples": [{"labels": 'stage:md_tick_process_seconds:p50_5m'
                                            '{stage="market-data",part="process"}', "value": 0.1}]},
                {"expr": "stage:md_tick_process_seconds:p99_5m", "eval_time": "10m",
                 "exp_samples": [{"labels": 'stage:md_tick_process_seconds:p99_5m'
                                            '{stage="market-data",part="process"}', "value": 0.198}]},
                {"expr": 'stage:md_tick_process_seconds_bucket:rate5m{le="+Inf"}', "eval_time": "10m",
                 "exp_samples": [{"labels": 'stage:md_tick_process_seconds_bucket:rate5m'
                                            '{stage="market-data",part="process",le="+Inf"}',
                                  "value": 1.0}]},
            ],
        }],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test, sort_keys=False), encoding="utf-8")
    proc = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _query(url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"query": expr}
    if at is not None:
        params["time"] = at
    body = requests.get(f"{url}/api/v1/query", params=params, timeout=5).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _wait(url: str, expr: str, ok: Any, timeout: float = 25.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = _query(url, expr)
        if result and ok(result):
            return result
        time.sleep(0.25)
    raise AssertionError(f"{expr}: not as expected within {timeout}s")


@pytest.mark.prometheus
def test_real_prometheus_loads_and_evaluates_the_rules(tmp_path: Path) -> None:
    """A prometheus-client exporter with the demo's histograms, scraped every second by a
    real Prometheus that evaluates the generated rules every second. Every recorded
    percentile must equal ``histogram_quantile`` over the raw buckets at the same instant,
    and bracket the true quantile of the observed values within its bucket."""
    require_binary("prometheus")
    from prometheus_client import CollectorRegistry, Histogram, start_http_server

    registry = CollectorRegistry()
    hists = {m.name: Histogram(m.name, m.help, [k for k, _ in m.labels] +
                               (["provider"] if m.name == "notify_send_seconds" else []),
                               buckets=m.buckets, registry=registry) for m in METRICS}
    children = {}
    for m in METRICS:
        labels = dict(m.labels)
        if m.name == "notify_send_seconds":
            labels["provider"] = "twilio"
            hists[m.name].labels(**{**labels, "provider": "sns"}).observe(9.0)  # not selected
        children[m.name] = hists[m.name].labels(**labels)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    spec = _demo()
    rules = _write(tmp_path, spec)
    config = (f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n"
              f"rule_files: ['{rules}']\n"
              f"scrape_configs:\n  - job_name: demo\n"
              f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n")
    rng = np.random.default_rng(3)
    try:
        with running_prometheus(config=config) as url:
            # Zero counts first, so every bucket series starts at the same scrape.
            _wait(url, "count_over_time(alert_eval_seconds_count[1m])", lambda r: float(r[0]["value"][1]) >= 2)
            values = {}
            for m in METRICS:
                med = m.buckets[len(m.buckets) // 2]
                values[m.name] = rng.lognormal(math.log(med), 0.7, 3000)
                for v in values[m.name]:
                    children[m.name].observe(float(v))
            groups = requests.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
            assert [g["name"] for g in groups] == ["latmap-trading"]
            assert all(r["health"] != "err" for g in groups for r in g["rules"])
            for m in METRICS:
                name = m.name
                # Wait for an evaluation that sees all observations (+Inf rate > 0 and p50 set).
                _wait(url, f"stage:{name}:p50_5m", lambda r: not math.isnan(float(r[0]["value"][1])))
                stage = "notification" if name.startswith("notify") else (
                    "market-data" if name.startswith("md") else "alerting")
                sel = dict(spec.stage(stage).process.selector) if "queue" not in name else {}  # type: ignore[union-attr]
                sel_text = ",".join(f'{k}="{v}"' for k, v in sorted(sel.items()))
                for q, op in ((0.5, "p50"), (0.99, "p99")):
                    rec = _wait(url, f"timestamp(stage:{name}:{op}_5m) and stage:{name}:{op}_5m",
                                lambda r: True)
                    ts = float(rec[0]["value"][1])
                    got = _query(url, f"stage:{name}:{op}_5m", at=ts)
                    assert len(got) == 1
                    assert got[0]["metric"]["stage"] == stage
                    recorded = float(got[0]["value"][1])
                    direct = _query(url, f"histogram_quantile({q}, sum by (le) "
                                         f"(rate({name}_bucket{{{sel_text}}}[5m])))", at=ts)
                    assert recorded == pytest.approx(float(direct[0]["value"][1]), rel=1e-9), name
                    true = float(np.quantile(values[name], q))
                    bounds = (0.0, *m.buckets, math.inf)
                    i = next(k for k in range(1, len(bounds)) if true <= bounds[k])
                    assert bounds[i - 1] <= recorded <= bounds[i], (name, q, recorded, true)
    finally:
        server.shutdown()
        thread.join(timeout=5)
