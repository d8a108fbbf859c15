"""``latmap serve``: an OTLP trace receiver that acknowledges only what is on disk.

OTLP/HTTP (``POST /v1/traces``, binary protobuf or OTLP/JSON, optionally gzip) and OTLP/gRPC
(``TraceService/Export``) both decode the request with :mod:`collectors.otlp.codec` and append
the columns to a :class:`~collectors.spool.store.Spool`; the answer is sent only after the spool's
fsync returned, so an acknowledged span survives ``kill -9`` and power loss.

Answers, as the OTLP specification (1.x, "OTLP/HTTP Response" and "Failures") asks:

======================================  =====  ==============================
case                                    HTTP   gRPC
======================================  =====  ==============================
all spans kept                          200    OK
some spans set aside (bad ids ...)      200    OK, ``partial_success`` set
spans older than the retention, or      200    OK, ``partial_success`` set
starting over a day ahead (never
written: retention would delete them)
body is not OTLP                        400    INVALID_ARGUMENT
no or wrong bearer token                401    UNAUTHENTICATED
body (after gunzip) over the limit      413    RESOURCE_EXHAUSTED (by grpcio)
content type or encoding not OTLP       415    -
writer queue full (retry soon)          429    RESOURCE_EXHAUSTED + RetryInfo
spool at its disk limit, or closing     503    RESOURCE_EXHAUSTED + RetryInfo
write or sync failed                    503    UNAVAILABLE
======================================  =====  ==============================

HTTP error bodies are a ``google.rpc.Status`` in the request's encoding; 429/503 carry
``Retry-After`` (seconds). A gzip body is inflated in bounded steps and refused with 413 as
soon as it passes the limit, so a gzip bomb never expands in memory. The bearer token is
compared in constant time and never logged.

Where the time goes: decoding is ~3.5 us a span of pure Python (one loop over upb
messages), everything else together well under 1 us. In threads the GIL makes decoding use
one core however many there are, so by default decoding runs in one worker process per CPU
(:class:`DecodePool`): the request thread hands the body over a pipe and gets back the Arrow
IPC payload the spool writes. That, not the HTTP stack, is what reaches the throughput target
(``benchmarks/trace_ingest.py``). OTLP/HTTP is served by uvicorn with the httptools (llhttp)
parser behind a small ASGI app (:mod:`collectors.spool.http_server`: why that parser, the limits,
the framing rules); an HTTP export waits on the event loop for its decode worker and for the
group commit (:meth:`Receiver.export_async`), gRPC's in its own thread (:meth:`Receiver.export`).
``GET /metrics`` serves the receiver's own Prometheus registry (metric names below). It needs
no token by default, a deliberate choice: a Prometheus scrape job rarely carries the export
token, and the registry holds counts, never span data. ``metrics_public=False`` (CLI
``--metrics-token``) asks the export token for it too (401 without it). The body's format
follows the scraper's ``Accept`` (:func:`collectors.spool.exposition.metrics_response`): the
protobuf exposition (native histograms) when Prometheus asks for it, else OpenMetrics or text.

The gRPC service is registered as a generic handler that takes the request as bytes (no
deserializer), so the token is checked before anything is parsed, and the codec decodes the
same bytes the HTTP path does: a body that is not protobuf is INVALID_ARGUMENT with the
codec's reason, never a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from concurrent.futures import Executor
from typing import Any

import grpc
from grpc import Server as GrpcServer
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from collectors.http import read_secret
from collectors.spool.decode_pool import DecodePool, DecodeResult, DecoderUnavailableError, decode_request, worker_main
from collectors.spool.exporter import ExportOutcome
from collectors.spool.grpc_service import TraceService
from collectors.spool.http_app import JSON, METRICS_PATH, PROTOBUF, TRACES_PATH
from collectors.spool.http_framing import BodyTooLargeError, HttpLimits, inflate_gzip
from collectors.spool.http_server import HttpServer
from collectors.spool.limits import LimitError, accepted_starts
from collectors.spool.payload import HEADER
from collectors.spool.sink import SpanSink
from collectors.spool.store import Spool, SpoolLimits
from mapper.core.errors import LatmapError, UsageError

__all__ = [
    "DEFAULT_GRPC",
    "DEFAULT_HTTP",
    "JSON",
    "MAX_BODY_BYTES",
    "METRICS_PATH",
    "PROTOBUF",
    "TRACES_PATH",
    "BodyTooLargeError",
    "DecodePool",
    "DecodeResult",
    "DecoderUnavailableError",
    "ExportOutcome",
    "HttpLimits",
    "Receiver",
    "decode_request",
    "inflate_gzip",
    "parse_address",
    "serve_forever",
    "worker_main",
]

log = logging.getLogger(__name__)

DEFAULT_HTTP = "127.0.0.1:4318"
DEFAULT_GRPC = "127.0.0.1:4317"
#: The OTLP specification's recommended request limit, after decompression.
MAX_BODY_BYTES = 20 << 20
#: More decode processes than this is a mistake (each is a Python process of ~60 MB).
MAX_DECODE_WORKERS = 256
#: The OTLP trace service's full gRPC name (``/<service>/Export``).
TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"

# Metric names (the receiver's own registry; ``_total`` is added by prometheus-client).
M_SPANS_ACCEPTED = "latmap_receiver_spans_accepted"
M_SPANS_REJECTED = "latmap_receiver_spans_rejected"
M_SPANS_REPAIRED = "latmap_receiver_spans_repaired"
M_REQUESTS = "latmap_receiver_requests"
M_LATENCY = "latmap_receiver_request_duration_seconds"
M_SPOOL_BYTES = "latmap_spool_bytes"
M_SPOOL_SEGMENTS = "latmap_spool_segments"
M_SPOOL_PENDING = "latmap_spool_pending_bytes"
M_SPOOL_SYNCS = "latmap_spool_syncs"
M_SPOOL_TORN = "latmap_spool_torn_records"
M_SINK_ERRORS = "latmap_receiver_sink_errors"
M_SPOOL_QUARANTINED = "latmap_spool_quarantined_segments"

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def parse_address(text: str, what: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) as a pair; raises UsageError when it is not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"{what}: {text!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


class _SpoolCollector:
    """Spool gauges, read from :meth:`Spool.stats` at scrape time."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    def collect(self) -> Any:
        s = self.spool.stats()
        yield GaugeMetricFamily(M_SPOOL_BYTES, "Bytes of the spool on disk (segments and Parquet).",
                                value=s.disk_bytes)
        yield GaugeMetricFamily(M_SPOOL_SEGMENTS, "Write-ahead segments on disk.", value=s.segments)
        yield GaugeMetricFamily(M_SPOOL_PENDING, "Bytes accepted but not yet fsynced.", value=s.pending_bytes)
        yield GaugeMetricFamily(M_SPOOL_SYNCS, "Group commits (one fdatasync each) since start.", value=s.syncs)
        yield GaugeMetricFamily(M_SPOOL_TORN, "Damaged records skipped by compaction since start.",
                                value=s.torn_records)
        yield GaugeMetricFamily(M_SPOOL_QUARANTINED, "Damaged segments moved aside into _wal/quarantine/ "
                                "since the spool was opened (at open included).", value=s.quarantined)


class _Metrics:
    def __init__(self, spool: Spool) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.accepted = Counter(M_SPANS_ACCEPTED, "Spans made durable.", ["transport"], registry=self.registry)
        self.rejected = Counter(M_SPANS_REJECTED, "Spans set aside, by reason.", ["reason"], registry=self.registry)
        self.repaired = Counter(M_SPANS_REPAIRED, "Spans kept after a repair (e.g. no service.name), by reason.",
                                ["reason"], registry=self.registry)
        self.requests = Counter(M_REQUESTS, "Export requests by transport and answer.", ["transport", "code"],
                                registry=self.registry)
        self.latency = Histogram(M_LATENCY, "Export request time, receipt to answer.", ["transport"],
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_SpoolCollector(spool))  # type: ignore[arg-type]
        self.sink_errors = Counter(M_SINK_ERRORS, "Exports whose spans a sink (--stream) failed to take.",
                                   registry=self.registry)


class Receiver:
    """OTLP/HTTP and OTLP/gRPC listeners in front of one spool.

    ``http`` / ``grpc`` are ``host:port`` (port 0 picks a free one; None disables the
    listener); ``token`` is the bearer token every export must carry (None: no auth).
    ``metrics_public``: ``GET /metrics`` needs no token (False: the same token as exports).
    ``decode_workers``: worker processes that decode (see :class:`DecodePool`); None means
    one per CPU when there are several, 0 decodes in the request threads.
    ``sinks`` get each export's payload once the spool has it (:class:`SpanSink`; ``latmap
    serve --stream``); ``collectors`` are added to the ``/metrics`` registry.
    ``http_limits``: the OTLP/HTTP listener's connection, size and time limits.
    The caller owns ``spool`` and closes it after :meth:`stop`.
    """

    def __init__(
        self,
        spool: Spool,
        *,
        http: str | None = DEFAULT_HTTP,
        grpc: str | None = DEFAULT_GRPC,
        token: str | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        grpc_workers: int = 8,
        decode_workers: int | None = None,
        metrics_public: bool = True,
        sinks: Sequence[SpanSink] = (),
        collectors: Sequence[Any] = (),
        http_limits: HttpLimits | None = None,
    ) -> None:
        if decode_workers is not None and not 0 <= decode_workers <= MAX_DECODE_WORKERS:
            raise LimitError("decode_workers", f"{decode_workers} is not between 0 and {MAX_DECODE_WORKERS}")
        if max_body_bytes <= 0 or grpc_workers <= 0:
            raise LimitError("max_body_bytes" if max_body_bytes <= 0 else "grpc_workers", "must be > 0")
        self.spool = spool
        self.sinks = tuple(sinks)
        self.max_body_bytes = max_body_bytes
        self._http_addr = parse_address(http, "--http") if http else None
        self._grpc_addr = parse_address(grpc, "--grpc") if grpc else None
        self._token = token.encode() if token else None
        self.metrics_public = metrics_public
        self._grpc_workers = grpc_workers
        cpus = os.cpu_count() or 1
        self._decode_workers = decode_workers if decode_workers is not None else (cpus if cpus > 1 else 0)
        self._pool: DecodePool | None = None
        self.metrics = _Metrics(spool)
        for extra in collectors:  # e.g. the live value stream's histograms (``--stream``)
            self.metrics.registry.register(extra)
        self._http_limits = http_limits or HttpLimits()
        self._http: HttpServer | None = None
        self._grpc: GrpcServer | None = None  # (``grpc`` is a parameter here)
        self.http_port: int | None = None
        self.grpc_port: int | None = None

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Bind and start serving; the ports are in ``http_port`` / ``grpc_port``."""
        if self._decode_workers:
            self._pool = DecodePool(self._decode_workers)
        try:
            if self._http_addr is not None:
                # exports wait on a decode worker, then on the group commit: twice the
                # workers keeps both busy; in-process decoding (GIL) gains nothing past a few
                threads = 2 * self._decode_workers + 2 if self._decode_workers else 4
                self._http = HttpServer(self._http_addr, self, threads=threads, limits=self._http_limits)
                self.http_port = self._http.port
                self._http.start()
            if self._grpc_addr is not None:
                self._start_grpc(*self._grpc_addr)
        except OSError as err:
            self.stop()
            raise LatmapError(f"latmap serve: cannot listen: {err.strerror or err}") from err
        log.info("OTLP receiver on http=%s grpc=%s, spool %s", self.http_port, self.grpc_port, self.spool.path)

    def _start_grpc(self, host: str, port: int) -> None:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self._grpc_workers, thread_name_prefix="otlp-grpc"),
            options=[("grpc.max_receive_message_length", self.max_body_bytes)],
        )
        service = TraceService(self)
        handler = grpc.unary_unary_rpc_method_handler(
            service.Export, request_deserializer=None,  # bytes: checked, then decoded by the codec
            response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(TRACE_SERVICE, {"Export": handler}),))
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        bound = server.add_insecure_port(target)
        if not bound:
            raise OSError(f"cannot bind gRPC to {target}")
        server.start()
        self._grpc, self.grpc_port = server, bound

    def stop(self, grace: float = 5.0) -> None:
        """Stop listening, let requests in flight finish (up to ``grace`` s), close connections."""
        if self._grpc is not None:
            self._grpc.stop(grace).wait(grace)
            self._grpc = None
        if self._http is not None:
            self._http.stop(grace)
            self._http = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the decode workers (for resource accounting)."""
        return self._pool.pids if self._pool is not None else []

    def __enter__(self) -> Receiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the one export path ------------------------------------------------------------

    def authorized(self, header: str | None) -> bool:
        """True when no token is configured or ``header`` is ``Bearer <token>``."""
        if self._token is None:
            return True
        if not header:
            return False
        scheme, _, value = header.strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self._token)

    def export(self, body: bytes, encoding: str, transport: str) -> ExportOutcome:
        """Decode ``body`` (``"protobuf"`` or ``"json"``) and make its spans durable.

        Raises PayloadError (bad body), SpoolBusyError / SpoolFullError (full: retry later),
        SpoolError (write failed) or DecoderUnavailableError. Returns only after the fsync.
        Blocks the calling thread (gRPC's); an event loop calls :meth:`export_async`.
        """
        self.spool.check_capacity()  # cheap refusal before decoding when full
        pool = self._pool
        starts = accepted_starts(self.spool.limits)
        rows, rejected, warnings, framed = (pool.decode(body, encoding, starts) if pool
                                            else decode_request(body, encoding, starts))
        if rows:
            self.spool.append_record(framed)
        return self._done(rows, rejected, warnings, framed, transport)

    async def export_async(self, body: bytes, encoding: str, transport: str,
                           executor: Executor | None = None) -> ExportOutcome:
        """:meth:`export` for a caller on an event loop (OTLP/HTTP), with the same promises,
        errors and metrics, never blocking the loop: the decode worker's pipe and the spool's
        group commit are waited on by the loop itself (one wake-up each, no thread hand-off).
        Without decode workers decoding is CPU in this process: :meth:`export` then runs in
        ``executor`` (None: the loop's default)."""
        pool = self._pool
        if pool is None:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(executor, self.export, body, encoding, transport)
        self.spool.check_capacity()
        rows, rejected, warnings, framed = await pool.decode_async(body, encoding,
                                                                   accepted_starts(self.spool.limits))
        if rows:
            await self.spool.append_record_async(framed)
        return self._done(rows, rejected, warnings, framed, transport)

    def _done(self, rows: int, rejected: dict[str, int], warnings: dict[str, int], framed: bytes | memoryview,
              transport: str) -> ExportOutcome:
        """After the fsync: the sinks get the spans (the record's payload), the counters move;
        the export's outcome."""
        if rows and self.sinks:
            self._to_sinks(bytes(memoryview(framed)[HEADER.size:]), rows)
        outcome = ExportOutcome(rows, rejected)
        self.metrics.accepted.labels(transport).inc(outcome.accepted)
        for reason, n in outcome.rejected.items():
            self.metrics.rejected.labels(reason).inc(n)
        for reason, n in warnings.items():
            self.metrics.repaired.labels(reason).inc(n)
        return outcome

    def _to_sinks(self, payload: bytes, rows: int) -> None:
        """Hand the durable spans to every sink; a sink's failure never fails the export."""
        try:
            for sink in self.sinks:
                sink.accept(payload, rows)
        except Exception:
            log.exception("a span sink failed; the spans are in the spool")
            self.metrics.sink_errors.inc()


# --- running it -------------------------------------------------------------------------


def serve_forever(
    spool_dir: str,
    *,
    http: str | None = DEFAULT_HTTP,
    grpc: str | None = DEFAULT_GRPC,
    token_env: str | None = None,
    token_file: str | None = None,
    limits: SpoolLimits | None = None,
    decode_workers: int | None = None,
    metrics_public: bool = True,
    sinks: Sequence[SpanSink] = (),
    collectors: Sequence[Any] = (),
    stop: threading.Event | None = None,
    on_ready: Callable[[Receiver], None] | None = None,
    http_limits: HttpLimits | None = None,
) -> None:
    """Open the spool, serve until SIGTERM/SIGINT (or ``stop`` is set), then shut down cleanly.

    ``http`` / ``grpc`` None disables that listener; ``http_limits`` bounds the HTTP listener
    (:class:`HttpLimits`). ``on_ready`` is called once listening
    (the CLI prints the ports). Clean shutdown: stop accepting, finish requests in flight,
    sync and close the spool (not compacted: the next start compacts what is left). Raises
    LatmapError (bad token source, spool locked or unwritable, address in use) before
    serving anything.
    """

    if token_env and token_file:
        raise UsageError("give --token-env or --token-file, not both")
    token = read_secret(token_env, token_file, "--token-env" if token_env else "--token-file")
    done = stop or threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: done.set())
    try:
        with Spool(spool_dir, limits) as spool, \
                Receiver(spool, http=http, grpc=grpc, token=token, decode_workers=decode_workers,
                         metrics_public=metrics_public, sinks=sinks, collectors=collectors,
                         http_limits=http_limits) as receiver:
            log.info("OTLP receiver: http=%s grpc=%s spool=%s", receiver.http_port, receiver.grpc_port, spool_dir)
            if on_ready is not None:
                on_ready(receiver)
            done.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
