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
(``benchmarks/trace_ingest.py``), so the HTTP side stays the stdlib ``ThreadingHTTPServer``
(HTTP/1.1 keep-alive, a thread per connection; a fraction of a millisecond per request).
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

import contextlib
import hmac
import logging
import os
import signal
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import status_pb2
from grpc import Server as GrpcServer
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from collectors.http import read_secret
from collectors.otlp.codec import PayloadError
from collectors.spool.decode_pool import DecodePool, DecodeResult, DecoderUnavailableError, decode_request, worker_main
from collectors.spool.exposition import metrics_response
from collectors.spool.grpc_service import TraceService
from collectors.spool.sink import SpanSink
from collectors.spool.store import Spool, SpoolBusyError, SpoolError, SpoolFullError, SpoolLimits
from mapper.core.errors import LatmapError, UsageError

__all__ = [
    "DEFAULT_GRPC",
    "DEFAULT_HTTP",
    "MAX_BODY_BYTES",
    "BodyTooLargeError",
    "DecodePool",
    "DecodeResult",
    "DecoderUnavailableError",
    "ExportOutcome",
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
TRACES_PATH = "/v1/traces"
METRICS_PATH = "/metrics"
#: The OTLP trace service's full gRPC name (``/<service>/Export``).
TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"

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

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class BodyTooLargeError(LatmapError):
    """The request body is over the limit (HTTP 413)."""


@dataclass(frozen=True)
class ExportOutcome:
    """What one export request came to once its spans were durable."""

    accepted: int
    rejected: Mapping[str, int]  # reason -> spans set aside

    @property
    def rejected_spans(self) -> int:
        return sum(self.rejected.values())

    def message(self) -> str:
        """The partial-success ``error_message`` ("" when nothing was rejected)."""
        if not self.rejected:
            return ""
        parts = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.rejected.items()))
        return f"{self.rejected_spans} spans rejected ({parts})"


def parse_address(text: str, what: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) as a pair; raises UsageError when it is not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"{what}: {text!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


def inflate_gzip(data: bytes, limit: int) -> bytes:
    """Gunzip ``data`` (several members allowed), refusing past ``limit`` bytes of output.

    Inflates at most ``limit + 1`` bytes in total whatever the ratio, so a bomb costs only
    the limit. Raises BodyTooLargeError past the limit and PayloadError for bad gzip.
    """
    out: list[bytes] = []
    total = 0
    inflater = zlib.decompressobj(wbits=31)
    buf = data
    try:
        while True:
            chunk = inflater.decompress(buf, limit + 1 - total)
            total += len(chunk)
            out.append(chunk)
            if total > limit:
                raise BodyTooLargeError(f"gzip body inflates past {limit} bytes")
            if inflater.eof:
                buf = inflater.unused_data
                if not buf:
                    break
                inflater = zlib.decompressobj(wbits=31)
            else:
                buf = inflater.unconsumed_tail
                if not buf:
                    raise PayloadError("gzip body is truncated")
    except zlib.error as err:
        raise PayloadError(f"body is not valid gzip: {err}") from None
    return b"".join(out)


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
    ) -> None:
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
        self._http: _HttpServer | None = None
        self._http_thread: threading.Thread | None = None
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
                self._http = _HttpServer(self._http_addr, self)
                self.http_port = self._http.server_address[1]
                self._http_thread = threading.Thread(target=self._http.serve_forever, name="otlp-http",
                                                     kwargs={"poll_interval": 0.2}, daemon=True)
                self._http_thread.start()
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
            self._http.shutdown()
            self._http.close_connections(grace)
            self._http.server_close()
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
        """
        self.spool.check_capacity()  # cheap refusal before decoding when full
        pool = self._pool
        rows, rejected, warnings, payload = pool.decode(body, encoding) if pool else decode_request(body, encoding)
        if rows:
            self.spool.append_payload(payload)
            if self.sinks:
                self._to_sinks(payload, rows)
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


# --- OTLP/HTTP --------------------------------------------------------------------------


def _status_body(code: grpc.StatusCode, message: str, json_body: bool) -> bytes:
    status = status_pb2.Status(code=code.value[0], message=message)
    if json_body:
        return json_format.MessageToJson(status, indent=None).encode()
    return status.SerializeToString()


def _response_body(outcome: ExportOutcome, json_body: bool) -> bytes:
    resp = trace_service_pb2.ExportTraceServiceResponse()
    if outcome.rejected:
        resp.partial_success.rejected_spans = outcome.rejected_spans
        resp.partial_success.error_message = outcome.message()
    if json_body:
        return json_format.MessageToJson(resp, indent=None).encode()
    return resp.SerializeToString()


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], receiver: Receiver) -> None:
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.receiver = receiver
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that resets or goes away is routine, not a traceback on stderr (anyone on
        the port could flood the log with them); anything else is logged once, as a bug."""
        err = sys.exc_info()[1]
        if isinstance(err, ConnectionError | TimeoutError):
            log.debug("%s: connection ended: %s", client_address, type(err).__name__)
        else:
            log.error("OTLP/HTTP: unexpected error on a connection from %s", client_address, exc_info=True)

    def close_connections(self, grace: float) -> None:
        """End keep-alive connections: reads see EOF, a request being answered finishes."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RD)
        deadline = time.monotonic() + grace
        while self._conns and time.monotonic() < deadline:
            time.sleep(0.01)


class _Reply(Exception):
    """Answer now with this status (control flow inside the handler)."""

    def __init__(self, status: int, code: grpc.StatusCode, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "latmap-otlp"
    timeout = 120  # an idle keep-alive connection is closed after this many seconds
    server: _HttpServer

    def parse_request(self) -> bool:
        """The stdlib's parse, then the framing rules of RFC 9112 6.1-6.3 that it leaves out:
        a request whose body length is ambiguous (both Content-Length and Transfer-Encoding, a
        Transfer-Encoding other than ``chunked``, two Content-Lengths, a length that is not a
        number) is answered 400 and the connection closed, so the bytes after it can never be
        read as a second request (request smuggling)."""
        if not super().parse_request():
            return False
        problem = _framing_problem(self.headers.get_all("Content-Length") or [],
                                   self.headers.get_all("Transfer-Encoding") or [])
        if problem is not None:
            self.send_error(400, problem)  # sends Connection: close and ends the connection
            return False
        return True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == METRICS_PATH:
            receiver = self.server.receiver
            if not receiver.metrics_public and not receiver.authorized(self.headers.get("Authorization")):
                self._error(_Reply(401, grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token"), False)
                return
            body, content_type = metrics_response(receiver.registry, self.headers.get("Accept") or "")
            self._send(200, body, content_type)
        elif self.path.split("?", 1)[0] == TRACES_PATH:
            self._error(_Reply(405, grpc.StatusCode.UNIMPLEMENTED, "use POST"), False, {"Allow": "POST"})
        else:
            self._error(_Reply(404, grpc.StatusCode.NOT_FOUND, f"no such path {self.path!r}"), False)

    def _method_not_allowed(self) -> None:
        try:
            self._skip_body(self.server.receiver.max_body_bytes)
        except ConnectionError:
            self.close_connection = True
            return
        if self.path.split("?", 1)[0] in (TRACES_PATH, METRICS_PATH):
            allow = "POST" if self.path.startswith(TRACES_PATH) else "GET"
            self._error(_Reply(405, grpc.StatusCode.UNIMPLEMENTED, f"use {allow}"), False, {"Allow": allow})
        else:
            self._error(_Reply(404, grpc.StatusCode.NOT_FOUND, f"no such path {self.path!r}"), False)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed

    def _error(self, reply: _Reply, json_body: bool, headers: dict[str, str] | None = None) -> None:
        headers = dict(headers or {})
        if reply.retry_after is not None:
            headers["Retry-After"] = str(reply.retry_after)
        body = _status_body(reply.code, reply.message, json_body)
        self._send(reply.status, body, JSON if json_body else PROTOBUF, headers)

    def do_POST(self) -> None:
        receiver = self.server.receiver
        started = time.perf_counter()
        json_body = False
        status = 500
        try:
            limit = receiver.max_body_bytes
            if self.path.split("?", 1)[0] != TRACES_PATH:
                self._skip_body(limit)
                raise _Reply(404, grpc.StatusCode.NOT_FOUND, f"no such path {self.path!r}")
            if not receiver.authorized(self.headers.get("Authorization")):
                self._skip_body(limit)
                raise _Reply(401, grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
            ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if ctype not in (PROTOBUF, JSON):
                self._skip_body(limit)
                raise _Reply(415, grpc.StatusCode.INVALID_ARGUMENT,
                             f"Content-Type {ctype or 'missing'!r}; use {PROTOBUF} or {JSON}")
            json_body = ctype == JSON
            body = self._read_body(limit)
            outcome = receiver.export(body, "json" if json_body else "protobuf", "http")
            status = 200
            self._send(200, _response_body(outcome, json_body), JSON if json_body else PROTOBUF)
        except _Reply as reply:
            status = reply.status
            self._error(reply, json_body, {"WWW-Authenticate": "Bearer"} if status == 401 else None)
        except BodyTooLargeError as err:
            status = 413
            self._error(_Reply(413, grpc.StatusCode.RESOURCE_EXHAUSTED, str(err)), json_body)
        except PayloadError as err:
            status = 400
            self._error(_Reply(400, grpc.StatusCode.INVALID_ARGUMENT, str(err)), json_body)
        except SpoolBusyError as err:
            status = 429
            self._error(_Reply(429, grpc.StatusCode.RESOURCE_EXHAUSTED, str(err), err.retry_after), json_body)
        except SpoolFullError as err:
            status = 503
            self._error(_Reply(503, grpc.StatusCode.RESOURCE_EXHAUSTED, str(err), err.retry_after), json_body)
        except (SpoolError, DecoderUnavailableError) as err:
            status = 503
            self._error(_Reply(503, grpc.StatusCode.UNAVAILABLE, str(err), 5), json_body)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            status = 499
        except Exception:
            log.exception("OTLP/HTTP export failed")
            self.close_connection = True
            self._error(_Reply(500, grpc.StatusCode.INTERNAL, "internal error"), json_body)
        finally:
            receiver.metrics.requests.labels("http", str(status)).inc()
            receiver.metrics.latency.labels("http").observe(time.perf_counter() - started)

    def _read_body(self, limit: int) -> bytes:
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            self._skip_body(limit)
            raise _Reply(415, grpc.StatusCode.INVALID_ARGUMENT, f"Content-Encoding {encoding!r}; use gzip")
        if self.headers.get("Transfer-Encoding"):  # exactly "chunked": parse_request checked
            raw = self._read_chunked(limit)
        else:
            length_text = self.headers.get("Content-Length")
            if length_text is None or not length_text.strip().isdigit():
                self.close_connection = True
                raise _Reply(411, grpc.StatusCode.INVALID_ARGUMENT, "Content-Length is required")
            length = int(length_text)
            if length > limit:
                self._skip_body(limit)
                raise BodyTooLargeError(f"body of {length} bytes is over the {limit}-byte limit")
            raw = self.rfile.read(length)
            if len(raw) < length:
                raise ConnectionError("client closed the connection mid-body")
        return inflate_gzip(raw, limit) if encoding == "gzip" else raw

    def _skip_body(self, limit: int) -> None:
        """Read and drop a body that will not be used, so that a client still sending it gets
        the answer rather than a reset; one past twice the limit (or chunked) hangs up instead."""
        length_text = (self.headers.get("Content-Length") or "").strip()
        if not length_text.isdigit() or int(length_text) > 2 * limit:
            self.close_connection = True
            return
        left = int(length_text)
        while left > 0:
            chunk = self.rfile.read(min(1 << 16, left))
            if not chunk:
                raise ConnectionError("client closed the connection mid-body")
            left -= len(chunk)

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise _Reply(400, grpc.StatusCode.INVALID_ARGUMENT, "bad chunked encoding") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > limit:
                self.close_connection = True
                raise BodyTooLargeError(f"chunked body is over the {limit}-byte limit")
            parts.append(self.rfile.read(size))
            self.rfile.readline(8)


def _framing_problem(lengths: list[str], encodings: list[str]) -> str | None:
    """Why a request's body length is ambiguous, or None (see ``_Handler.parse_request``)."""
    if encodings:
        if lengths:
            return "both Content-Length and Transfer-Encoding"
        codings = [c.strip().lower() for e in encodings for c in e.split(",")]
        if codings != ["chunked"]:
            return "Transfer-Encoding other than chunked"
        return None
    if len(lengths) > 1:
        return "more than one Content-Length"
    if lengths and not lengths[0].strip().isdigit():
        return "Content-Length is not a number"
    return None


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
) -> None:
    """Open the spool, serve until SIGTERM/SIGINT (or ``stop`` is set), then shut down cleanly.

    ``http`` / ``grpc`` None disables that listener. ``on_ready`` is called once listening
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
                         metrics_public=metrics_public, sinks=sinks, collectors=collectors) as receiver:
            log.info("OTLP receiver: http=%s grpc=%s spool=%s", receiver.http_port, receiver.grpc_port, spool_dir)
            if on_ready is not None:
                on_ready(receiver)
            done.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
