"""Trace ingest and map: ``latmap serve`` and ``latmap map`` over a million spans, against naive versions.

Part (a), receive-to-durable throughput. The client builds >= 1,000,000 spans up front as
realistic OTLP/protobuf export requests (what a Collector forwards: 500-2000 spans per
request, 3-5 services each with its own resource, HTTP server/client spans, database calls,
and asynchronous PRODUCER -> CONSUMER hand-overs linked across traces), then posts them over
loopback with several concurrent keep-alive connections. Each receiver runs in its own
subprocess, so the client's CPU is not counted in its process; the clock runs from the
first request sent to the last 200 received, and a 200 means "fsynced" for both receivers:

* ``latmap``: :mod:`collectors.receiver` as ``latmap serve`` runs it (decode to columns,
  Arrow IPC records, group commit);
* ``naive``: the same stdlib HTTP server decoding with ``MessageToDict``, one Python dict per
  span, one JSON line per span, and one fsync per request.

Reported per receiver: spans, seconds, spans/s, the receiver process's peak RSS (VmHWM), and
the ratio to the naive one. Targets (from the issue): >= 200,000 spans/s on the 2-core
machine, >= 8x the naive receiver, peak RSS < 1 GiB; the exit code is 1 when one is missed.
Afterwards the latmap spool is read back and must hold every span exactly once.

Part (b), the whole map. >= 1,000,000 spans of one value stream (gateway -> marketdata ->
pricing by synchronous calls, -> alerting -> notification through Kafka topics; 3-5 stages a
trace, nested INTERNAL spans, database calls, a few negative waits from clock skew, a few
retried exports) are built as part (a)'s requests are, sent through the receiver's export path
into a spool and compacted to Parquet (what ``latmap map`` reads in production). Then, each in
its own process, timed from start to exit with its own peak RSS (``wait4``):

* ``latmap``: ``python -m mapper map -c stream.yaml --format json``, the real CLI;
* ``naive``: the same export requests through ``MessageToDict``, one dict per span, and the
  same definitions written as per-trace Python loops (:func:`naive_map`).

Every count, mean and percentile of the report (each stage's wait, process and hop, the lead
time) must be the naive one written to the report's 9 significant digits, and the same numbers
unrounded (the library call the CLI makes, run again untimed) must agree within 1e-9: the ratio
means something only if both computed the same, and it cross-checks :mod:`mapper.traces`. Targets (from
the issue): under 5 s, >= 20x the naive map, peak RSS < 1 GiB; they are printed, met or not.
The exit code is 1 only when the run itself failed (a process exited badly, the numbers
disagree), so that ``tests/test_benchmark_trace_map.py`` decides about the quick run.

Usage::

    python benchmarks/trace_ingest.py [--part a|b|all] [--quick] [--spans N] [--clients K]
                                      [--baseline-spans N] [--json PATH]

``--quick`` runs 50,000 spans. ``--baseline-spans`` sends only the first requests to the naive
receiver of part (a) (its rate is what is compared; the default sends it everything).
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.client
import json
import math
import os
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from naive import merge_intervals  # benchmarks/ is on sys.path when these run

#: This checkout (not whatever ``latmap`` is installed): the receivers run its code.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
TARGET_SPANS_PER_S = 200_000
TARGET_RATIO = 8.0
TARGET_RSS = 1 << 30
SERVICES = ["gateway", "marketdata", "alerting", "notification", "pricing"]


# --- load ---------------------------------------------------------------------------------


@functools.cache
def _otlp_attr_types() -> tuple[Any, Any]:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    return AnyValue, KeyValue


def _kv(key: str, value: str | int) -> Any:
    """An OTLP ``KeyValue`` attribute."""
    AnyValue, KeyValue = _otlp_attr_types()
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _new_request(services: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """An empty export request with one resource (and scope) per service, as a Collector forwards
    them; returns it and each service's span list."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    scopes = {}
    for svc in services:
        rs = req.resource_spans.add()
        rs.resource.attributes.extend([
            _kv("service.name", svc), _kv("service.version", "1.4.2"), _kv("host.name", f"{svc}-7d9f-x2"),
            _kv("telemetry.sdk.language", "python"), _kv("deployment.environment", "prod")])
        ss = rs.scope_spans.add()
        ss.scope.name = f"latmap.bench.{svc}"
        scopes[svc] = ss.spans
    return req, scopes


def build_requests(total_spans: int, seed: int = 7) -> list[tuple[bytes, int]]:
    """(body, span count) pairs of ExportTraceServiceRequest protobuf, >= ``total_spans`` spans."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    rng = random.Random(seed)
    now = time.time_ns() - 3_600_000_000_000
    kv = _kv
    made = 0
    requests: list[tuple[bytes, int]] = []
    while made < total_spans:
        target = rng.randint(500, 2000)
        services = rng.sample(SERVICES, rng.randint(3, 5))
        req, scopes = _new_request(services)
        n = 0
        while n < target:
            # One request: a server span per service down a chain, each with a client call
            # and a db call under it; the last hop hands over through a topic (producer ->
            # consumer in a new trace, linked).
            trace = rng.getrandbits(128).to_bytes(16, "big")
            start = now + rng.randrange(3_600_000_000_000)
            dur = rng.randint(10_000_000, 25_000_000)
            parent = b""
            chain = rng.sample(services, len(services))
            for depth, svc in enumerate(chain):
                spans = scopes[svc]
                server_id = rng.getrandbits(64).to_bytes(8, "big")
                s = spans.add(trace_id=trace, span_id=server_id, parent_span_id=parent, name=f"GET /{svc}/v1",
                              kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=start, end_time_unix_nano=start + dur)
                s.attributes.extend([kv("http.request.method", "GET"), kv("http.route", f"/{svc}/v1"),
                                     kv("http.response.status_code", 200)])
                db = spans.add(trace_id=trace, span_id=rng.getrandbits(64).to_bytes(8, "big"), parent_span_id=server_id,
                               name="SELECT alerts", kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=start + 10_000,
                               end_time_unix_nano=start + 10_000 + dur // 4)
                db.attributes.extend([kv("db.system", "postgresql"),
                                      kv("db.statement", "SELECT * FROM alerts WHERE id=$1")])
                n += 2
                if depth + 1 == len(chain):
                    break
                # The call to the next service: its server span starts after a network hop.
                client_id = rng.getrandbits(64).to_bytes(8, "big")
                call_start, call_dur = start + dur // 3, dur // 2
                c = spans.add(trace_id=trace, span_id=client_id, parent_span_id=server_id, name="call downstream",
                              kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=call_start,
                              end_time_unix_nano=call_start + call_dur)
                c.attributes.append(kv("peer.service", chain[depth + 1]))
                net = rng.randint(20_000, 200_000)
                parent, start, dur = client_id, call_start + net, max(call_dur - 2 * net, 50_000)
                n += 1
            # The last service publishes to a topic; the first consumes it in a new trace, linked.
            producer_svc, consumer_svc = chain[-1], chain[0]
            prod_id = rng.getrandbits(64).to_bytes(8, "big")
            pstart = start + dur // 2
            p = scopes[producer_svc].add(trace_id=trace, span_id=prod_id, parent_span_id=server_id,
                                         name="alerts publish", kind=Span.SPAN_KIND_PRODUCER,
                                         start_time_unix_nano=pstart, end_time_unix_nano=pstart + 30_000)
            p.attributes.extend([kv("messaging.system", "kafka"), kv("messaging.destination.name", "alerts")])
            qstart = pstart + rng.randint(500_000, 5_000_000)
            q = scopes[consumer_svc].add(trace_id=rng.getrandbits(128).to_bytes(16, "big"),
                                         span_id=rng.getrandbits(64).to_bytes(8, "big"), name="alerts process",
                                         kind=Span.SPAN_KIND_CONSUMER, start_time_unix_nano=qstart,
                                         end_time_unix_nano=qstart + 3_000_000)
            q.attributes.extend([kv("messaging.system", "kafka"), kv("messaging.destination.name", "alerts")])
            q.links.add(trace_id=trace, span_id=prod_id)
            n += 2
        requests.append((req.SerializeToString(), n))
        made += n
    return requests


# --- the naive receiver -------------------------------------------------------------------


class _NaiveHandler(BaseHTTPRequestHandler):
    """MessageToDict, a dict per span, JSON lines, fsync per request: the obvious first version."""

    protocol_version = "HTTP/1.1"
    out: Any = None
    lock = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        from google.protobuf.json_format import MessageToDict
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        body = self.rfile.read(int(self.headers["Content-Length"]))
        doc = MessageToDict(ExportTraceServiceRequest.FromString(body))
        lines = []
        for rs in doc.get("resourceSpans", []):
            attrs = {a["key"]: a["value"] for a in rs.get("resource", {}).get("attributes", [])}
            service = attrs.get("service.name", {}).get("stringValue")
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    span_attrs = {a["key"]: next(iter(a["value"].values()), None) for a in span.get("attributes", [])}
                    links = span.get("links") or [{}]
                    row = {
                        "trace_id": base64.b64decode(span["traceId"]).hex(),
                        "span_id": base64.b64decode(span["spanId"]).hex(),
                        "parent_id": base64.b64decode(span.get("parentSpanId", "")).hex(),
                        "link_trace_id": base64.b64decode(links[0].get("traceId", "")).hex(),
                        "link_span_id": base64.b64decode(links[0].get("spanId", "")).hex(),
                        "start_ns": int(span["startTimeUnixNano"]),
                        "end_ns": int(span["endTimeUnixNano"]),
                        "kind": span.get("kind"),
                        "service": service,
                        "name": span.get("name"),
                        "destination": span_attrs.get("messaging.destination.name"),
                        "peer_service": span_attrs.get("peer.service"),
                        "db_system": span_attrs.get("db.system"),
                    }
                    lines.append(json.dumps(row))
        data = ("\n".join(lines) + "\n").encode()
        with self.lock:
            self.out.write(data)
            self.out.flush()
            os.fsync(self.out.fileno())
        resp = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(resp)))
        self.end_headers()
        self.wfile.write(resp)

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def serve_naive(directory: str, port: int) -> None:
    ThreadingHTTPServer.daemon_threads = True
    _NaiveHandler.out = open(Path(directory) / "spans.jsonl", "ab")  # noqa: SIM115 (lives as long as the server)
    ThreadingHTTPServer(("127.0.0.1", port), _NaiveHandler).serve_forever()


# --- running one receiver -----------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    receiver: str
    spans: int
    requests: int
    seconds: float
    spans_per_s: float
    peak_rss_mib: float
    failed_requests: int
    cpu_seconds: float  # user + system time of the receiver and its decode workers during the load
    other_cpu_seconds: float  # CPU time used by anything else on the machine meanwhile (client included)
    syncs: int | None  # fsyncs the receiver made (latmap: group commits, from its /metrics)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(kind: str, directory: str, port: int) -> subprocess.Popen[bytes]:
    if kind == "latmap":
        cmd = [sys.executable, "-m", "collectors.receiver", "--spool", directory, "--http", f"127.0.0.1:{port}",
               "--grpc", "off"]
    else:
        cmd = [sys.executable, __file__, "--serve-naive", directory, str(port)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/metrics")
            conn.getresponse().read()
            conn.close()
            return proc
        except OSError as err:
            if proc.poll() is not None:
                stderr = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"{kind} receiver exited: {stderr}") from err
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} receiver did not start")


def _tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return [pid, *(p for k in kids for p in _tree(k))]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its live descendants."""
    total = 0
    for p in _tree(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent busy since boot (all CPUs, from /proc/stat)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def _peak_rss(pid: int) -> int:
    """Peak RSS (VmHWM) of ``pid`` plus its children (the decode workers), in bytes."""
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            total += int(line.split()[1]) * 1024
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        total += _peak_rss(int(child))
    return total


def _syncs(port: int) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    for line in text.splitlines():
        if line.startswith("latmap_spool_syncs "):
            return int(float(line.split()[1]))
    return None


def run_load(port: int, requests: Sequence[tuple[bytes, int]], clients: int) -> tuple[float, int, int]:
    """Post every request with ``clients`` keep-alive connections; (seconds, spans acked, failures)."""
    lock = threading.Lock()
    state = {"next": 0, "spans": 0, "failed": 0}

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Content-Type": "application/x-protobuf"}
        while True:
            with lock:
                i = state["next"]
                state["next"] += 1
            if i >= len(requests):
                break
            body, n = requests[i]
            conn.request("POST", "/v1/traces", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            with lock:
                if resp.status == 200:
                    state["spans"] += n
                else:
                    state["failed"] += 1
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, state["spans"], state["failed"]


def measure(kind: str, requests: Sequence[tuple[bytes, int]], clients: int, directory: str) -> Result:
    port = _free_port()
    proc = _start(kind, directory, port)
    try:
        cpu0, busy0 = _cpu_seconds(proc.pid), _machine_busy()
        seconds, spans, failed = run_load(port, requests, clients)
        cpu = _cpu_seconds(proc.pid) - cpu0
        other = _machine_busy() - busy0 - cpu
        rss = _peak_rss(proc.pid)
        syncs = _syncs(port) if kind == "latmap" else len(requests)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return Result(kind, spans, len(requests), seconds, spans / seconds, rss / 2**20, failed, cpu, other, syncs)


def part_a(total_spans: int, clients: int, baseline_spans: int | None) -> tuple[list[Result], list[str]]:
    """Run both receivers; the results and the list of missed targets."""
    t0 = time.perf_counter()
    requests = build_requests(total_spans)
    sent = sum(n for _, n in requests)
    print(f"built {len(requests)} requests, {sent} spans, "
          f"{sum(len(b) for b, _ in requests) / 2**20:.0f} MiB of protobuf in {time.perf_counter() - t0:.1f} s",
          flush=True)
    naive_requests = requests
    if baseline_spans is not None:
        count, naive_requests = 0, []
        for r in requests:
            if count >= baseline_spans:
                break
            naive_requests.append(r)
            count += r[1]
    missed = []
    with tempfile.TemporaryDirectory(prefix="latmap-bench-") as tmp:
        spool = Path(tmp) / "spool"
        latmap = measure("latmap", requests, clients, str(spool))
        naive_dir = Path(tmp) / "naive"
        naive_dir.mkdir()
        naive = measure("naive", naive_requests, clients, str(naive_dir))
        from collectors.spool import scan_spool

        read = scan_spool(spool)
        if len(read.batch) != sent or read.duplicates or read.torn_records:
            missed.append(f"spool holds {len(read.batch)} spans ({read.duplicates} duplicates, "
                          f"{read.torn_records} torn), {sent} were sent")
    results = [latmap, naive]
    ratio = latmap.spans_per_s / naive.spans_per_s
    if latmap.failed_requests or naive.failed_requests:
        missed.append("some requests were not answered 200")
    if latmap.spans_per_s < TARGET_SPANS_PER_S:
        missed.append(f"latmap {latmap.spans_per_s:,.0f} spans/s < {TARGET_SPANS_PER_S:,}")
    if ratio < TARGET_RATIO:
        missed.append(f"ratio {ratio:.1f}x < {TARGET_RATIO}x")
    if latmap.peak_rss_mib * 2**20 >= TARGET_RSS:
        missed.append(f"latmap peak RSS {latmap.peak_rss_mib:.0f} MiB >= 1 GiB")
    return results, missed


def print_table(results: Sequence[Result]) -> None:
    base = results[-1].spans_per_s
    base_cpu = results[-1].spans / results[-1].cpu_seconds
    print(f"{'receiver':<8} {'spans':>10} {'requests':>8} {'fsyncs':>7} {'seconds':>8} {'spans/s':>10} "
          f"{'ratio':>6} {'CPU s':>6} {'spans/CPU-s':>11} {'ratio':>6} {'peak RSS':>10}")
    for r in results:
        per_cpu = r.spans / r.cpu_seconds
        print(f"{r.receiver:<8} {r.spans:>10,} {r.requests:>8} {r.syncs if r.syncs is not None else '?':>7} "
              f"{r.seconds:>8.2f} {r.spans_per_s:>10,.0f} {r.spans_per_s / base:>5.1f}x {r.cpu_seconds:>6.2f} "
              f"{per_cpu:>11,.0f} {per_cpu / base_cpu:>5.1f}x {r.peak_rss_mib:>6.0f} MiB")
    print("CPU s: user+system time of the receiver (and its decode workers) during the load; spans/CPU-s does not")
    print("move when other work shares the machine, spans/s does. Peak RSS: VmHWM of each receiver process, summed")
    for r in results:
        if r.other_cpu_seconds > 0.1 * r.seconds * (os.cpu_count() or 1):
            print(f"note: {r.other_cpu_seconds:.1f} CPU-s of other work (client included) ran during the {r.receiver} "
                  f"load ({r.seconds:.1f} s x {os.cpu_count()} CPUs): its spans/s is low by that much")


# --- part (b): the whole map over the spool -----------------------------------------------

#: Part (b)'s value stream, in flow order: gateway -> marketdata -> pricing by synchronous HTTP
#: calls, pricing -> alerting and alerting -> notification through Kafka topics.
FLOW = ("gateway", "marketdata", "pricing", "alerting", "notification")
PERCENTILES = (0.5, 0.99, 0.9999)
TARGET_MAP_SECONDS = 5.0
TARGET_MAP_RATIO = 20.0
QUICK_SPANS = 50_000
_HOUR_NS = 3_600_000_000_000
_MS = 1_000_000
_FRAME = struct.Struct("<I")


def _stream_trace(rng: random.Random, scopes: dict[str, Any], t0: int) -> int:
    """One quote through the stream, as the spans of one trace starting at ``t0``; returns how many.

    Every trace has gateway, marketdata and pricing (server spans, nested INTERNAL work, a
    database call, the calls down the chain); 70% go on through the ``quotes`` topic to
    alerting (consumer span whose parent is the producer, nested rule evaluation), and 60% of
    those raise an alert through the ``alerts`` topic to notification (parent and link to the
    producer). 0.5% of notifications come from a host whose clock is behind: negative waits.
    """
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    trace = rng.getrandbits(128).to_bytes(16, "big")
    made = 0

    def span(svc: str, kind: int, name: str, start: int, end: int, parent: bytes,
             attrs: Sequence[tuple[str, str | int]] = (), link: bytes = b"") -> bytes:
        nonlocal made
        sid = rng.getrandbits(64).to_bytes(8, "big")
        s = scopes[svc].add(trace_id=trace, span_id=sid, parent_span_id=parent, name=name, kind=kind,
                            start_time_unix_nano=start, end_time_unix_nano=end)
        s.attributes.extend(_kv(k, v) for k, v in attrs)
        if link:
            s.links.add(trace_id=trace, span_id=link)
        made += 1
        return sid

    def lognormal(median_ns: float, sigma: float) -> int:
        return int(rng.lognormvariate(math.log(median_ns), sigma))

    start, dur, parent = t0, lognormal(20 * _MS, 0.5) + 2 * _MS, b""
    server = b""
    for depth, svc in enumerate(FLOW[:3]):
        http = [("http.request.method", "GET"), ("http.route", f"/{svc}/v1"), ("http.response.status_code", 200)]
        server = span(svc, Span.SPAN_KIND_SERVER, f"GET /{svc}/v1", start, start + dur, parent, http)
        work, work_end = start + rng.randint(2_000, 50_000), start + dur // 4
        inner = span(svc, Span.SPAN_KIND_INTERNAL, f"{svc} handle", work, work_end, server)
        if svc == "marketdata":
            span(svc, Span.SPAN_KIND_INTERNAL, "decode quotes", work + 1_000, (work + work_end) // 2, inner)
            span(svc, Span.SPAN_KIND_CLIENT, "SELECT quotes", work_end, work_end + dur // 20, server,
                 [("db.system", "postgresql"), ("db.statement", "SELECT * FROM quotes WHERE id=$1")])
        if depth == 2:
            break
        call_start, call_dur = start + dur // 3, dur // 2
        client = span(svc, Span.SPAN_KIND_CLIENT, f"call {FLOW[depth + 1]}", call_start, call_start + call_dur,
                      server, [("peer.service", FLOW[depth + 1])])
        net = rng.randint(20_000, 400_000)
        parent, start, dur = client, call_start + net, max(call_dur - 2 * net, 200_000)
    if rng.random() >= 0.7:
        return made
    p0 = start + dur * 8 // 10
    quotes = [("messaging.system", "kafka"), ("messaging.destination.name", "quotes")]
    pub = span("pricing", Span.SPAN_KIND_PRODUCER, "quotes publish", p0, p0 + 30_000, server, quotes)
    c0 = p0 + 30_000 + lognormal(3 * _MS, 1.0)
    cdur = lognormal(2 * _MS, 0.6) + 100_000
    con = span("alerting", Span.SPAN_KIND_CONSUMER, "quotes process", c0, c0 + cdur, pub, quotes)
    e0, e1 = c0 + rng.randint(5_000, 50_000), c0 + cdur * 7 // 10
    rules = span("alerting", Span.SPAN_KIND_INTERNAL, "evaluate rules", e0, e1, con)
    span("alerting", Span.SPAN_KIND_INTERNAL, "match", e0 + 1_000, (e0 + e1) // 2, rules)
    if rng.random() >= 0.6:
        return made
    a0 = c0 + cdur * 8 // 10
    alerts = [("messaging.system", "kafka"), ("messaging.destination.name", "alerts")]
    pub = span("alerting", Span.SPAN_KIND_PRODUCER, "alerts publish", a0, a0 + 20_000, con, alerts)
    wait = lognormal(8 * _MS, 0.8) if rng.random() >= 0.005 else -rng.randint(10_000, 2 * _MS)
    n0, ndur = a0 + 20_000 + wait, lognormal(4 * _MS, 0.5) + 500_000
    send = span("notification", Span.SPAN_KIND_CONSUMER, "alerts send", n0, n0 + ndur, pub, alerts, link=pub)
    span("notification", Span.SPAN_KIND_CLIENT, "POST /v1/send", n0 + rng.randint(10_000, 100_000),
         n0 + ndur * 9 // 10, send, [("peer.service", "smtp-relay")])
    return made


def build_stream_requests(total_spans: int, seed: int = 11,
                          end_ns: int | None = None) -> tuple[list[tuple[bytes, int]], int]:
    """Export requests of >= ``total_spans`` distinct spans of :data:`FLOW` traces, and that count.

    Built like part (a)'s (500-2000 spans a request, one resource per service, the same
    attributes), but the traces follow one value stream so that they can be mapped. Traces
    start in time order over the hour before ``end_ns`` (default: now) minus one hour, as a
    Collector forwards them; one request in 200 is sent twice (a retried export), so the map
    has duplicates to drop.
    """
    rng = random.Random(seed)
    end = (time.time_ns() if end_ns is None else end_ns) - _HOUR_NS
    step = _HOUR_NS * 14 // max(total_spans, 1)  # ~14 spans a trace: the traces fill the hour
    t = end - _HOUR_NS
    made = 0
    requests: list[tuple[bytes, int]] = []
    while made < total_spans:
        target = rng.randint(500, 2000)
        req, scopes = _new_request(FLOW)
        n = 0
        while n < target:
            n += _stream_trace(rng, scopes, t)
            t += rng.randint(0, 2 * step)
        body = req.SerializeToString()
        requests.append((body, n))
        if len(requests) % 200 == 3:  # the 3rd, the 203rd ... request is retried
            requests.append((body, n))
        made += n
    return requests, made


def write_spool(requests: Sequence[tuple[bytes, int]], directory: Path) -> tuple[int, int]:
    """Send every request through the receiver's export path into a spool at ``directory``,
    then compact it all to Parquet; returns (Parquet files, their bytes).

    :meth:`Receiver.export` is what ``latmap serve`` runs for each OTLP request (decode, append,
    fsync); only the HTTP framing is left out, and decoding runs in this process (the workers
    run the same function, and take seconds to start). Segments are cut at
    ~1/60 of the data, as ``segment_age=60s`` cuts an hour of traffic in production, so the
    map reads a realistic number of Parquet files.
    """
    from collectors.receiver import Receiver
    from collectors.spool import Spool, SpoolLimits

    segment = max(1 << 18, sum(len(b) for b, _ in requests) // 120)  # columns ~ half the protobuf
    with Spool(directory, SpoolLimits(segment_bytes=segment), compact=False) as spool:
        with Receiver(spool, http=None, grpc=None, decode_workers=0) as rx:
            outcomes = [rx.export(body, "protobuf", "bench") for body, _ in requests]
        spool.rotate()
        spool.compact()
    rejected = sum(o.rejected_spans for o in outcomes)
    if rejected:
        raise RuntimeError(f"the receiver rejected {rejected} spans: {outcomes[0].rejected}")
    leftover = list((directory / "_wal").glob("*.wal"))
    if leftover:
        raise RuntimeError(f"{len(leftover)} segments were not compacted")
    files = list(directory.glob("date=*/hour=*/*.parquet"))
    return len(files), sum(f.stat().st_size for f in files)


STREAM_SPEC = """\
name: quotes-bench
window: 3h
percentiles: [{percentiles}]
sources:
  spans: {{kind: traces, path: "{spool}"}}
stages:
{stages}
"""


def write_stream_spec(path: Path, spool: Path) -> None:
    stages = "\n".join(f"  - {{name: {s}, owner: {s}-team, traces: {{source: spans, service: {s}}}}}" for s in FLOW)
    path.write_text(STREAM_SPEC.format(percentiles=", ".join(f"{100 * q:g}" for q in PERCENTILES), spool=spool,
                                       stages=stages))


# --- the naive map ------------------------------------------------------------------------


_merge = merge_intervals


def _overlap(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> int:
    """Nanoseconds covered by both merged interval lists."""
    i = j = total = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def _summary(values: list[float], percentiles: Sequence[float]) -> dict[str, Any] | None:
    if not values:
        return None
    cuts = statistics.quantiles(values, n=10_000, method="inclusive") if len(values) > 1 else [values[0]] * 9999
    return {"count": len(values), "mean": sum(values) / len(values), "negative": sum(v < 0 for v in values),
            "quantiles": {str(q): cuts[round(q * 10_000) - 1] for q in percentiles}}


def naive_map(requests_path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The obvious first version of the map: MessageToDict, a dict per span, Python loops.

    The same definitions as :mod:`mapper.traces` (written out independently, per trace):
    a stage's process time is the union of its spans minus the time any later stage's span
    covers; its wait runs from the hand-over (the start of an upstream CLIENT parent, the end
    of another upstream parent, found by parent id or else the first link; without one, the
    end of the upstream stage's last span) to its first span's start; the hop is wait + process;
    the lead time runs from the first stage's start to the last one's end, in traces that have
    every stage. Spans count when they start in ``(start_ns, end_ns]``; repeats are dropped.
    """
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    stage_of = {svc: i for i, svc in enumerate(config["services"])}
    upstream: list[int | None] = config["upstream"]
    start_ns, end_ns = config["start_ns"], config["end_ns"]
    spans: dict[tuple[str, str], dict[str, Any]] = {}
    duplicates = 0
    data = requests_path.read_bytes()
    off = 0
    while off < len(data):
        (size,) = _FRAME.unpack_from(data, off)
        doc = MessageToDict(ExportTraceServiceRequest.FromString(data[off + 4:off + 4 + size]))
        off += 4 + size
        for rs in doc.get("resourceSpans", []):
            attrs = {a["key"]: a["value"] for a in rs.get("resource", {}).get("attributes", [])}
            service = attrs.get("service.name", {}).get("stringValue")
            for ss in rs.get("scopeSpans", []):
                for sp in ss.get("spans", []):
                    links = sp.get("links") or [{}]
                    row = {
                        "trace": base64.b64decode(sp["traceId"]).hex(),
                        "span_id": base64.b64decode(sp["spanId"]).hex(),
                        "parent": base64.b64decode(sp.get("parentSpanId", "")).hex(),
                        "link": base64.b64decode(links[0].get("spanId", "")).hex(),
                        "start": int(sp["startTimeUnixNano"]),
                        "end": int(sp["endTimeUnixNano"]),
                        "kind": sp.get("kind", "SPAN_KIND_UNSPECIFIED"),
                        "service": service,
                        "stage": stage_of.get(service),
                    }
                    if not start_ns < row["start"] <= end_ns:
                        continue
                    key = (row["trace"], row["span_id"])
                    if key in spans:
                        duplicates += 1
                        continue
                    spans[key] = row
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in spans.values():
        if row["stage"] is not None:
            traces[row["trace"]].append(row)
    n = len(stage_of)
    parts: dict[str, list[float]] = defaultdict(list)
    lead: list[float] = []
    ties = 0
    for rows in traces.values():
        by_stage: dict[int, list[dict[str, Any]]] = defaultdict(list)
        by_id: dict[str, dict[str, Any]] = {}
        for row in rows:
            by_stage[row["stage"]].append(row)
            by_id.setdefault(row["span_id"], row)
        for k, own in by_stage.items():
            mine = _merge([(r["start"], r["end"]) for r in own])
            later = _merge([(r["start"], r["end"]) for j, rs in by_stage.items() if j > k for r in rs])
            process = (sum(e - s for s, e in mine) - _overlap(mine, later)) * 1e-9
            first = min(own, key=lambda r: r["start"])
            ties += sum(r["start"] == first["start"] for r in own) - 1
            up = upstream[k]
            handed = by_id.get(first["parent"] or first["link"])
            if up is not None and handed is not None and handed["stage"] == up:
                hand = handed["start"] if handed["kind"] == "SPAN_KIND_CLIENT" else handed["end"]
            elif up is not None and up in by_stage:
                hand = max(r["end"] for r in by_stage[up])
            else:
                hand = None
            name = config["services"][k]
            parts[f"{name}/process"].append(process)
            if hand is None:
                parts[f"{name}/total"].append(process)
            else:
                wait = (first["start"] - hand) * 1e-9
                parts[f"{name}/wait"].append(wait)
                parts[f"{name}/total"].append(wait + process)
        if len(by_stage) == n:
            lead.append((max(r["end"] for r in rows) - min(r["start"] for r in rows)) * 1e-9)
    qs = config["percentiles"]
    return {"spans": len(spans), "duplicates": duplicates, "traces": len(traces), "first_span_ties": ties,
            "parts": {k: _summary(v, qs) for k, v in sorted(parts.items())}, "lead": _summary(lead, qs)}


# --- measuring and comparing --------------------------------------------------------------


@dataclass(frozen=True)
class MapRun:
    run: str
    seconds: float  # wall time of the whole process, interpreter start included
    peak_rss_mib: float  # the process's own peak RSS (ru_maxrss from wait4)
    exit_code: int
    cpu_seconds: float  # user + system time of the process (all its threads): steady when others share the CPUs


@dataclass(frozen=True)
class CrossCheck:
    against: str  # "report" (report.json of the CLI run) or "library" (the same numbers unrounded)
    what: str  # "pricing wait", "hop marketdata->pricing", "end to end"
    stat: str  # "present", "count", "mean" or a percentile label ("p99")
    latmap: float | None
    naive: float | None
    ok: bool
    note: str = ""


@dataclass(frozen=True)
class PartB:
    spans: int
    requests: int
    traces: int
    parquet_files: int
    parquet_mib: float
    latmap: MapRun
    naive: MapRun
    checks: tuple[CrossCheck, ...]
    missed: tuple[str, ...]  # targets missed
    failed: tuple[str, ...]  # the run itself failed: a process exited badly, or the numbers disagree

    @property
    def ratio(self) -> float:
        return self.naive.seconds / self.latmap.seconds


def run_measured(run: str, cmd: Sequence[str], out: Path) -> MapRun:
    """Run ``cmd`` with stdout to ``out`` (stderr next to it); its wall time and own peak RSS."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with open(out, "wb") as stdout, open(out.with_suffix(".stderr"), "wb") as stderr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return MapRun(run, seconds, usage.ru_maxrss / 1024, proc.returncode, usage.ru_utime + usage.ru_stime)


def _num(x: float) -> float:
    """As report.json writes numbers: 9 significant digits."""
    return float(f"{x:.9g}")


def _as_reported(got: float, want: float) -> bool:
    """``got`` (from report.json) is ``want`` written to 9 significant digits.

    An interpolated percentile of integer nanoseconds often sits exactly half-way between two
    9-digit numbers, and there one ulp of difference in how the interpolation is computed
    (numpy's ``a + g*(b-a)`` against ``statistics.quantiles``' weighted sum) decides which way
    it rounds; so the rounding of a neighbour within 1e-12 counts too.
    """
    return got in (_num(want), _num(want * (1 - 1e-12)), _num(want * (1 + 1e-12)))


def _same(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def library_numbers(spec_path: Path, until: float, window: float) -> dict[str, Any]:
    """latmap's numbers before report.json rounds them: the library call the CLI makes
    (:func:`mapper.pipeline.build_map`, same spec and window), in report.json's shape."""
    from mapper.distribution import Distribution, percentile_label
    from mapper.model import MeasurementResult
    from mapper.pipeline import build_map, window_for
    from mapper.spec import load_spec

    spec = load_spec(spec_path)
    lm = build_map(spec, window_for(spec, window, until))

    def latency(d: Distribution | None) -> dict[str, Any] | None:
        if d is None:
            return None
        out: dict[str, Any] = {"count": d.count, "mean": d.mean}
        for q in spec.percentiles:
            e = d.quantile(q)
            out[percentile_label(q)] = {"value": e.value, "note": e.note}
        return out

    def part(r: MeasurementResult | None) -> dict[str, Any] | None:
        return None if r is None else latency(r.distribution)

    return {"stages": [{"name": s.stage.name, "wait": part(s.wait), "process": part(s.process),
                        "total": latency(s.total)} for s in lm.stages],
            "hops": [{"from": h.source, "to": h.target, "latency": latency(h.latency)} for h in lm.hops],
            "end_to_end": latency(lm.end_to_end)}


def cross_check(latmap: dict[str, Any], naive: dict[str, Any], against: str) -> list[CrossCheck]:
    """Every count, mean and percentile of latmap's numbers against the naive ones.

    ``against="report"``: ``latmap`` is report.json, whose numbers have 9 significant digits
    (see :func:`_as_reported`); ``"library"``: the unrounded numbers of :func:`library_numbers`,
    which must agree within 1e-9 (relative). A percentile latmap declines ("too few samples")
    must be one the naive run has too few samples for as well.
    """
    from mapper.distribution import min_count, percentile_label

    agree = _as_reported if against == "report" else _same
    out: list[CrossCheck] = []

    def cells(what: str, lat: dict[str, Any] | None, nv: dict[str, Any] | None) -> None:
        if lat is None or nv is None:
            out.append(CrossCheck(against, what, "present", None if lat is None else lat["count"],
                                  None if nv is None else nv["count"], lat is None and nv is None))
            return
        out.append(CrossCheck(against, what, "count", lat["count"], nv["count"], lat["count"] == nv["count"]))
        out.append(CrossCheck(against, what, "mean", lat["mean"], nv["mean"], agree(lat["mean"], nv["mean"])))
        for q in PERCENTILES:
            label = percentile_label(q)
            got, want = lat[label]["value"], nv["quantiles"][str(q)]
            if got is None:
                few = nv["count"] < min_count(q)
                out.append(CrossCheck(against, what, label, None, want, few, "both: too few samples" if few else
                                      f"latmap gives none: {lat[label]['note']}"))
            else:
                out.append(CrossCheck(against, what, label, got, want, agree(got, want)))

    for stage in latmap["stages"]:
        for part in ("wait", "process", "total"):
            cells(f"{stage['name']} {part}", stage[part], naive["parts"].get(f"{stage['name']}/{part}"))
    for hop in latmap["hops"]:
        cells(f"hop {hop['from']}->{hop['to']}", hop["latency"], naive["parts"].get(f"{hop['to']}/total"))
    cells("end to end", latmap["end_to_end"], naive["lead"])
    return out


def part_b(total_spans: int, workdir: Path | None = None) -> PartB:
    """Build the spool, then time ``latmap map`` and the naive map over it, each in its own process."""
    with tempfile.TemporaryDirectory(prefix="latmap-bench-map-") as tmp:
        work = workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        end_ns = time.time_ns()
        requests, spans = build_stream_requests(total_spans, end_ns=end_ns)
        proto = sum(len(b) for b, _ in requests)
        with open(work / "requests.bin", "wb") as f:
            for body, _ in requests:
                f.write(_FRAME.pack(len(body)) + body)
        t1 = time.perf_counter()
        spool = work / "spool"
        files, size = write_spool(requests, spool)
        n_requests = len(requests)
        del requests
        print(f"built {n_requests} requests, {spans:,} distinct spans, {proto / 2**20:.0f} MiB of protobuf in "
              f"{t1 - t0:.1f} s; spooled and compacted into {files} Parquet files ({size / 2**20:.0f} MiB) "
              f"in {time.perf_counter() - t1:.1f} s", flush=True)
        spec = work / "stream.yaml"
        write_stream_spec(spec, spool)
        until = end_ns // 1_000_000_000 + 60
        window = 3 * 3600
        config = {"services": list(FLOW), "upstream": [None, *range(len(FLOW) - 1)],
                  "start_ns": int((float(until) - float(window)) * 1e9), "end_ns": int(float(until) * 1e9),
                  "percentiles": list(PERCENTILES)}
        (work / "naive.json").write_text(json.dumps(config))
        latmap = run_measured("latmap", [sys.executable, "-m", "mapper", "map", "-c", str(spec), "--until",
                                         str(until), "--window", f"{window}s", "--format", "json", "--no-progress"],
                              work / "latmap-report.json")
        naive = run_measured("naive", [sys.executable, __file__, "--naive-map", str(work / "requests.bin"),
                                       str(work / "naive.json")], work / "naive-result.json")
        failed = []
        for r in (latmap, naive):
            if r.exit_code != 0:
                err = (work / f"{r.run}-{'report' if r.run == 'latmap' else 'result'}.stderr").read_text()
                failed.append(f"{r.run} exited {r.exit_code}: {err.strip()[-2000:]}")
        checks: list[CrossCheck] = []
        traces = 0
        if not failed:
            report = json.loads((work / "latmap-report.json").read_text())
            result = json.loads((work / "naive-result.json").read_text())
            traces = result["traces"]
            checks = cross_check(report, result, "report")
            checks += cross_check(library_numbers(spec, float(until), float(window)), result, "library")
            if result["spans"] != spans:
                failed.append(f"the naive map kept {result['spans']:,} spans, {spans:,} were generated")
            if result["first_span_ties"]:
                failed.append(f"{result['first_span_ties']} stages start with two spans at once: the first is "
                              "ambiguous, so waits may legitimately differ")
            failed += [f"latmap ({c.against}) and the naive map disagree on {c.what} {c.stat}: {c.latmap!r} vs "
                       f"{c.naive!r} {c.note}" for c in checks if not c.ok]
    missed = []
    if latmap.seconds >= TARGET_MAP_SECONDS:
        missed.append(f"latmap map {latmap.seconds:.2f} s >= {TARGET_MAP_SECONDS} s")
    if naive.seconds / latmap.seconds < TARGET_MAP_RATIO:
        missed.append(f"ratio {naive.seconds / latmap.seconds:.1f}x < {TARGET_MAP_RATIO}x")
    if latmap.peak_rss_mib * 2**20 >= TARGET_RSS:
        missed.append(f"latmap map peak RSS {latmap.peak_rss_mib:.0f} MiB >= 1 GiB")
    return PartB(spans, n_requests, traces, files, size / 2**20, latmap, naive, tuple(checks), tuple(missed),
                 tuple(failed))


def print_table_b(r: PartB) -> None:
    print(f"{'run':<8} {'spans':>10} {'traces':>8} {'seconds':>8} {'ratio':>7} {'CPU s':>7} {'ratio':>7} "
          f"{'peak RSS':>10} {'exit':>4}")
    for m in (r.latmap, r.naive):
        print(f"{m.run:<8} {r.spans:>10,} {r.traces:>8,} {m.seconds:>8.2f} {r.naive.seconds / m.seconds:>6.1f}x "
              f"{m.cpu_seconds:>7.2f} {r.naive.cpu_seconds / m.cpu_seconds:>6.1f}x {m.peak_rss_mib:>6.0f} MiB "
              f"{m.exit_code:>4}")
    print("seconds: wall time of each process, interpreter start and imports included; CPU s: its user + system "
          "time\n(all threads; does not move when other work shares the machine); peak RSS: its own ru_maxrss")
    targets = [(f"latmap map < {TARGET_MAP_SECONDS:g} s", r.latmap.seconds < TARGET_MAP_SECONDS),
               (f">= {TARGET_MAP_RATIO:g}x the naive map", r.ratio >= TARGET_MAP_RATIO),
               ("latmap peak RSS < 1 GiB", r.latmap.peak_rss_mib * 2**20 < TARGET_RSS)]
    print("targets: " + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in targets))
    cells = {(c.against, c.what, c.stat): c for c in r.checks}
    print(f"{'per hop (s), report.json':<32} {'latmap p50':>14} {'naive p50':>14} {'latmap p99':>14} {'naive p99':>14}")
    for what in dict.fromkeys(c.what for c in r.checks):
        p50, p99 = cells.get(("report", what, "p50")), cells.get(("report", what, "p99"))
        if p50 is None or p99 is None or what.startswith("hop "):
            continue  # no such part (a first stage's wait); hops repeat the stage totals
        name = what.replace(" total", " hop (wait+process)")
        print(f"{name:<32} {p50.latmap or 0:>14.9g} {p50.naive or 0:>14.9g} {p99.latmap or 0:>14.9g} "
              f"{p99.naive or 0:>14.9g}")
    for against, how in (("report", "at report.json's 9 significant digits"), ("library", "within 1e-9, unrounded")):
        mine = [c for c in r.checks if c.against == against]
        pct = [c for c in mine if c.stat.startswith("p") and c.stat != "present" and c.latmap is not None]
        rel = max((abs(c.latmap - c.naive) / abs(c.naive) for c in pct if c.latmap is not None and c.naive),
                  default=0.0)
        print(f"cross-check ({against}): {len(mine)} cells (counts, means, percentiles of every wait, process, hop "
              f"and the lead time; {len(pct)} percentiles with a value), {sum(not c.ok for c in mine)} disagree "
              f"{how}; largest relative difference of a percentile {rel:.1e}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--part", choices=("a", "b", "all"), default="all")
    ap.add_argument("--spans", type=int, default=None, help=f"default 1,000,000 ({QUICK_SPANS:,} with --quick)")
    ap.add_argument("--quick", action="store_true", help="a small run (what the test runs)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--baseline-spans", type=int, default=None)
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--serve-naive", nargs=2, metavar=("DIR", "PORT"), help=argparse.SUPPRESS)
    ap.add_argument("--naive-map", nargs=2, metavar=("REQUESTS", "CONFIG"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_naive:
        serve_naive(args.serve_naive[0], int(args.serve_naive[1]))
        return 0
    if args.naive_map:
        result = naive_map(Path(args.naive_map[0]), json.loads(Path(args.naive_map[1]).read_text()))
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    spans = args.spans or (QUICK_SPANS if args.quick else 1_000_000)
    doc: dict[str, Any] = {}
    status = 0
    if args.part in ("a", "all"):
        print(f"part (a): receive-to-durable, {os.cpu_count()} CPUs, {args.clients} client connections", flush=True)
        results, missed = part_a(spans, args.clients, args.baseline_spans)
        print_table(results)
        doc.update(part_a=[asdict(r) for r in results], missed=missed)
        for m in missed:
            print(f"target missed: {m}")
        status = 1 if missed else 0
    if args.part in ("b", "all"):
        print(f"part (b): `latmap map` over the compacted spool against a naive map, {os.cpu_count()} CPUs",
              flush=True)
        b = part_b(spans)
        print_table_b(b)
        doc["part_b"] = {**asdict(b), "ratio": b.ratio}
        for m in b.missed:
            print(f"target missed: {m}")
        for f in b.failed:
            print(f"FAILED: {f}")
        status = status or (1 if b.failed else 0)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
