"""One value stream measured by three back ends: Prometheus (a real server), Datadog (the
loopback replay of tests/ddreplay.py: Datadog cannot run here) and OTLP traces (sent by the
OpenTelemetry SDK through latmap's receiver into a spool). One map, one report, and every
number says where it came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mapper.cli import main
from mapper.demo.data import DemoData
from tests import data
from tests.collectors.test_datadog import ALERTING, API_KEY, APP_KEY, keys, metric_store  # noqa: F401 (fixture)
from tests.ddreplay import UNIT_MILLISECOND, cassette, errors_answer, running_replay

SPEC = """\
version: 1
name: mixed
window: 24h
percentiles: [50, 99, 99.99]
sources:
  prom: {{kind: prometheus, url: "{prom}"}}
  dd:   {{kind: datadog, url: "{dd}", retries: 1}}
  spans: {{kind: traces, path: "{spool}"}}
stages:
  - name: market-data
    process: {{source: prom, histogram: md_tick_process_seconds, selector: {{service: market-data}}}}
  - name: alerting
    process: {{source: dd, distribution: trade.alert.latency, filter: "service:alerting"}}
  - name: notification
    traces: {{source: spans, service: notification}}
"""


@pytest.fixture(scope="module")
def spool(demo_data: DemoData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mapper.demo.run import receive_traces

    path = tmp_path_factory.mktemp("mixed") / "spool"
    receive_traces(demo_data, path, items=2000)
    return path


def _stage(doc: dict, name: str) -> dict:
    return next(s for s in doc["stages"] if s["name"] == name)


def test_one_map_from_prometheus_datadog_and_traces(prom_url: str, spool: Path, tmp_path: Path) -> None:
    with running_replay() as dd:
        metric_store(dd, ALERTING, UNIT_MILLISECOND, hourly={"count": [10_000.0], "p50": [12.0], "p99": [70.0]})
        spec = tmp_path / "stream.yaml"
        spec.write_text(SPEC.format(prom=prom_url, dd=dd.url, spool=spool))
        out = tmp_path / "out"
        assert main(["map", "-c", str(spec), "--until", str(data.END), "--out", str(out), "--no-progress"]) == 0
    doc = json.loads((out / "report.json").read_text())
    md, al, no = (_stage(doc, n) for n in ("market-data", "alerting", "notification"))
    # Prometheus: exact bucket counts summed (issue 14: no longer increase()), interval = bucket bounds
    assert md["process"]["source"].startswith(
        f"prom ({prom_url}): exact increase of md_tick_process_seconds_bucket")
    assert md["process"]["method"].startswith("histogram")
    # Datadog: its own percentiles, passed through with DDSketch's interval
    p = al["process"]
    assert p["source"].startswith(f"dd (Datadog {dd.url}): distribution pXX/count/sum/min/max:"
                                  "trade.alert.latency{service:alerting}")
    assert p["method"].startswith(f"Datadog DDSketch ({dd.url}): percentiles computed by the back end")
    assert p["count"] == 250_000 and p["p99"]["value"] == pytest.approx(0.08)
    assert p["p99"]["low"] == pytest.approx(0.08 / 1.01) and p["p99"]["high"] == pytest.approx(0.08 / 0.99)
    assert p["p99.99"]["value"] == pytest.approx(0.41)
    # traces: per-item samples from the spool
    assert no["process"]["source"].startswith("spans (spool ") and no["process"]["method"].startswith("samples")
    assert no["process"]["count"] == 2000
    # one end to end over all three: the convolution (the stages share no trace)
    e2e = doc["end_to_end"]
    assert e2e["source"] == ("back-end sketches and metric histograms and trace samples: convolution of the hop "
                             "distributions, assuming independence")  # what the parts were, each one used
    assert e2e["p99"]["value"] is not None
    why = next(c["message"] for c in doc["checks"] if c["code"] == "lead-time-not-from-traces")
    assert why.endswith("market-data, alerting are not measured from traces")
    assert e2e["p99"]["low"] <= e2e["p99"]["value"] <= e2e["p99"]["high"]
    assert doc["path"] == ["market-data", "alerting", "notification"]
    html = (out / "report.html").read_text()
    assert "Where the numbers come from" in html
    assert "pXX/count/sum/min/max:trade.alert.latency{service:alerting}" in html
    assert "relative accuracy (1.00%)" in html
    assert "Percentiles over the window, hour by hour" in html  # Datadog's hourly series
    md_text = (out / "report.md").read_text()
    assert "alerting process: `dd (Datadog" in md_text
    for path in out.iterdir():
        text = path.read_text(errors="replace")
        assert API_KEY not in text and APP_KEY not in text
    _looked_at_in_chromium(out / "report.html", tmp_path)


def _looked_at_in_chromium(report: Path, tmp_path: Path) -> None:
    """A real browser shows the mixed report: no console error, the provenance table, and
    every chart (the Datadog hour-by-hour series among them) drawn."""
    import subprocess

    from tests.render.test_html_report import _CHROMIUM_FLAGS
    from tests.servers import require_binary

    chromium = require_binary("chromium")
    run = subprocess.run([chromium, *_CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--enable-logging=stderr", "--v=0", "--dump-dom", report.as_uri()],
                         check=True, capture_output=True, text=True, timeout=90)
    assert [line for line in run.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line] == []
    dom = run.stdout
    assert "<h2>Where the numbers come from</h2>" in dom
    assert "<td>alerting</td><td>process</td><td>dd (Datadog " in dom
    assert '<div class="map"><svg' in dom
    charts = dom.split('<div class="chart">')[1:]
    assert len(charts) >= 5
    for chunk in charts:
        figure = chunk[: chunk.index("</svg>")]
        assert figure.lstrip().startswith("<svg") and "<path" in figure
    series = dom.split("Percentiles over the window, hour by hour")[1].split("</section>")[0]
    assert "alerting process" in series


def _map_with_datadog_answering(status: int, errors: str, prom_url: str, spool: Path, tmp_path: Path,
                                out: Path | None = None) -> tuple[int, str]:
    """Run ``latmap map`` over the mixed stream with Datadog answering every call with
    ``status`` and ``errors``; return the exit code and Datadog's URL."""
    with running_replay() as dd:
        dd.route(lambda req: (status, errors_answer(errors), {}))
        spec = tmp_path / "stream.yaml"
        spec.write_text(SPEC.format(prom=prom_url, dd=dd.url, spool=spool))
        where = ["--out", str(out)] if out else []
        return main(["map", "-c", str(spec), "--until", str(data.END), *where, "--no-progress"]), dd.url


def test_a_stage_datadog_refuses_leaves_the_rest_of_the_map(prom_url: str, spool: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _ = _map_with_datadog_answering(400, "Error parsing query: unknown metric trade.alert.latency",
                                          prom_url, spool, tmp_path, out)
    assert code == 0
    doc = json.loads((out / "report.json").read_text())
    al = _stage(doc, "alerting")
    assert al["process"]["count"] == 0 and al["process"]["p99"]["note"] == "no data in the window"
    (check,) = [c for c in doc["checks"] if c["code"] == "query-rejected"]
    assert check["level"] == "error" and check["message"].endswith(
        "HTTP 400: Datadog rejected the query: Error parsing query: unknown metric trade.alert.latency")
    assert _stage(doc, "market-data")["process"]["count"] > 0
    assert _stage(doc, "notification")["process"]["count"] == 2000
    assert doc["end_to_end"] is None


def test_wrong_keys_are_one_line_and_exit_2(prom_url: str, spool: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, url = _map_with_datadog_answering(403, "Forbidden", prom_url, spool, tmp_path)
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"latmap: error: alerting process: {url}/api/v2/query/scalar: HTTP 403: Forbidden: "
                       f"check DD_API_KEY / DD_APP_KEY and the site ({url})")


def test_a_stage_traced_by_datadog_apm(tmp_path: Path) -> None:
    """Datadog APM spans (the recorded search answer) make a traced stage like OTLP does:
    the java app's process time per trace is its root span (the child runs inside it)."""
    rec = cassette("v2/test_search_spans_returns_ok_response")
    with running_replay() as dd:
        dd.route(lambda req: (200, rec.json, {}) if req.path == "/api/v2/spans/events/search" else None)
        spec = tmp_path / "stream.yaml"
        spec.write_text(f"""\
version: 1
name: apm
window: 1h
percentiles: [50]
sources:
  dd: {{kind: datadog, url: "{dd.url}", max_spans: 25}}
stages:
  - name: java
    traces: {{source: dd, service: java-sample-app-spartancrimson}}
""")
        out = tmp_path / "out"
        assert main(["map", "-c", str(spec), "--until", "2023-06-29T10:00:00Z", "--out", str(out),
                     "--no-progress"]) == 0
    doc = json.loads((out / "report.json").read_text())
    java = _stage(doc, "java")
    assert java["process"]["count"] == 4
    roots = sorted(e["attributes"]["custom"]["duration"] for e in rec.json["data"]
                   if e["attributes"]["service"] == "java-sample-app-spartancrimson"
                   and e["attributes"]["parent_id"] == "0")
    assert len(roots) == 4
    assert java["process"]["p50"]["value"] == pytest.approx(sum(roots[1:3]) / 2 / 1e9)
    assert java["process"]["source"].startswith("dd (Datadog APM")


def test_grafana_and_recording_rules_leave_datadog_stages_out_and_say_why() -> None:
    """Datadog's percentiles are not in Prometheus: no PromQL panel or rule is made for
    them (a Datadog *histogram* named like a Prometheus one must not become a rule)."""
    from dashboards.grafana import build_dashboard, dashboard_queries
    from dashboards.rules import not_recordable, rules_for
    from mapper.core.spec import loads_spec

    spec = loads_spec(SPEC.format(prom="http://127.0.0.1:9090", dd="http://127.0.0.1:1", spool="spool").replace(
        "distribution: trade.alert.latency", "histogram: trade_alert_latency"), "stream.yaml")
    rules = rules_for(spec)
    assert rules and all("trade_alert_latency" not in r.expr for r in rules)
    assert not_recordable(spec)[0] == (
        "alerting process: histogram trade_alert_latency (stream.yaml:13): measured in Datadog, which computes "
        "its percentiles itself; there is nothing for Prometheus to record")
    doc, missing = build_dashboard(spec)
    assert all("trade_alert_latency" not in e for _, e in dashboard_queries(doc))
    assert any(m.what == "alerting process" and "datadog source, not a PromQL API" in m.reason
               for m in missing)


def test_every_number_in_report_json_names_its_source(prom_url: str, spool: Path, tmp_path: Path) -> None:
    with running_replay() as dd:
        metric_store(dd, ALERTING, UNIT_MILLISECOND)
        spec = tmp_path / "stream.yaml"
        spec.write_text(SPEC.format(prom=prom_url, dd=dd.url, spool=spool))
        assert main(["map", "-c", str(spec), "--until", str(data.END), "--out", str(tmp_path), "--no-progress"]) == 0
    doc = json.loads((tmp_path / "report.json").read_text())
    latencies = [doc["end_to_end"], *(h["latency"] for h in doc["hops"])]
    for s in doc["stages"]:
        latencies += [x for x in (s["wait"], s["process"], s["total"]) if x is not None]
    assert all(x["source"] for x in latencies)
    totals = {s["name"]: s["total"]["source"] for s in doc["stages"]}
    assert totals["alerting"].startswith("process of alerting alone: dd (Datadog")
    assert totals["notification"] == "traces: wait + process of notification per traced item"
    assert [c["stage"] for c in doc["checks"] if c["code"] == "segments-not-from-datadog"] == ["alerting"]
    assert totals["market-data"].startswith(f"process of market-data alone: prom ({prom_url})")
