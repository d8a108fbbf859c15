"""The live deriver in process: payloads in, OpenMetrics out; reload; bad specs; SIGHUP on a server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest

from collectors.spool.exposition import metrics_response
from collectors.spool.payload import encode_payload
from mapper.analysis.live import StoreLimits
from mapper.app.live import LiveDeriver, plan
from mapper.cli import main
from mapper.core.errors import UsageError
from mapper.core.spans import SpanBatch
from mapper.core.spec import loads_spec
from mapper.demo.localprom import free_port, stop_process
from tests.analysis.test_live_store import chain

SPEC = """\
name: alerts
sources:
  spans: {kind: traces, path: ./spool}
stages:
  - {name: ingest, traces: {source: spans, service: ingest}}
  - {name: alerting, traces: {source: spans, service: alerting}}
  - {name: notify, traces: {source: spans, service: notify}}
segments: {labels: [destination, region]}
objectives: {notify: {p99: 17ms}, end_to_end: {p99: 60ms}}
"""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def payload(b: SpanBatch) -> bytes:
    return encode_payload(b).to_pybytes()


def deriver(clock: Clock) -> LiveDeriver:
    return LiveDeriver([plan(loads_spec(SPEC, "stream.yaml"))], StoreLimits(ttl=30, settle=1), clock=clock)


def test_payloads_become_openmetrics_histograms_with_exemplars_and_counters() -> None:
    clock = Clock()
    d = deriver(clock)
    for i in range(20):
        p, c = chain(i)
        d.accept(payload(c), len(c))
        d.accept(payload(p), len(p))
    d.flush()  # grouped, not yet quiet for `settle`
    clock.now = 2.0
    assert d.flush() == 20
    registry = CollectorRegistry(auto_describe=False)
    registry.register(d)
    text = metrics_response(registry, "application/openmetrics-text; version=1.0.0")[0].decode()
    assert 'latmap_stage_wait_seconds_count{destination="eu",stage="notify",stream="alerts"} 20.0' in text
    assert 'latmap_lead_time_seconds{' not in text  # the native sample: protobuf only
    assert 'latmap_live_spans_late_total{stream="alerts"} 0.0' in text
    assert 'latmap_live_items_incomplete_total{reason="busy",stream="alerts"} 0.0' in text
    assert 'latmap_lead_time_seconds_bucket{destination="eu",le="0.06",stream="alerts"} 20.0' in text
    # the notify objective (17ms) is a bucket bound; process 12ms sits below it, with its exemplar
    bucket = next(x for x in text.splitlines() if x.startswith(
        'latmap_stage_process_seconds_bucket{destination="eu",le="0.017",stage="notify",stream="alerts"} 20.0'))
    assert '# {trace_id="' in bucket and bucket.split('"')[-2] != ""
    assert 'latmap_live_items_completed_total{stream="alerts"} 20.0' in text
    assert "region" not in text  # a segment label no span column holds is left out


def test_reload_drops_open_items_and_counts_them() -> None:
    clock = Clock()
    d = deriver(clock)
    p, _ = chain(0)
    d.accept(payload(p), len(p))
    d.flush()
    d.reload([plan(loads_spec(SPEC.replace("alerts", "alerts2"), "stream.yaml"))])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(d)
    text = generate_latest(registry).decode()
    assert 'latmap_live_items_incomplete_total{reason="reload",stream="alerts"} 1.0' in text


def test_a_spec_without_traced_stages_or_twice_the_same_stream_is_refused() -> None:
    no_traces = loads_spec("name: x\nsources:\n  p: {kind: prometheus, url: 'http://127.0.0.1:9'}\nstages:\n"
                           "  - {name: a, process: {source: p, histogram: h}}\n", "x.yaml")
    with pytest.raises(UsageError, match="traces"):
        plan(no_traces)
    one = plan(loads_spec(SPEC, "stream.yaml"))
    with pytest.raises(UsageError, match="same stream"):
        LiveDeriver([one, one])


def test_serve_with_a_bad_stream_spec_exits_2_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "stream.yaml"
    bad.write_text("name: x\nstages: [\n")
    assert main(["serve", "--spool", str(tmp_path / "spool"), "--http", "127.0.0.1:0", "--grpc", "off",
                 "--stream", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stream.yaml" in err[0]


def test_sighup_reloads_and_a_broken_spec_leaves_the_server_running(tmp_path: Path) -> None:
    spec = tmp_path / "stream.yaml"
    spec.write_text(SPEC)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mapper", "-v", "serve", "--spool", str(tmp_path / "spool"),
                                 "--http", f"127.0.0.1:{port}", "--grpc", "off", "--decode-workers", "0",
                                 "--stream", str(spec)], stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    requests.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
                    break
                except requests.RequestException:
                    time.sleep(0.2)
            spec.write_text("name: x\nstages: [\n")
            proc.send_signal(signal.SIGHUP)
            time.sleep(1.5)
            assert proc.poll() is None
            spec.write_text(SPEC.replace("name: alerts", "name: renamed"))
            proc.send_signal(signal.SIGHUP)
            time.sleep(1.5)
            assert proc.poll() is None
            assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
        finally:
            stop_process(proc)
    text = log.read_text()
    assert "not reloaded" in text and "1 stream spec(s) reloaded" in text
