"""OTLP trace decoding speed: upb's parse alone, latmap's decoders, and the naive baseline.

One realistic ExportTraceServiceRequest (default 240,000 spans: 8 services x 4 instances as
resources, 2 instrumentation scopes each, 8 attributes per span, some events, links and error
statuses) is serialised once; then each method runs in a fresh Python process, so that its
peak RSS is its own:

* ``upb parse (OTLP schema)``: ``ExportTraceServiceRequest.FromString`` and nothing else, the
  floor for anything that builds Python messages;
* ``upb parse (lean schema)``: the same bytes parsed into latmap's lean schema (the first half
  of decode_protobuf);
* ``8-field loop``: parse with the OTLP schema, then the issue's "careful Python loop": 8
  fields per span appended to lists (no attributes, no validation, no arrays);
* ``decode_protobuf``: bytes to a validated, de-duplicated :class:`SpanBatch` (17 columns,
  4 of them attributes looked up per span), by the fast path (ptars, numpy) where it applies;
* ``decode_protobuf_reference``: the same by the reference decoder (upb, one Python loop);
* ``decode_json``: the same request as OTLP/JSON (hex ids), bytes to SpanBatch;
* ``naive baseline``: parse, ``MessageToDict``, then one Python dict of 8 fields per span.

Each row gives the best of ``--repeat`` runs, spans/s, the speed relative to decode_protobuf,
and the process's peak RSS (VmHWM) with how much of it the method added over the process
holding the body. Run: ``python benchmarks/otlp_decode.py [--spans N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2

SERVICES = ("market-data", "alerting", "notification", "gateway", "pricing", "risk", "ledger", "fanout")
INSTANCES = 4
SCOPES = ("io.opentelemetry.http", "io.opentelemetry.kafka")
ROUTES = [f"/api/v1/{noun}/{{id}}" for noun in ("ticker", "alert", "user", "order", "quote", "venue")]
T0 = 1_700_000_000_000_000_000


def build_request(n_spans: int, seed: int = 20240611) -> ExportTraceServiceRequest:
    """A request of ``n_spans`` spans, as an SDK batch would send it (same seed, same bytes)."""
    rnd = random.Random(seed)
    req = ExportTraceServiceRequest()
    per_scope = n_spans // (len(SERVICES) * INSTANCES * len(SCOPES))
    for service in SERVICES:
        for instance in range(INSTANCES):
            rs = req.resource_spans.add()
            for key, value in (("service.name", service), ("service.instance.id", f"{service}-{instance}"),
                               ("service.version", "2.14.1"), ("host.name", f"node-{instance:02d}"),
                               ("k8s.pod.name", f"{service}-7f9c-{instance}"),
                               ("telemetry.sdk.language", "python"), ("telemetry.sdk.version", "1.25.0")):
                kv = rs.resource.attributes.add()
                kv.key, kv.value.string_value = key, value
            for scope_name in SCOPES:
                scope = rs.scope_spans.add()
                scope.scope.name, scope.scope.version = scope_name, "0.46b0"
                for _ in range(per_scope):
                    add_span(scope, rnd, service, scope_name)
    return req


def add_span(scope: Any, rnd: random.Random, service: str, scope_name: str) -> None:
    s = scope.spans.add()
    s.trace_id = rnd.randbytes(16)
    s.span_id = rnd.randbytes(8)
    if rnd.random() < 0.8:
        s.parent_span_id = rnd.randbytes(8)
    start = T0 + rnd.randrange(3_600 * 10**9)
    s.start_time_unix_nano = start
    s.end_time_unix_nano = start + int(rnd.lognormvariate(13, 1.2))
    route = rnd.choice(ROUTES)
    messaging = scope_name.endswith("kafka")
    s.kind = rnd.choice((4, 5)) if messaging else rnd.choice((2, 3))
    s.name = f"ticks.{service} publish" if messaging else f"GET {route}"
    attrs: list[tuple[str, Any]] = [("thread.id", rnd.randrange(1, 64)), ("code.namespace", f"latmap.{service}")]
    if messaging:
        attrs += [("messaging.system", "kafka"), ("messaging.destination.name", f"ticks.{service}"),
                  ("messaging.operation", "publish"), ("messaging.kafka.partition", rnd.randrange(12)),
                  ("server.address", "kafka-0.kafka"), ("network.transport", "tcp")]
    else:
        attrs += [("http.request.method", "GET"), ("http.route", route), ("http.response.status_code", 200),
                  ("server.address", "api.internal"), ("peer.service", rnd.choice(SERVICES)),
                  ("network.protocol.version", "1.1")]
    for key, value in attrs:
        kv = s.attributes.add()
        kv.key = key
        if isinstance(value, int):
            kv.value.int_value = value
        else:
            kv.value.string_value = value
    if rnd.random() < 0.1:
        event = s.events.add()
        event.name, event.time_unix_nano = "exception", start + 1000
        kv = event.attributes.add()
        kv.key, kv.value.string_value = "exception.type", "TimeoutError"
        s.status.code = trace_pb2.Status.STATUS_CODE_ERROR
    if s.kind == 5:
        link = s.links.add()
        link.trace_id, link.span_id = rnd.randbytes(16), rnd.randbytes(8)


def to_otlp_json(req: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as an exporter writes it: protobuf's JSON mapping, but hex ids and int enums."""
    doc = json_format.MessageToDict(req, use_integers_for_enums=True)
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in sp:
                        sp[key] = base64.b64decode(sp[key]).hex()
                for link in sp.get("links", ()):
                    link["traceId"] = base64.b64decode(link["traceId"]).hex()
                    link["spanId"] = base64.b64decode(link["spanId"]).hex()
    return json.dumps(doc, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- the methods (child side)


def naive(body: bytes) -> int:
    doc = json_format.MessageToDict(ExportTraceServiceRequest.FromString(body))
    spans = []
    for rs in doc.get("resourceSpans", ()):
        service = next((a["value"].get("stringValue") for a in rs["resource"].get("attributes", ())
                        if a["key"] == "service.name"), None)
        for ss in rs.get("scopeSpans", ()):
            for sp in ss.get("spans", ()):
                spans.append({"trace_id": sp["traceId"], "span_id": sp["spanId"],
                              "parent_id": sp.get("parentSpanId"), "name": sp["name"], "kind": sp.get("kind"),
                              "start_ns": int(sp["startTimeUnixNano"]), "end_ns": int(sp["endTimeUnixNano"]),
                              "service": service})
    return len(spans)


def eight_fields(body: bytes) -> int:
    req = ExportTraceServiceRequest.FromString(body)
    trace: list[bytes] = []
    span: list[bytes] = []
    parent: list[bytes] = []
    start: list[int] = []
    end: list[int] = []
    kind: list[int] = []
    name: list[str] = []
    service: list[str] = []
    for rs in req.resource_spans:
        svc = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "")
        for ss in rs.scope_spans:
            for s in ss.spans:
                trace.append(s.trace_id)
                span.append(s.span_id)
                parent.append(s.parent_span_id)
                start.append(s.start_time_unix_nano)
                end.append(s.end_time_unix_nano)
                kind.append(s.kind)
                name.append(s.name)
                service.append(svc)
    return len(trace)


def run_method(method: str, body: bytes) -> int:
    if method == "upb parse (OTLP schema)":
        req = ExportTraceServiceRequest.FromString(body)
        return sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    from collectors.otlp import json as otlp_json
    from collectors.otlp import protobuf as otlp_protobuf
    from collectors.otlp.schema import LeanTracesData

    if method == "upb parse (lean schema)":
        data = LeanTracesData.FromString(body)
        return sum(len(ss.spans) for rs in data.resource_spans for ss in rs.scope_spans)
    if method == "8-field loop":
        return eight_fields(body)
    if method == "decode_protobuf":
        return len(otlp_protobuf.decode_protobuf(body).batch)
    if method == "decode_protobuf_reference":
        return len(otlp_protobuf.decode_protobuf_reference(body).batch)
    if method == "decode_json":
        return len(otlp_json.decode_json(body).batch)
    if method == "naive baseline":
        return naive(body)
    raise SystemExit(f"unknown method {method!r}")


def peak_rss_kib() -> int:
    """This process's peak RSS. Linux's ru_maxrss survives fork+exec (a child would report its
    parent's peak), so read the memory map's own high-water mark when there is one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(method: str, body_path: str, repeat: int) -> None:
    import collectors.otlp.codec  # noqa: F401 - imported before the baseline, like the body

    body = Path(body_path).read_bytes()
    base = peak_rss_kib()
    best = float("inf")
    spans = 0
    for _ in range(repeat):
        t = time.perf_counter()
        spans = run_method(method, body)
        best = min(best, time.perf_counter() - t)
    print(json.dumps({"seconds": best, "spans": spans, "peak_kib": peak_rss_kib(), "base_kib": base}))


# --------------------------------------------------------------------------- parent


def measure(method: str, body_path: Path, repeat: int) -> dict[str, Any]:
    # The child imports latmap from this checkout, whatever is installed.
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, __file__, "--child", method, "--body", str(body_path),
                          "--repeat", str(repeat)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{method}: child failed:\n{out.stderr}")
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=240_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child")
    parser.add_argument("--body")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.body, args.repeat)
        return

    t = time.perf_counter()
    req = build_request(args.spans)
    body = req.SerializeToString()
    json_body = to_otlp_json(req)
    n = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    del req
    print(f"request: {n:,} spans, {len(body) / 2**20:.1f} MiB protobuf, {len(json_body) / 2**20:.1f} MiB OTLP/JSON "
          f"(built in {time.perf_counter() - t:.1f} s)")
    with tempfile.TemporaryDirectory(prefix="latmap-otlp-bench-") as tmp:
        pb_path, json_path = Path(tmp) / "req.pb", Path(tmp) / "req.json"
        pb_path.write_bytes(body)
        json_path.write_bytes(json_body)
        plan = [
            ("upb parse (OTLP schema)", pb_path, args.repeat),
            ("upb parse (lean schema)", pb_path, args.repeat),
            ("8-field loop", pb_path, args.repeat),
            ("decode_protobuf", pb_path, args.repeat),
            ("decode_protobuf_reference", pb_path, args.repeat),
            ("decode_json", json_path, max(1, args.repeat // 2)),
            ("naive baseline", pb_path, 1),
        ]
        results = {method: measure(method, path, repeat) for method, path, repeat in plan}
    ours = n / results["decode_protobuf"]["seconds"]
    print(f"{'method':<27}{'best s':>9}{'spans/s':>13}{'vs decode_protobuf':>20}{'peak RSS':>11}{'added':>10}")
    for method, r in results.items():
        assert r["spans"] == n, (method, r["spans"])
        rate = n / r["seconds"]
        print(f"{method:<27}{r['seconds']:>9.3f}{rate:>13,.0f}{rate / ours:>19.2f}x"
              f"{r['peak_kib'] / 1024:>8.0f} MiB{(r['peak_kib'] - r['base_kib']) / 1024:>6.0f} MiB")


if __name__ == "__main__":
    main()
