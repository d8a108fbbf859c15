"""Part ``sigkill``: what latmap serve acknowledges stays acknowledged.

* SIGKILL during ingest: clients post spans and count what was acknowledged (200); the
  server is killed with SIGKILL at a random moment, restarted on the same spool, killed
  again; then the spool is read and every acknowledged span must be there.
* Acknowledged, then deleted: spans that started 30 days ago (older than the default
  ``--retention 7d``) are posted beside recent ones; each answer's ``partial_success`` says how
  many were refused. The spool is then compacted with retention as the receiver does, and
  every span acknowledged without being refused must still be there.
"""

from __future__ import annotations

import http.client
import random
import signal
import threading
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from .common import TOKEN, Case, Server, Tally, leaks, otlp_request, post_export


def _spool_counts(spool: Path) -> dict[int, int]:
    import numpy as np

    from collectors.spool.store import scan_spool

    read = scan_spool(spool)
    ids, counts = np.unique(read.batch.trace_lo, return_counts=True)
    return dict(zip(ids.tolist(), counts.tolist(), strict=True))


def part_sigkill(tally: Tally, quick: bool, work: Path) -> None:
    spool = work / "kill-spool"
    rounds = 1 if quick else 4
    acked: dict[int, int] = {}  # trace id -> spans acknowledged
    lock = threading.Lock()
    rng = random.Random(15)
    trace = 1
    for r in range(rounds):
        server = Server(spool)
        server.start()
        stop = threading.Event()

        def client(first_trace: int, step: int, port: int = server.port, stop: threading.Event = stop) -> None:
            t = first_trace
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            while not stop.is_set():
                n = rng.randrange(50, 1500)
                try:
                    conn.request("POST", "/v1/traces", body=otlp_request(n, trace=t),
                                 headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {TOKEN}"})
                    resp = conn.getresponse()
                    resp.read()
                except (OSError, http.client.HTTPException):
                    return
                if resp.status == 200:
                    with lock:
                        acked[t] = n
                t += step

        threads = [threading.Thread(target=client, args=(trace + i, 4)) for i in range(4)]
        for th in threads:
            th.start()
        time.sleep(rng.uniform(1.5, 4.0))
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)  # mid-ingest
        server.proc.wait()
        stop.set()
        for th in threads:
            th.join()
        trace += 10_000_000
        print(f"  SIGKILL round {r + 1}: {sum(acked.values()):,} spans acknowledged so far", flush=True)
        tally.add(Case("sigkill", f"SIGKILL during ingest, round {r + 1}", "clean",
                       "", leaks("".join(server.log))))
    have = _spool_counts(spool)
    acked_n = sum(acked.values())
    lost = sum(max(0, n - have.get(t, 0)) for t, n in acked.items())
    tally.count_acks(acked_n, lost)
    print(f"  spool after {rounds} SIGKILLs: {sum(have.values()):,} spans; acknowledged {acked_n:,}, "
          f"lost {lost:,}", flush=True)


DAY_NS = 86400 * 10**9


def part_retention(tally: Tally, quick: bool, server: Server) -> Path:
    """Acknowledged, then deleted? Posts to the running ``server``, stops it, compacts its
    spool as its compactor would; returns the spool (with recent spans of services ``a`` and
    ``b``) for the spool probes to copy."""
    from collectors.spool.store import Spool

    spool = server.spool
    now = time.time_ns()
    ages = {"30 days ago": 30, "8 days ago": 8, "6 days ago": 6, "1000 days ago": 1000,
            "in 1970": (now // DAY_NS) - 1, "10 days from now": -10}
    if quick:
        ages = {k: ages[k] for k in ("30 days ago", "6 days ago")}
    kept: dict[int, int] = {}  # trace id -> spans acknowledged and not refused
    trace = 0x5EED000
    try:
        for name, days in ages.items():
            trace += 1
            n = 50
            status, raw = post_export(server.port, otlp_request(n, trace, start_ns=now - days * DAY_NS))
            answer = ExportTraceServiceResponse()
            refused = 0
            if status == 200:
                answer.ParseFromString(raw)
                refused = answer.partial_success.rejected_spans
                if refused < n:
                    kept[trace] = n - refused
            tally.add(Case("sigkill", f"spans that start {name}", "clean" if status in (200, 400) else "unclean",
                           f"HTTP {status}, {refused} of {n} refused", leaks("".join(server.log))))
        for i in range(20):  # a -> b, recent, for the spool probes
            for which, svc in ((1, "a"), (2, "b")):
                post_export(server.port, _pair(0xC0DE00 + i, which, svc, now - 600 * 10**9 + i * 10**9))
    finally:
        server.stop()
    with Spool(spool) as writer:  # what the receiver's compactor does, with its default --retention 7d
        writer.compact()
        writer.apply_retention()
    have = _spool_counts(spool)
    lost = 0
    for t, n in kept.items():
        missing = max(0, n - have.get(t, 0))
        lost += missing
        if missing:
            tally.add(Case("sigkill", f"acknowledged trace {t:#x} after compaction", "unclean",
                           f"{missing} of {n} spans acknowledged without rejection were deleted by retention"))
    tally.count_acks(sum(kept.values()), lost)
    print(f"  retention: {sum(kept.values())} spans acknowledged without rejection, {lost} gone after compaction",
          flush=True)
    return spool


def _pair(trace: int, which: int, service: str, start_ns: int) -> bytes:
    """Span ``which`` (1: the root in ``a``; 2: its child in ``b``) of trace ``trace``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    attr = rs.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", service
    rs.scope_spans.add().spans.add(
        trace_id=trace.to_bytes(16, "big"), span_id=which.to_bytes(8, "big"),
        parent_span_id=(1).to_bytes(8, "big") if which == 2 else b"", name=f"{service}-op", kind=2,
        start_time_unix_nano=start_ns + (which - 1) * 2_000_000, end_time_unix_nano=start_ns + which * 3_000_000)
    return req.SerializeToString()
