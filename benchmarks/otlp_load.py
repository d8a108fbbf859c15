"""The OTLP load the trace benchmarks share: realistic export requests (3-5 services a trace,
calls, database spans, messaging hand-overs with span links), keep-alive clients that post them,
and what a receiver process used (CPU seconds, peak RSS) read from /proc.

``trace_ingest.py`` (part a), ``trace_map.py`` (part b) and ``live_ingest.py`` (``--stream``)
import it; it imports none of them.
"""

from __future__ import annotations

import functools
import http.client
import os
import random
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: This checkout (not whatever ``latmap`` is installed): the receivers run its code.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the benchmarks import mapper and collectors from it
    sys.path.insert(0, str(ROOT))
#: The benchmarks' peak-RSS target for a receiver or a map over a million spans.
TARGET_RSS = 1 << 30
SERVICES = ["gateway", "marketdata", "alerting", "notification", "pricing"]


@functools.cache
def _otlp_attr_types() -> tuple[Any, Any]:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    return AnyValue, KeyValue


def kv(key: str, value: str | int) -> Any:
    """An OTLP ``KeyValue`` attribute."""
    AnyValue, KeyValue = _otlp_attr_types()
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def new_request(services: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """An empty export request with one resource (and scope) per service, as a Collector forwards
    them; returns it and each service's span list."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    scopes = {}
    for svc in services:
        rs = req.resource_spans.add()
        rs.resource.attributes.extend([
            kv("service.name", svc), kv("service.version", "1.4.2"), kv("host.name", f"{svc}-7d9f-x2"),
            kv("telemetry.sdk.language", "python"), kv("deployment.environment", "prod")])
        ss = rs.scope_spans.add()
        ss.scope.name = f"latmap.bench.{svc}"
        scopes[svc] = ss.spans
    return req, scopes


def build_requests(total_spans: int, seed: int = 7) -> list[tuple[bytes, int]]:
    """(body, span count) pairs of ExportTraceServiceRequest protobuf, >= ``total_spans`` spans."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    rng = random.Random(seed)
    now = time.time_ns() - 3_600_000_000_000
    made = 0
    requests: list[tuple[bytes, int]] = []
    while made < total_spans:
        target = rng.randint(500, 2000)
        services = rng.sample(SERVICES, rng.randint(3, 5))
        req, scopes = new_request(services)
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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return [pid, *(p for k in kids for p in process_tree(k))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its live descendants."""
    total = 0
    for p in process_tree(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy since boot (all CPUs, from /proc/stat)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def peak_rss(pid: int) -> int:
    """Peak RSS (VmHWM) of ``pid`` plus its children (the decode workers), in bytes."""
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            total += int(line.split()[1]) * 1024
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        total += peak_rss(int(child))
    return total


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


def build_sdk_requests(total_spans: int, seed: int = 11, per_request: int = 1000) -> list[tuple[bytes, int]]:
    """(body, span count) pairs shaped as OpenTelemetry SDKs send them: ``per_request`` spans a
    request from one resource with ten resource attributes (service, instance, version, host,
    pod, namespace, region, SDK name/language/version), HTTP server/client spans with the HTTP
    semantic-convention attributes and messaging producer/consumer spans with the messaging
    ones, ~5% of spans with an ``exception`` event (status ERROR), consumers linked."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    rng = random.Random(seed)
    now = time.time_ns() - 3_600_000_000_000
    requests: list[tuple[bytes, int]] = []
    made = 0
    while made < total_spans:
        svc = rng.choice(SERVICES)
        inst = rng.randrange(4)
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.extend([
            kv("service.name", svc), kv("service.instance.id", f"{svc}-{inst}-5c7f9"), kv("service.version", "2.14.1"),
            kv("host.name", f"node-{inst:02d}"), kv("k8s.pod.name", f"{svc}-7f9c-{inst}"),
            kv("k8s.namespace.name", "prod"), kv("cloud.region", "eu-west-1"),
            kv("telemetry.sdk.name", "opentelemetry"), kv("telemetry.sdk.language", "python"),
            kv("telemetry.sdk.version", "1.25.0")])
        for scope_name in ("opentelemetry.instrumentation.flask", "opentelemetry.instrumentation.kafka"):
            ss = rs.scope_spans.add()
            ss.scope.name, ss.scope.version = scope_name, "0.46b0"
            for _ in range(per_request // 2):
                _sdk_span(ss.spans.add(), rng, now, scope_name.endswith("kafka"))
        requests.append((req.SerializeToString(), per_request // 2 * 2))
        made += per_request // 2 * 2
    return requests


def _sdk_span(s: Any, rng: random.Random, now: int, messaging: bool) -> None:
    s.trace_id = rng.getrandbits(128).to_bytes(16, "big")
    s.span_id = rng.getrandbits(64).to_bytes(8, "big")
    if rng.random() < 0.7:
        s.parent_span_id = rng.getrandbits(64).to_bytes(8, "big")
    start = now + rng.randrange(3_600_000_000_000)
    s.start_time_unix_nano, s.end_time_unix_nano = start, start + rng.randint(50_000, 50_000_000)
    s.flags = 0x101
    if messaging:
        s.kind = rng.choice((4, 5))
        topic = f"ticks.{rng.randrange(8)}"
        s.name = f"{topic} {'publish' if s.kind == 4 else 'process'}"
        s.attributes.extend([
            kv("messaging.system", "kafka"), kv("messaging.destination.name", topic),
            kv("messaging.operation.type", "publish" if s.kind == 4 else "process"),
            kv("messaging.kafka.destination.partition", rng.randrange(12)),
            kv("messaging.kafka.message.offset", rng.randrange(1 << 30)), kv("server.address", "kafka-0.kafka"),
            kv("server.port", 9092), kv("thread.id", rng.randrange(1, 64))])
        if s.kind == 5:
            s.links.add(trace_id=rng.getrandbits(128).to_bytes(16, "big"),
                        span_id=rng.getrandbits(64).to_bytes(8, "big"))
    else:
        s.kind = rng.choice((2, 3))
        route = f"/api/v1/{rng.choice(('ticker', 'alert', 'user', 'order'))}/{{id}}"
        s.name = f"GET {route}"
        s.attributes.extend([
            kv("http.request.method", "GET"), kv("http.route", route), kv("http.response.status_code", 200),
            kv("url.scheme", "http"), kv("server.address", "api.internal"), kv("server.port", 8080),
            kv("network.protocol.version", "1.1"), kv("user_agent.original", "python-requests/2.32"),
            kv("thread.id", rng.randrange(1, 64))])
    if rng.random() < 0.05:
        ev = s.events.add(name="exception", time_unix_nano=start + 1000)
        ev.attributes.extend([kv("exception.type", "TimeoutError"), kv("exception.message", "timed out")])
        s.status.code = 2


def decode_floor(requests: Sequence[tuple[bytes, int]], passes: int = 3) -> float:
    """Spans/s of the protobuf C backend (upb) parsing ``requests`` into the full OTLP message in
    this one process, best of ``passes``: what no receiver that decodes can beat per core."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    spans = sum(n for _, n in requests)
    best = float("inf")
    for _ in range(passes):
        t0 = time.perf_counter()
        for body, _ in requests:
            ExportTraceServiceRequest.FromString(body)
        best = min(best, time.perf_counter() - t0)
    return spans / best
