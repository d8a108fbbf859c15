"""``latmap serve --stream``: known spans through the OTel SDK into the live value stream, scraped
by a real Prometheus, read back with ``latmap map`` and ``latmap dashboards --check``.

The chain is the known one of :mod:`tests.app.test_traces_map` (a synchronous call, a hand-over
by parent through a topic, one by span link only, with per-item timings), sent by the SDK's
OTLP/HTTP and OTLP/gRPC exporters to a ``latmap serve`` subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from collectors.spool.exposition import PROTOBUF_TYPE
from mapper.analysis.livehist import native_index
from mapper.cli import main
from mapper.demo.localprom import free_port, running_prometheus, stop_process
from tests.app.test_traces_map import SERVICES, SPEC, N, make_known_spans
from tests.native_exposition import PROMETHEUS_242_ACCEPT, decode_delimited
from tests.servers import require_binary

#: The second Prometheus scrapes the protobuf exposition (native histograms; 2.42 has no
#: ``scrape_classic_histograms``, so it stores the native series of a histogram that has both).
NATIVE_FEATURES = ["--enable-feature=native-histograms,exemplar-storage"]

LIVE_SPEC = """\
name: quotes
sources:
  prom: {{kind: prometheus, url: "{url}"}}
stages:
{stages}
objectives: {{end_to_end: {{p99: 50ms}}}}
"""


#: The measured lead time of the stream (the spec's top-level ``end_to_end:``).
MEASURED_LEAD = "end_to_end: {source: prom, histogram: latmap_lead_time_seconds, selector: {stream: quotes}}\n"


def live_stage(name: str, first: bool) -> str:
    parts = [f"process: {{source: prom, histogram: latmap_stage_process_seconds, "
             f"selector: {{stream: quotes, stage: {name}}}}}"]
    if not first:
        parts.insert(0, f"wait: {{source: prom, histogram: latmap_stage_wait_seconds, "
                        f"selector: {{stream: quotes, stage: {name}}}}}")
    return f"  - {{name: {name}, {', '.join(parts)}}}"


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    body = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5).json()
    return body["data"]["result"]  # type: ignore[no-any-return]


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout}s")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_binary("prometheus")
    tmp = tmp_path_factory.mktemp("live")
    spool = tmp / "spool"
    spec = tmp / "stream.yaml"
    spec.write_text(SPEC.format(path=spool))
    http_port, grpc_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mapper", "serve", "--spool", str(spool), "--http", f"127.0.0.1:{http_port}",
         "--grpc", f"127.0.0.1:{grpc_port}", "--decode-workers", "0", "--stream", str(spec),
         "--live-settle", "1s", "--live-ttl", "60s",
         "--retention", "0"],  # the known spans have fixed dates, older than a default retention
        stdout=log, stderr=subprocess.STDOUT, env=env)
    config = (f"global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: latmap\n"
              f"    static_configs: [{{targets: ['127.0.0.1:{http_port}']}}]\n")
    try:
        _wait(lambda: _up(http_port), 60, "latmap serve listening")
        with running_prometheus(config=config, extra_args=["--enable-feature=exemplar-storage"]) as url, \
                running_prometheus(config=config, extra_args=NATIVE_FEATURES) as native_url:
            send_known_items(http_port, grpc_port)
            _wait(lambda: [r for r in _query(url, 'latmap_live_items_completed_total{stream="quotes"}')
                           if float(r["value"][1]) >= N], 60, "every item completed and scraped")
            _wait(lambda: [r for r in _query(url, 'latmap_lead_time_seconds_count{stream="quotes"}')
                           if float(r["value"][1]) >= N], 30, "lead times scraped")
            _wait(lambda: [r for r in _query(native_url, 'histogram_count(latmap_lead_time_seconds{stream="quotes"})')
                           if float(r["value"][1]) >= N], 30, "native lead times scraped")
            yield {"url": url, "tmp": tmp, "spec": spec, "http_port": http_port, "native_url": native_url,
                   "grpc_port": grpc_port}
    finally:
        stop_process(proc)
        log.close()


def send_known_items(http_port: int, grpc_port: int) -> None:
    """The N known items through the OTel SDK (new trace ids on every call): gateway and pricing
    over OTLP/HTTP, alerting and notifier over OTLP/gRPC."""
    providers = {}
    for svc in SERVICES:
        exporter = (GrpcExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
                    if svc in ("alerting", "notifier")
                    else HttpExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces"))
        p = TracerProvider(resource=Resource.create({"service.name": svc}))
        p.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=20_000, max_export_batch_size=500))
        providers[svc] = p
    make_known_spans({s: p.get_tracer("test") for s, p in providers.items()})
    for p in providers.values():
        assert p.force_flush(30_000)
        p.shutdown()


def _up(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _report(tmp: Path, name: str, argv: list[str]) -> dict[str, Any]:
    out = tmp / name
    assert main([*argv, "--out", str(out)]) in (0, 1)
    return json.loads((out / "report.json").read_text())  # type: ignore[no-any-return]


def _stage(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in report["stages"] if s["name"] == name)


def test_prometheus_series_give_the_known_values_and_agree_with_the_spool(live: dict[str, Any]) -> None:
    tmp, url = live["tmp"], live["url"]
    stages = "\n".join(live_stage(s, i == 0) for i, s in enumerate(SERVICES))
    spec = tmp / "live.yaml"
    spec.write_text(LIVE_SPEC.format(url=url, stages=stages))
    from_prom = _report(tmp, "prom", ["map", "-c", str(spec), "--window", "10m"])
    from_spool = _report(tmp, "spool", ["map", "-c", str(live["spec"]), "--until", "2026-09-22T00:00:00Z",
                                        "--window", "2d"])
    i = np.arange(N)
    known = {
        ("pricing", "wait"): np.full(N, 0.1e-3),  # client start -> server start (a call)
        ("alerting", "wait"): 5e-3 + i * 1e-5,  # by parent, through a topic
        ("notifier", "wait"): np.full(N, 7e-3),  # by span link only
        ("pricing", "process"): 2e-3 + i * 1e-6,
        ("alerting", "process"): np.full(N, 3e-3),
        ("notifier", "process"): np.full(N, 4e-3),
    }
    for (stage, part), exact in known.items():
        prom = _stage(from_prom, stage)[part]
        spool = _stage(from_spool, stage)[part]
        assert prom["count"] == pytest.approx(N), (stage, part)
        for key, q in (("p50", 0.5), ("p99", 0.99)):
            pe, se = prom[key], spool[key]
            truth = float(np.quantile(exact, q))
            assert pe["low"] <= truth * (1 + 1e-9) and truth <= pe["high"] * (1 + 1e-9), (stage, part, key, pe)
            # agreement: the spool's interval overlaps the bucket interval from Prometheus
            assert se["low"] <= pe["high"] * (1 + 1e-9) and pe["low"] <= se["high"] * (1 + 1e-9), (stage, part, key)
    lead = 1.1e-3 + 2e-3 + i * 1e-6 + 5e-3 + i * 1e-5 + 3e-3 + 7e-3 + 4e-3
    e2e = from_prom["end_to_end"]
    for key, q in (("p50", 0.5), ("p99", 0.99)):
        est = e2e[key]
        assert est["low"] <= np.quantile(lead, q) <= est["high"], (key, est)
        spool_est = from_spool["end_to_end"][key]
        assert spool_est["low"] <= est["high"] and est["low"] <= spool_est["high"]
    # the lead-time histogram itself: every item, and its p50 bucket holds the known p50
    count = float(_query(url, 'latmap_lead_time_seconds_count{stream="quotes"}')[0]["value"][1])
    assert count == N
    p50 = float(_query(url, 'histogram_quantile(0.5, sum by (le) (latmap_lead_time_seconds_bucket))')[0]["value"][1])
    assert 0.01 <= p50 <= 0.025 and 0.01 < np.quantile(lead, 0.5) <= 0.025  # the bucket (10ms, 25ms]


def test_the_measured_lead_time_read_back_through_prometheus(live: dict[str, Any]) -> None:
    tmp, url = live["tmp"], live["url"]
    stages = "\n".join(live_stage(s, i == 0) for i, s in enumerate(SERVICES))
    spec = tmp / "measured.yaml"
    spec.write_text(LIVE_SPEC.format(url=url, stages=stages) + MEASURED_LEAD)
    report = _report(tmp, "measured", ["map", "-c", str(spec), "--window", "10m"])
    e2e = report["end_to_end"]
    assert e2e["source"].startswith("measured: ") and "latmap_lead_time_seconds" in e2e["source"]
    assert e2e["count"] == N  # every item once, not a convolution's made-up population
    i = np.arange(N)
    lead = 1.1e-3 + 2e-3 + i * 1e-6 + 5e-3 + i * 1e-5 + 3e-3 + 7e-3 + 4e-3
    for key, q in (("p50", 0.5), ("p99", 0.99)):
        est = e2e[key]
        truth = float(np.quantile(lead, q))
        assert est["low"] <= truth <= est["high"], (key, est, truth)
        # the interval is the histogram's bucket: bounds of the live layout
        assert est["low"] in (0.01, 0.025) and est["high"] in (0.025, 0.05)
    assert not [c for c in report["checks"] if c["code"] == "lead-time-disagrees"]
    objective = next(o for o in report["objectives"] if o["target"] == "end_to_end")
    assert objective["status"] == "met"  # p99 26.4ms <= 50ms, exact: 50ms is a bucket bound


def test_exemplars_carry_trace_ids(live: dict[str, Any]) -> None:
    text = requests.get(f"http://127.0.0.1:{live['http_port']}/metrics",
                        headers={"Accept": "application/openmetrics-text; version=1.0.0"}, timeout=5).text
    line = next(x for x in text.splitlines()
                if x.startswith("latmap_stage_wait_seconds_bucket") and 'stage="notifier"' in x and "# {" in x)
    assert 'trace_id="' in line and len(line.split('trace_id="')[1].split('"')[0]) == 32


def test_the_dashboard_of_a_traces_only_stream_has_panels_with_data(live: dict[str, Any],
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = live["tmp"] / "dash"
    assert main(["dashboards", "-c", str(live["spec"]), "--prometheus", live["url"], "--out", str(out),
                 "--check"]) == 0
    err = capsys.readouterr().err
    assert "not dashboardable" not in err
    board = json.loads(next((out / "dashboards").glob("*.json")).read_text())
    exprs = json.dumps(board)
    for stage in SERVICES:
        assert f'stage=\\"{stage}\\"' in exprs
    assert "latmap_stage_wait_seconds_bucket" in exprs and "latmap_stage_process_seconds_bucket" in exprs
    titles = [p["title"] for p in board["panels"]]
    assert "Lead time per item (latmap serve --stream)" in titles and "Lead time buckets" in titles


def test_rules_and_burn_rate_alerts_cover_the_traced_stages(live: dict[str, Any], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "stream.yaml"
    spec.write_text(live["spec"].read_text().replace("objectives: {end_to_end: {p99: 50ms}}",
                                                     "objectives: {end_to_end: {p99: 50ms}, notifier: {p99: 20ms}}"))
    out = tmp_path / "rules.yml"
    assert main(["rules", "-c", str(spec), "--prometheus", live["url"], "--alerts", "--out", str(out)]) == 0
    text = out.read_text()
    for stage in SERVICES:
        assert f'stage="{stage}"' in text
    assert "latmap_stage_process_seconds_bucket" in text
    # the end-to-end objective: one histogram now (every stage traced), so it has burn-rate alerts
    assert 'latmap_lead_time_seconds_bucket{stream="quotes",le=~"0\\\\.05"}' in text.replace("'", '"')
    assert "alert:" in text
    assert "not recordable" not in capsys.readouterr().err


def test_native_histograms_scraped_from_the_protobuf_exposition(live: dict[str, Any]) -> None:
    """Runs last in the module: it sends the N items a second time (new trace ids), so that a
    rate() over the native series sees them arrive."""
    url = live["native_url"]
    i = np.arange(N)
    lead = 1.1e-3 + 2e-3 + i * 1e-6 + 5e-3 + i * 1e-5 + 3e-3 + 7e-3 + 4e-3
    truth = float(np.quantile(lead, 0.99))
    # schema 3: the quantile sits in the native bucket holding the truth, 9.05% wide
    k = int(native_index(np.array([truth]))[0])
    low, high = 2.0 ** ((k - 1) / 8), 2.0 ** (k / 8)
    assert low < truth <= high
    count = float(_query(url, 'histogram_count(latmap_lead_time_seconds{stream="quotes"})')[0]["value"][1])
    assert count == N
    waits = _query(url, 'histogram_count(latmap_stage_wait_seconds{stream="quotes", stage="notifier"})')
    assert float(waits[0]["value"][1]) == N  # per stage too (wait and process are native as well)
    send_known_items(live["http_port"], live["grpc_port"])
    _wait(lambda: [r for r in _query(url, 'histogram_count(latmap_lead_time_seconds{stream="quotes"})')
                   if float(r["value"][1]) >= 2 * N], 60, "the second round scraped")
    time.sleep(2)  # one more scrape at 2N
    got = _query(url, 'histogram_quantile(0.99, sum(rate(latmap_lead_time_seconds{stream="quotes"}[1m])))')
    p99 = float(got[0]["value"][1])
    assert low <= p99 <= high, (p99, low, high, truth)
    # the same scrape body carries the classic buckets (the first Prometheus reads them as _bucket)
    body = requests.get(f"http://127.0.0.1:{live['http_port']}/metrics",
                        headers={"Accept": PROMETHEUS_242_ACCEPT}, timeout=5)
    assert body.headers["Content-Type"] == PROTOBUF_TYPE
    fams = {f.name: f for f in decode_delimited(body.content)}
    lead_h = fams["latmap_lead_time_seconds"].metric[0].histogram
    assert lead_h.schema == 3 and lead_h.sample_count == 2 * N and len(lead_h.bucket) >= 18
    assert any(b.exemplar.label for b in lead_h.bucket)
    assert fams["latmap_live_items_completed_total"].type == 0  # every family, counters included
    assert _query(live["url"], 'count(latmap_lead_time_seconds_bucket{stream="quotes"})')
