"""What ``latmap serve --stream`` costs: receive-to-durable throughput with and without the live
value stream, in the same run (``python benchmarks/trace_ingest.py --stream``).

The requests are part (a)'s of :mod:`trace_ingest` (3-5 services a trace, calls, database spans,
PRODUCER -> CONSUMER hand-overs linked across traces). The same requests go to three receivers,
one after the other, each a ``latmap serve`` subprocess:

* ``plain``: no ``--stream`` (the baseline);
* ``stream``: ``--stream`` with a spec of three traced stages (gateway -> marketdata ->
  alerting, matched by service); items that hold all three complete, the others expire;
* ``never``: ``--stream`` with a spec whose first stage no span matches, so *no item ever
  completes* (items may stop before the last stage, but every item must come in through the
  first): the store fills to its limits and drops the oldest groups; its peak RSS shows
  the memory bound (``--live-max-spans`` / ``--live-max-items``).

Printed: spans/s and receiver CPU-seconds per span of each, their ratio to ``plain``, peak RSS,
and the live counters read from ``/metrics`` at the end (items completed, incomplete, spans
held). Target (from the issue): ``stream`` keeps >= 75% of ``plain``'s throughput.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import otlp_load as load

from mapper.demo.localprom import stop_process

TARGET_SHARE = 0.75
SPEC = """\
name: bench
sources:
  spans: {{kind: traces, path: "{spool}"}}
stages:
  - {{name: gateway, traces: {{source: spans, service: {first}}}}}
  - {{name: marketdata, traces: {{source: spans, service: marketdata}}}}
  - {{name: alerting, traces: {{source: spans, service: alerting}}}}
"""


@dataclass(frozen=True)
class Run:
    name: str
    spans: int
    seconds: float
    spans_per_s: float
    cpu_seconds: float
    peak_rss_mib: float
    failed: int
    live: dict[str, float]


def _start(directory: str, port: int, extra: Sequence[str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "mapper", "serve", "--spool", directory, "--http", f"127.0.0.1:{port}",
           "--grpc", "off", *extra]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(load.ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, cwd=load.ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if _metrics(port) is not None:
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("latmap serve exited") from None
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("latmap serve did not start")


def _metrics(port: int) -> str | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return text


def _live_counters(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("latmap_live_"):
            name, _, value = line.rpartition(" ")
            out[name] = out.get(name, 0.0) + float(value)
    return out


def measure(name: str, requests: Sequence[tuple[bytes, int]], clients: int, tmp: Path,
            extra: Sequence[str]) -> Run:
    port = load.free_port()
    proc = _start(str(tmp / name / "spool"), port, extra)
    try:
        cpu0 = load.cpu_seconds(proc.pid)
        seconds, spans, failed = load.run_load(port, requests, clients)
        cpu = load.cpu_seconds(proc.pid) - cpu0
        time.sleep(2.5)  # two flushes: what was held at the end is grouped and counted
        live = _live_counters(_metrics(port) or "")
        rss = load.peak_rss(proc.pid)
    finally:
        stop_process(proc, timeout=30)
    return Run(name, spans, seconds, spans / seconds, cpu, rss / 2**20, failed, live)


def part_stream(total_spans: int, clients: int) -> tuple[list[Run], list[str]]:
    requests = load.build_requests(total_spans)
    print(f"built {len(requests)} requests, {sum(n for _, n in requests):,} spans", flush=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="latmap-live-bench-") as tmp_name:
        tmp = Path(tmp_name)
        specs = {}
        for name, first in (("stream", "gateway"), ("never", "no-such-service")):
            (tmp / name).mkdir()
            specs[name] = tmp / name / "stream.yaml"
            specs[name].write_text(SPEC.format(spool=tmp / name / "spool", first=first))
        (tmp / "plain").mkdir()
        runs.append(measure("plain", requests, clients, tmp, []))
        runs.append(measure("stream", requests, clients, tmp, ["--stream", str(specs["stream"])]))
        runs.append(measure("never", requests, clients, tmp,
                            ["--stream", str(specs["never"]), "--live-max-spans", "100000",
                             "--live-max-items", "20000", "--live-ttl", "60s"]))
    base = runs[0]
    missed = []
    share = runs[1].spans_per_s / base.spans_per_s
    if share < TARGET_SHARE:
        missed.append(f"--stream keeps {share:.0%} of the throughput < {TARGET_SHARE:.0%}")
    if any(r.failed for r in runs):
        missed.append("some requests were not answered 200")
    return runs, missed


def print_runs(runs: Sequence[Run]) -> None:
    base = runs[0]
    print(f"{'receiver':<8} {'spans':>10} {'seconds':>8} {'spans/s':>10} {'ratio':>6} {'CPU us/span':>11} "
          f"{'ratio':>6} {'peak RSS':>10}")
    for r in runs:
        us = r.cpu_seconds / r.spans * 1e6
        base_us = base.cpu_seconds / base.spans * 1e6
        print(f"{r.name:<8} {r.spans:>10,} {r.seconds:>8.2f} {r.spans_per_s:>10,.0f} "
              f"{r.spans_per_s / base.spans_per_s:>5.2f}x {us:>11.2f} {us / base_us:>5.2f}x {r.peak_rss_mib:>6.0f} MiB")
    for r in runs[1:]:
        shown = {k: v for k, v in r.live.items() if v and not k.startswith("latmap_live_label")}
        print(f"{r.name}: " + ", ".join(f"{k}={v:,.0f}" for k, v in sorted(shown.items())))
