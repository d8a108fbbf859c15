"""Trace ingest and map: ``latmap serve`` and ``latmap map`` over a million spans, against naive versions.

Part (a), receive-to-durable throughput. The client builds >= 1,000,000 spans up front as
realistic OTLP/protobuf export requests (what a Collector forwards: 500-2000 spans per
request, 3-5 services each with its own resource, HTTP server/client spans, database calls,
and asynchronous PRODUCER -> CONSUMER hand-overs linked across traces), then posts them over
loopback with several concurrent keep-alive connections. Each receiver runs in its own
subprocess, so the client's CPU is not counted in its process; the clock runs from the
first request sent to the last 200 received, and a 200 means "fsynced" for both receivers:

* ``latmap``: :mod:`collectors.spool.receiver` as ``latmap serve`` runs it (decode to columns,
  Arrow IPC records, group commit), OTLP/HTTP on uvicorn + httptools (:mod:`collectors.spool.http_app`);
* ``stdlib``: the same receiver behind the stdlib ``ThreadingHTTPServer`` handler it had before
  (``benchmarks/stdlib_receiver.py``, benchmark-only): the HTTP stack's cost or gain, measured
  against the new one in the same run. The two run alternately ``--rounds`` times (default 2)
  and each one's best round is reported, so load drift on a shared machine hits both alike;
* ``naive``: the same stdlib HTTP server decoding with ``MessageToDict``, one Python dict per
  span, one JSON line per span, and one fsync per request.

``--load sdk`` sends SDK-shaped requests instead (1,000 spans from one resource with ten
resource attributes, HTTP and messaging attributes, exception events). Beside each receiver the
*decode floor* is printed: the spans/s of the protobuf C backend (upb) parsing the same requests
into the full OTLP message in one process, and each receiver's ratio to it (target: latmap >=
0.3x). ``--before DIR`` also runs the receiver of another checkout (``git archive REV | tar -x
-C DIR``) in the same rounds, and prints latmap/before per second and per CPU-second.

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
means something only if both computed the same, and it cross-checks :mod:`mapper.analysis.traces`. Targets (from
the issue): under 5 s, >= 20x the naive map, peak RSS < 1 GiB; they are printed, met or not.
The exit code is 1 only when the run itself failed (a process exited badly, the numbers
disagree), so that ``tests/benchmarks/test_benchmark_trace_map.py`` decides about the quick run.

Usage::

    python benchmarks/trace_ingest.py [--part a|b|all] [--quick] [--spans N] [--clients K]
                                      [--baseline-spans N] [--rounds R] [--json PATH]
    python benchmarks/trace_ingest.py --stream [--quick] [--spans N]   # live_ingest.py: serve --stream's cost

``--quick`` runs 50,000 spans. ``--baseline-spans`` sends only the first requests to the naive
receiver of part (a) (its rate is what is compared; the default sends it everything).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from live_ingest import part_stream, print_runs
from naive_map import naive_map
from otlp_load import (  # puts this checkout on sys.path: the receivers run its code
    ROOT,
    TARGET_RSS,
    build_requests,
    build_sdk_requests,
    cpu_seconds,
    decode_floor,
    free_port,
    machine_busy,
    peak_rss,
    run_load,
)
from trace_map import QUICK_SPANS, part_b, print_table_b

from mapper.demo.localprom import stop_process

TARGET_SPANS_PER_S = 200_000
TARGET_RATIO = 8.0
#: Receive-to-fsync against the single-process decode floor (issue 29).
TARGET_FLOOR_RATIO = 0.3


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


#: ``--before DIR``: a checkout whose receiver runs as ``before`` (the same code before a change).
BEFORE: dict[str, str] = {}


def _start(kind: str, directory: str, port: int) -> subprocess.Popen[bytes]:
    root = Path(BEFORE["dir"]) if kind == "before" else ROOT
    if kind in ("latmap", "before"):
        cmd = [sys.executable, "-m", "mapper", "serve", "--spool", directory, "--http", f"127.0.0.1:{port}",
               "--grpc", "off"]
    elif kind == "stdlib":
        cmd = [sys.executable, str(Path(__file__).with_name("stdlib_receiver.py")), directory, str(port)]
    else:
        cmd = [sys.executable, __file__, "--serve-naive", directory, str(port)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, cwd=root, env=env)
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


def _syncs(port: int) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    for line in text.splitlines():
        if line.startswith("latmap_spool_syncs "):
            return int(float(line.split()[1]))
    return None


def measure(kind: str, requests: Sequence[tuple[bytes, int]], clients: int, directory: str) -> Result:
    port = free_port()
    proc = _start(kind, directory, port)
    try:
        cpu0, busy0 = cpu_seconds(proc.pid), machine_busy()
        seconds, spans, failed = run_load(port, requests, clients)
        cpu = cpu_seconds(proc.pid) - cpu0
        other = machine_busy() - busy0 - cpu
        rss = peak_rss(proc.pid)
        syncs = _syncs(port) if kind != "naive" else len(requests)
    finally:
        stop_process(proc, timeout=30)
    return Result(kind, spans, len(requests), seconds, spans / seconds, rss / 2**20, failed, cpu, other, syncs)


def part_a(total_spans: int, clients: int, baseline_spans: int | None,
           rounds: int = 2, load: str = "chain", per_request: int = 1000) -> tuple[list[Result], list[str], float]:
    """Run the receivers; the results (latmap, stdlib, naive; ``before`` too with ``--before``),
    the list of missed targets and the decode floor (spans/s)."""
    t0 = time.perf_counter()
    requests = (build_sdk_requests(total_spans, per_request=per_request) if load == "sdk"
                else build_requests(total_spans))
    sent = sum(n for _, n in requests)
    print(f"built {len(requests)} {load} requests, {sent} spans, "
          f"{sum(len(b) for b, _ in requests) / 2**20:.0f} MiB of protobuf in {time.perf_counter() - t0:.1f} s",
          flush=True)
    floor = decode_floor(requests)
    print(f"decode floor: {floor:,.0f} spans/s (upb parsing the same requests, one process)", flush=True)
    naive_requests = requests
    if baseline_spans is not None:
        count, naive_requests = 0, []
        for r in requests:
            if count >= baseline_spans:
                break
            naive_requests.append(r)
            count += r[1]
    missed = []
    best: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="latmap-bench-") as tmp:
        from collectors.spool.store import scan_spool

        kinds = ("latmap", "stdlib", *(("before",) if BEFORE else ()))
        for i in range(rounds):
            for kind in kinds if i % 2 == 0 else kinds[::-1]:
                spool = Path(tmp) / f"{kind}-{i}"
                r = measure(kind, requests, clients, str(spool))
                print(f"  round {i + 1} {kind}: {r.spans_per_s:,.0f} spans/s", flush=True)
                if kind not in best or r.spans_per_s > best[kind].spans_per_s:
                    best[kind] = r
                read = scan_spool(spool)
                if len(read.batch) != sent or read.duplicates or read.torn_records:
                    missed.append(f"{kind} spool holds {len(read.batch)} spans ({read.duplicates} duplicates, "
                                  f"{read.torn_records} torn), {sent} were sent")
        naive_dir = Path(tmp) / "naive"
        naive_dir.mkdir()
        naive = measure("naive", naive_requests, clients, str(naive_dir))
    latmap, stdlib = best["latmap"], best["stdlib"]
    results = [latmap, stdlib, *([best["before"]] if "before" in best else []), naive]
    ratio = latmap.spans_per_s / naive.spans_per_s
    if any(r.failed_requests for r in results):
        missed.append("some requests were not answered 200")
    if latmap.spans_per_s < TARGET_SPANS_PER_S:
        missed.append(f"latmap {latmap.spans_per_s:,.0f} spans/s < {TARGET_SPANS_PER_S:,}")
    if ratio < TARGET_RATIO:
        missed.append(f"ratio {ratio:.1f}x < {TARGET_RATIO}x")
    if latmap.spans_per_s < stdlib.spans_per_s:
        missed.append(f"uvicorn stack {latmap.spans_per_s:,.0f} spans/s < stdlib stack {stdlib.spans_per_s:,.0f}")
    if latmap.peak_rss_mib * 2**20 >= TARGET_RSS:
        missed.append(f"latmap peak RSS {latmap.peak_rss_mib:.0f} MiB >= 1 GiB")
    if latmap.spans_per_s < TARGET_FLOOR_RATIO * floor:
        missed.append(f"latmap {latmap.spans_per_s:,.0f} spans/s < {TARGET_FLOOR_RATIO}x the decode floor "
                      f"{floor:,.0f}")
    return results, missed, floor


def print_floor(results: Sequence[Result], floor: float) -> None:
    """Each receiver's rate beside the decode floor, and the ratio."""
    for r in results:
        print(f"{r.receiver:<8} {r.spans_per_s:>10,.0f} spans/s = {r.spans_per_s / floor:.2f}x the decode floor "
              f"({floor:,.0f} spans/s)")
    by_name = {r.receiver: r for r in results}
    if "before" in by_name:
        new, old = by_name["latmap"], by_name["before"]
        print(f"latmap / before ({BEFORE['dir']}): {new.spans_per_s / old.spans_per_s:.2f}x spans/s, "
              f"{(new.spans / new.cpu_seconds) / (old.spans / old.cpu_seconds):.2f}x per CPU-s")


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
    by_name = {r.receiver: r for r in results}
    if "latmap" in by_name and "stdlib" in by_name:
        new, old = by_name["latmap"], by_name["stdlib"]
        print(f"HTTP stack: uvicorn+httptools {new.spans_per_s:,.0f} spans/s, stdlib ThreadingHTTPServer "
              f"{old.spans_per_s:,.0f} spans/s: {new.spans_per_s / old.spans_per_s:.2f}x "
              f"(per CPU-s {(new.spans / new.cpu_seconds) / (old.spans / old.cpu_seconds):.2f}x)")
    print("CPU s: user+system time of the receiver (and its decode workers) during the load; spans/CPU-s does not")
    print("move when other work shares the machine, spans/s does. Peak RSS: VmHWM of each receiver process, summed")
    for r in results:
        if r.other_cpu_seconds > 0.1 * r.seconds * (os.cpu_count() or 1):
            print(f"note: {r.other_cpu_seconds:.1f} CPU-s of other work (client included) ran during the {r.receiver} "
                  f"load ({r.seconds:.1f} s x {os.cpu_count()} CPUs): its spans/s is low by that much")


def main(argv: Sequence[str] | None = None) -> int:

    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--part", choices=("a", "b", "all"), default="all")
    ap.add_argument("--spans", type=int, default=None, help=f"default 1,000,000 ({QUICK_SPANS:,} with --quick)")
    ap.add_argument("--quick", action="store_true", help="a small run (what the test runs)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--baseline-spans", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=2, help="alternate latmap/stdlib receivers this many times")
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--load", choices=("chain", "sdk"), default="chain",
                    help="part (a)'s requests: the value-stream chain, or SDK-shaped (1,000-span requests, ten "
                         "resource attributes, HTTP and messaging attributes, exception events)")
    ap.add_argument("--per-request", type=int, default=1000,
                    help="spans per request of --load sdk (default 1000; SDKs export up to 512 a batch, "
                         "the Collector's batch processor 8192)")
    ap.add_argument("--before", metavar="DIR",
                    help="part (a): also run the receiver of this checkout (e.g. `git archive REV`), as 'before'")
    ap.add_argument("--stream", action="store_true",
                    help="instead: receive-to-durable with and without `latmap serve --stream` (live_ingest.py)")
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
    if args.stream:

        print(f"live value stream: receive-to-durable with and without --stream, {os.cpu_count()} CPUs", flush=True)
        runs, missed = part_stream(spans, args.clients)
        print_runs(runs)
        for m in missed:
            print(f"target missed: {m}")
        if args.json:
            Path(args.json).write_text(json.dumps({"stream": [asdict(r) for r in runs], "missed": missed},
                                                  indent=2, sort_keys=True) + "\n")
        return 1 if missed else 0
    doc: dict[str, Any] = {}
    status = 0
    if args.part in ("a", "all"):
        print(f"part (a): receive-to-durable, {os.cpu_count()} CPUs, {args.clients} client connections", flush=True)
        if args.before:
            BEFORE["dir"] = str(Path(args.before).resolve())
        results, missed, floor = part_a(spans, args.clients, args.baseline_spans, args.rounds, args.load,
                                        args.per_request)
        print_table(results)
        print_floor(results, floor)
        doc.update(part_a=[asdict(r) for r in results], missed=missed, decode_floor=floor)
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
