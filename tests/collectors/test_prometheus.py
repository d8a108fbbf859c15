"""The Prometheus collector and the map against a real Prometheus with backfilled data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from collectors.prometheus import PrometheusCollector
from mapper.cli import main
from mapper.core.model import Window
from mapper.core.spec import Measurement, SourceSpec, loads_spec
from mapper.demo.data import DemoData
from mapper.demo.run import demo_spec
from tests import data

pytestmark = pytest.mark.prometheus

DEMO_PARTS = [
    ("market-data", "process", "md_tick_process_seconds", {"service": "market-data"}),
    ("alerting", "wait", "alert_queue_wait_seconds", {}),
    ("alerting", "process", "alert_eval_seconds", {}),
    ("notification", "wait", "notify_queue_wait_seconds", {}),
    ("notification", "process", "notify_send_seconds", {"provider": "twilio"}),
]


def _collector(url: str) -> PrometheusCollector:
    return PrometheusCollector(SourceSpec("prom", "prometheus", url, "test"), backoff=0.01)


def _m(name: str, kind: str = "histogram", **selector: str) -> Measurement:
    return Measurement("prom", kind, name, "test:1", selector)


def _quirk_window() -> Window:
    return Window.ending(data.END, data.QUIRK_WINDOW)


def test_bucket_counts_are_exactly_the_backfilled_increase(prom_url: str, demo_data: DemoData) -> None:
    window = Window.ending(data.END, data.DAY)
    for s in demo_data.series:
        sel = dict(s.labels)
        r = _collector(prom_url).collect(_m(s.metric.name, **sel), window)
        assert r.distribution is not None
        got = np.cumsum(r.distribution.counts)
        np.testing.assert_allclose(got, s.cumulative[-1], rtol=0, atol=1e-6)
        assert r.distribution.mean == pytest.approx(s.sums[-1] / s.cumulative[-1][-1], rel=1e-9)


def test_map_reproduces_the_raw_percentiles_within_their_intervals(
        prom_url: str, demo_data: DemoData, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "stream.yaml"
    spec.write_text(demo_spec("prometheus", "http://127.0.0.1:1", None), encoding="utf-8")
    code = main(["map", "-c", str(spec), "--prometheus", prom_url, "--until", str(data.END),
                 "--window", "24h", "--format", "json", "--out", str(tmp_path / "out")])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "out" / "report.json").read_text()) | {"generated_at": None} == \
        report | {"generated_at": None}
    stages = {s["name"]: s for s in report["stages"]}
    checked = 0
    for stage, part, metric, sel in DEMO_PARTS:
        raw = demo_data.raw(metric, sel, data.END - data.DAY, data.END)
        lat = stages[stage][part]
        assert lat["count"] == raw.size
        for key, q in (("p50", 0.5), ("p99", 0.99), ("p99.99", 0.9999)):
            exact = float(np.quantile(raw, q))
            est = lat[key]
            assert est["low"] <= exact, (stage, part, key)
            if est["high"] is not None:
                assert exact <= est["high"], (stage, part, key)
                checked += 1
            else:
                assert est["value"] is None and est["note"]
    assert checked >= 13
    assert report["bottleneck"]["stage"] == "notification"
    assert [o["status"] for o in report["objectives"]] == ["met", "met"]


def test_report_json_follows_the_schema(prom_url: str, tmp_path: Path) -> None:
    spec = tmp_path / "stream.yaml"
    spec.write_text(demo_spec("prometheus", prom_url, None), encoding="utf-8")
    assert main(["map", "-c", str(spec), "--until", str(data.END), "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "report.json").read_text())
    assert {"stream", "window", "stages", "hops", "end_to_end", "bottleneck", "objectives",
            "checks"} <= doc.keys()
    assert doc["stream"] == "trading"
    assert set(doc["window"]) >= {"start", "end"}
    assert [h["from"] + ">" + h["to"] for h in doc["hops"]] == ["market-data>alerting", "alerting>notification"]
    for s in doc["stages"]:
        assert {"name", "owner", "wait", "process"} <= s.keys()
    lat = doc["end_to_end"]
    assert lat["unit"] == "s" and lat["count"] > 0
    for key in ("p50", "p99", "p99.99"):
        assert set(lat[key]) == {"value", "low", "high", "note"}
    for c in doc["checks"]:
        assert c["level"] in ("error", "warning", "info") and c["code"] and c["message"]
    md = (tmp_path / "report.md").read_text()
    assert "| market-data" in md and "notification" in md


def test_broken_objective_exits_1(prom_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = demo_spec("prometheus", prom_url, None).replace("end_to_end: {p99: 2s}", "end_to_end: {p99: 1ms}")
    spec = tmp_path / "stream.yaml"
    spec.write_text(text, encoding="utf-8")
    assert main(["map", "-c", str(spec), "--until", str(data.END)]) == 1
    assert "objective end_to_end p99 <= 1ms: BROKEN" in capsys.readouterr().out


def test_counter_reset_is_reported_and_compensated(prom_url: str) -> None:
    r = _collector(prom_url).collect(_m("reset_seconds"), _quirk_window())
    assert r.distribution is not None
    assert r.distribution.count == pytest.approx(150, abs=1)
    assert "counter-reset" in {c.code for c in r.checks}


def test_non_monotonic_buckets_are_reported(prom_url: str) -> None:
    r = _collector(prom_url).collect(_m("nonmono_seconds"), _quirk_window())
    assert [c.code for c in r.checks if c.level == "warning"] == ["non-monotonic-buckets"]
    assert r.distribution is not None and r.distribution.count == pytest.approx(100)


def test_count_disagreeing_with_inf_bucket_is_reported(prom_url: str) -> None:
    r = _collector(prom_url).collect(_m("mismatch_seconds"), _quirk_window())
    msg = next(c.message for c in r.checks if c.code == "count-mismatch")
    assert "_count increased by 130 but the +Inf bucket by 100" in msg


def test_too_few_samples_gives_no_number(prom_url: str) -> None:
    r = _collector(prom_url).collect(_m("sparse_seconds"), _quirk_window())
    e = r.distribution.quantile(0.9999)  # type: ignore[union-attr]
    assert e.value is None and e.count == 50
    assert e.note == "too few samples: 50 < 10,000 needed for p99.99"
    assert r.distribution.quantile(0.5).value is not None  # type: ignore[union-attr]


def test_quantile_in_inf_bucket_gives_a_lower_bound_only(prom_url: str) -> None:
    r = _collector(prom_url).collect(_m("inf_seconds"), _quirk_window())
    e = r.distribution.quantile(0.5)  # type: ignore[union-attr]
    assert (e.value, e.low, e.high) == (None, 0.02, None)
    assert "+Inf bucket" in (e.note or "")


def test_summaries_are_reported_per_instance_and_the_worst(prom_url: str) -> None:
    r = _collector(prom_url).collect(_m("rpc_latency_seconds", kind="summary"), _quirk_window())
    assert [k for k, _ in r.per_instance] == ['{instance="a:9100"}', '{instance="b:9100"}']
    assert r.distribution.quantile(0.99).value == pytest.approx(0.3)  # type: ignore[union-attr]
    assert r.distribution.quantile(0.9999).value is None  # type: ignore[union-attr]
    assert "summary-not-aggregatable" in {c.code for c in r.checks}


def test_label_values_are_escaped_in_promql(prom_url: str) -> None:
    r = _collector(prom_url).collect(_m("odd_label_seconds", route='/a"b\\c'), _quirk_window())
    assert r.distribution is not None and r.distribution.count == pytest.approx(10)


def test_metric_without_data_is_a_check_and_the_map_still_draws(prom_url: str, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    text = demo_spec("prometheus", prom_url, None).replace("alert_eval_seconds", "no_such_metric_seconds")
    spec = tmp_path / "stream.yaml"
    spec.write_text(text, encoding="utf-8")
    assert main(["map", "-c", str(spec), "--until", str(data.END), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    codes = {(c["code"], c["stage"]) for c in doc["checks"]}
    assert ("no-data", "alerting") in codes and ("no-end-to-end", None) in codes
    assert doc["end_to_end"] is None
    assert doc["stages"][0]["process"]["count"] > 0


def test_quantile_series_respects_the_points_limit(prom_url: str) -> None:
    c = _collector(prom_url)
    window = Window.ending(data.END, data.DAY)
    s = c.quantile_series(_m("alert_queue_wait_seconds"), window, 0.99, points=20000)
    assert 0 < s.timestamps.size <= 11000
    finite = s.values[np.isfinite(s.values)]
    assert finite.size > 0 and np.all(finite > 0)


def test_spec_objective_on_stage_uses_the_hop(prom_url: str) -> None:
    spec = loads_spec(demo_spec("prometheus", prom_url, None))
    from mapper.app.pipeline import build_map

    lm = build_map(spec, Window.ending(data.END, data.DAY))
    alert = next(o for o in lm.objectives if o.objective.target == "alerting")
    total = lm.stage_result("alerting").total
    assert total is not None and alert.estimate == total.quantile(0.99)
    assert math.isclose(lm.flow_efficiency.value, lm.flow_efficiency.process / lm.flow_efficiency.lead)  # type: ignore[union-attr]


def test_failed_scrapes_of_a_target_are_reported(prom_url: str) -> None:
    r = _collector(prom_url).collect(_m("gappy_seconds"), _quirk_window())
    gaps = [c.message for c in r.checks if c.code == "scrape-gap"]
    assert len(gaps) == 1
    assert "20 failed scrape(s) of instance=a:1, job=app" in gaps[0]
    clean = _collector(prom_url).collect(_m("reset_seconds"), _quirk_window())
    assert "scrape-gap" not in {c.code for c in clean.checks}


def test_scrape_gaps_count_only_while_the_series_existed(prom_url: str) -> None:
    r = _collector(prom_url).collect(_m("late_seconds"), _quirk_window())
    gaps = [c.message for c in r.checks if c.code == "scrape-gap"]
    assert len(gaps) == 1 and "4 failed scrape(s) of instance=l:1, job=late" in gaps[0]


def test_report_history_runs_against_prometheus_and_exits_on_a_broken_objective(
        prom_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "stream.yaml"
    spec.write_text(demo_spec("prometheus", prom_url, None), encoding="utf-8")
    args = ["report", "-c", str(spec), "--until", str(data.END), "--history", str(tmp_path / "h"), "--no-progress"]
    assert main(args) == 0
    assert main(args) == 0
    runs = sorted(p.name for p in (tmp_path / "h" / "trading").iterdir() if p.is_dir() and not p.is_symlink())
    assert len(runs) == 2 and runs[1].endswith(".2")
    assert {p.name for p in (tmp_path / "h" / "trading" / runs[0]).iterdir()} == {
        "report.json", "report.md", "report.html", "map.svg"}
    broken = tmp_path / "broken.yaml"
    broken.write_text(demo_spec("prometheus", prom_url, None).replace("end_to_end: {p99: 2s}",
                                                                      "end_to_end: {p99: 1ms}"))
    capsys.readouterr()
    assert main(["report", "-c", str(broken), "--until", str(data.END), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("objective broken: ")] == [
        next(line for line in err if line.startswith("objective broken: end_to_end p99 <= 1ms: "))]
    assert main(["report", "-c", str(spec), "--until", str(data.END)]) == 2
    assert "give exactly one of --out DIR or --history DIR" in capsys.readouterr().err


def test_report_over_prometheus_and_a_traces_spool(prom_url: str, demo_data: DemoData, tmp_path: Path) -> None:
    """The nightly report over a stream measured by a real Prometheus and by traces (sent by
    the OTel SDK through latmap's receiver into a spool): the lead time comes from traces."""
    from mapper.demo.run import receive_traces

    spool = tmp_path / "spool"
    receive_traces(demo_data, spool, items=2000)
    spec = tmp_path / "stream.yaml"
    spec.write_text(demo_spec("prometheus", prom_url, str(spool)), encoding="utf-8")
    history = tmp_path / "h"
    assert main(["report", "-c", str(spec), "--until", str(data.END), "--history", str(history),
                 "--no-progress"]) == 0
    latest = history / "trading" / "latest"
    doc = json.loads((latest / "report.json").read_text())
    assert doc["end_to_end"]["count"] == 2000 and doc["end_to_end"]["source"].startswith("traces")
    assert doc["attribution"]["p99"]["method"] == "traces"
    assert (history / "trading" / "index.html").is_file()
    assert "<svg" in (latest / "report.html").read_text()
