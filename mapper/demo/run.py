"""``latmap demo``: the whole tool on a simulated trading chain, no external server needed.

With ``prometheus`` and ``promtool`` on PATH, the demo backfills a day of simulated data
into a real Prometheus on a free loopback port and maps it through the real HTTP API;
otherwise it serves the simulated counters on a loopback ``/metrics`` endpoint and reads
them with the ``scrape`` source.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from collectors.spool.receiver import Receiver
from collectors.spool.store import Spool
from mapper.analysis.findings import Findings, find
from mapper.analysis.latency import LatencyMap
from mapper.app import job
from mapper.app.pipeline import Progress, write_reports
from mapper.core.files import write_atomic
from mapper.core.spec import loads_spec
from mapper.demo.data import STEP, DemoData, final_families, openmetrics_lines, simulate
from mapper.demo.localprom import backfill, binaries_available, free_port, running_prometheus
from mapper.demo.traces import emit_traces

DAY = 86400.0

SPEC_TEMPLATE = """\
# latmap stream spec for the built-in demo: a trading platform's alert chain.
# Point the source at your Prometheus and the metrics at yours to map your own stream.
version: 1
name: trading
owner: sre-oncall
window: 24h
percentiles: [50, 99, 99.99]
sources:
  prom: {{kind: {kind}, url: "{url}"}}
  spans: {{kind: traces, path: "{spool}"}}      # latmap serve's spool (relative to this file)
stages:
  - name: market-data
    owner: md-team
    process: {{source: prom, histogram: md_tick_process_seconds, selector: {{service: market-data}}}}
    traces:  {{source: spans, service: market-data}}
  - name: alerting
    owner: alerts-team
    wait:    {{source: prom, histogram: alert_queue_wait_seconds}}
    process: {{source: prom, histogram: alert_eval_seconds}}
    traces:  {{source: spans, service: alerting}}
    objectives: {{p99: 100ms}}
  - name: notification
    owner: notify-team
    wait:    {{source: prom, histogram: notify_queue_wait_seconds}}
    process: {{source: prom, histogram: notify_send_seconds, selector: {{provider: twilio}}}}
    traces:  {{source: spans, service: notification}}
objectives:
  end_to_end: {{p99: 2s}}
segments: {{hours: true, weekdays: true}}
events:                                       # news windows, compared with the same hours on quiet days
  - {{name: daily-news, cron: "0 14 * * *", duration: 15m}}
future:                                       # the future-state map: what if notification's hop halved?
  - {{hop: notification, scale: 0.5}}
"""


def demo_spec(kind: str = "prometheus", url: str = "http://127.0.0.1:9090", spool: str | None = "spool") -> str:
    """The demo's stream.yaml text, for a metrics source of ``kind`` at ``url``; with traces
    from the spool at ``spool`` unless it is None (metrics only)."""
    text = SPEC_TEMPLATE.format(kind=kind, url=url, spool=spool)
    if spool is None:
        text = "".join(line for line in text.splitlines(keepends=True)
                       if "traces:" not in line and "spans:" not in line)
    return text


@dataclass(frozen=True)
class DemoRun:
    latency_map: LatencyMap
    mode: str  # "prometheus" or "scrape"
    outputs: tuple[Path, ...]
    findings: Findings
    data: DemoData


@contextlib.contextmanager
def _scrape_endpoint(data: DemoData) -> Iterator[str]:
    from prometheus_client import CollectorRegistry, start_http_server

    class _Final:
        def collect(self) -> list[object]:
            return final_families(data)

    registry = CollectorRegistry()
    registry.register(_Final())  # type: ignore[arg-type]
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        server.shutdown()
        thread.join(timeout=5)


#: Traced items the demo sends: enough for a supported p99.99 of the lead time.
TRACED_ITEMS = 12_000


def receive_traces(data: DemoData, spool: Path, items: int = TRACED_ITEMS) -> int:
    """Run latmap's OTLP receiver on a free loopback port over ``spool`` and send it the
    demo's traces with the OpenTelemetry SDK's OTLP/HTTP exporter; return the spans sent."""

    with Spool(str(spool)) as sp:
        with Receiver(sp, http="127.0.0.1:0", grpc=None, decode_workers=0) as rx:
            sent = emit_traces(data, f"http://127.0.0.1:{rx.http_port}/v1/traces", n=items)
        # Compact now, so the demo's spool shows the Parquet layout other tools can read.
        sp.rotate()
        sp.compact()
    return sent


def run_demo(out: str | Path = "latmap-demo", mode: str = "auto", seed: int = 7,
             end: float | None = None, progress: Progress | None = None) -> DemoRun:
    """Simulate a day of the trading chain, map it, and write the outputs into ``out``.

    The metrics go to a real Prometheus (or a /metrics endpoint); the traces go through
    latmap's own OTLP receiver into ``out/spool``.
    """
    out = Path(out)
    spool = out / "spool"
    if spool.exists():
        import shutil

        shutil.rmtree(spool)
    end = float(int((time.time() if end is None else end) // STEP) * STEP)
    # Counters start at zero just inside the window, so increase() over the window is exact.
    data = simulate(end - DAY + STEP, end, seed=seed)
    if mode == "auto":
        mode = "prometheus" if binaries_available() else "scrape"
    receive_traces(data, spool)
    if mode == "prometheus":
        import tempfile

        with tempfile.TemporaryDirectory(prefix="latmap-demo-") as tmp:
            data_dir = Path(tmp) / "data"
            backfill(openmetrics_lines(data), data_dir)
            with running_prometheus(data_dir) as url:
                spec = loads_spec(demo_spec("prometheus", url, str(spool.resolve())), "<demo>")
                lm = job.run_map(job.MapRequest(spec, length=DAY, until=end, progress=progress)).latency_map
    else:
        with _scrape_endpoint(data) as url:
            spec = loads_spec(demo_spec("scrape", url, str(spool.resolve())), "<demo>")
            lm = job.run_map(job.MapRequest(spec, length=DAY, until=end, progress=progress)).latency_map
    written = [write_atomic(out / "stream.yaml", demo_spec())]
    found = find(lm)
    written += write_reports(lm, out, found)
    return DemoRun(lm, mode, tuple(written), found, data)

