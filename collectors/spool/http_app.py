"""OTLP/HTTP for ``latmap serve``: a small ASGI app on uvicorn with the httptools parser.

Why uvicorn + httptools (llhttp, the parser of Node.js) and not h11: checked request by
request, llhttp itself refuses every ambiguous framing of RFC 9112 §6.1-6.3 with 400 and
closes the connection (Content-Length together with Transfer-Encoding in either order, two
Content-Lengths even when equal, ``Content-Length: 0, 0`` or ``+5``, ``Transfer-Encoding:
xchunked`` or ``chunked, identity``, obs-folded headers, a bad chunk size), while h11 0.16
answers ``CL + TE`` and ``obs-fold`` as a valid request and keeps the connection open. It is
also the faster of the two. What llhttp accepts and we still refuse here: a transfer coding
before ``chunked`` (``gzip, chunked``), answered 400 and the connection closed.

What the app keeps of the receiver's promises (see :mod:`collectors.spool.receiver`): the
answer is sent after :meth:`Receiver.export` returned, i.e. after the spool's fsync (group
commit: the exports in flight share one); gzip bodies inflate in bounded steps
(:func:`inflate_gzip`); the OTLP status table with ``google.rpc.Status`` bodies in the
request's encoding and ``Retry-After``; the bearer token compared in constant time;
``/metrics`` public or behind the token. Nothing blocks the event loop: an export waits on the
loop itself for its decode worker's pipe and for the spool's group commit
(:meth:`Receiver.export_async`: no thread hand-off each way); gunzip, ``/metrics`` and
in-process decoding (no decode workers) run in a thread pool.

Limits (:class:`HttpLimits`): connections and requests in flight (uvicorn's
``limit_concurrency``: past it a new request is answered 503), the request head (URL and
headers) in bytes and in time from its first byte (slowloris), the body in time (408 and
close), idle keep-alive connections. A client that resets, or a malformed request, is routine
and logged at debug, never with a traceback: anyone on the port could flood the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import uvicorn
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from collectors.otlp.codec import PayloadError
from collectors.spool.decode_pool import DecoderUnavailableError
from collectors.spool.exposition import metrics_response
from collectors.spool.store import SpoolBusyError, SpoolError, SpoolFullError
from mapper.core.errors import LatmapError
from mapper.core.redact import quoted

if TYPE_CHECKING:
    from collectors.spool.exporter import Exporter, ExportOutcome

__all__ = [
    "JSON",
    "METRICS_PATH",
    "PROTOBUF",
    "TRACES_PATH",
    "BodyTooLargeError",
    "HttpLimits",
    "HttpServer",
    "OtlpHttpApp",
    "export_response_body",
    "framing_problem",
    "inflate_gzip",
    "status_body",
]

log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
METRICS_PATH = "/metrics"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"

Scope = Mapping[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Mapping[str, Any]], Any]


class BodyTooLargeError(LatmapError):
    """The request body is over the limit (HTTP 413)."""


@dataclass(frozen=True)
class HttpLimits:
    """The OTLP/HTTP listener's limits (defaults are what ``latmap serve`` uses)."""

    max_connections: int = 256  # connections or requests in flight; past it: 503
    max_head_bytes: int = 64 << 10  # request line and headers together; past it: 400 and close
    head_timeout: float = 10.0  # seconds from a request's first byte to the end of its headers
    body_timeout: float = 60.0  # seconds to receive the whole body; past it: 408 and close
    keep_alive: int = 30  # an idle keep-alive connection is closed after this many seconds


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


def status_body(code: grpc.StatusCode, message: str, json_body: bool) -> bytes:
    """An OTLP/HTTP error body: a ``google.rpc.Status`` in the request's encoding."""
    status = status_pb2.Status(code=code.value[0], message=message)
    if json_body:
        return json_format.MessageToJson(status, indent=None).encode()
    return status.SerializeToString()


def export_response_body(outcome: ExportOutcome, json_body: bool) -> bytes:
    """An ``ExportTraceServiceResponse`` (``partial_success`` when spans were set aside)."""
    resp = trace_service_pb2.ExportTraceServiceResponse()
    if outcome.rejected:
        resp.partial_success.rejected_spans = outcome.rejected_spans
        resp.partial_success.error_message = outcome.message()
    if json_body:
        return json_format.MessageToJson(resp, indent=None).encode()
    return resp.SerializeToString()


def framing_problem(lengths: Sequence[str], encodings: Sequence[str]) -> str | None:
    """Why a request's body length is ambiguous (RFC 9112 §6.1-6.3), or None.

    The parser refuses most of these before the app sees them; the app checks again, so a
    request that reaches it with any of them is still answered 400 and the connection closed.
    """
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


class _Reply(Exception):
    """Answer now with this status (control flow inside the app)."""

    def __init__(self, status: int, code: grpc.StatusCode, message: str, *, retry_after: int | None = None,
                 close: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after, self.close = retry_after, close


class _Gone(Exception):
    """The client went away mid-request: nobody to answer."""


_NOT_AUTHORIZED = (401, grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")


class OtlpHttpApp:
    """The ASGI app: ``POST /v1/traces`` into :meth:`Receiver.export`, ``GET /metrics``."""

    def __init__(self, receiver: Exporter, executor: ThreadPoolExecutor, limits: HttpLimits) -> None:
        self.receiver = receiver
        self.executor = executor
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not served
        headers: dict[str, list[str]] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
        path = scope["path"]
        if scope["method"] == "POST":
            await self._post(path, headers, receive, send)
        elif scope["method"] in ("GET", "HEAD") and path == METRICS_PATH:
            await self._metrics(headers, send)
        else:
            close = _unread_body_closes(headers, self.receiver.max_body_bytes)
            if path in (TRACES_PATH, METRICS_PATH):
                allow = "POST" if path == TRACES_PATH else "GET"
                reply = _Reply(405, grpc.StatusCode.UNIMPLEMENTED, f"use {allow}", close=close)
                await _answer(send, reply, False, {"allow": allow})
            else:
                await _answer(send, _Reply(404, grpc.StatusCode.NOT_FOUND, f"no such path {quoted(path, 200)}",
                                           close=close), False)

    async def _metrics(self, headers: Mapping[str, list[str]], send: Send) -> None:
        receiver = self.receiver
        if not receiver.metrics_public and not receiver.authorized(_first(headers, "authorization")):
            await _answer(send, _Reply(*_NOT_AUTHORIZED), False, {"www-authenticate": "Bearer"})
            return
        loop = asyncio.get_running_loop()
        body, content_type = await loop.run_in_executor(
            self.executor, metrics_response, receiver.registry, _first(headers, "accept") or "")
        await _send(send, 200, body, content_type)

    async def _post(self, path: str, headers: Mapping[str, list[str]], receive: Receive, send: Send) -> None:
        receiver = self.receiver
        started = time.perf_counter()
        json_body = False
        status = 500
        limit = receiver.max_body_bytes
        try:
            problem = framing_problem(headers.get("content-length", []), headers.get("transfer-encoding", []))
            if problem is not None:
                raise _Reply(400, grpc.StatusCode.INVALID_ARGUMENT, problem, close=True)
            close = _unread_body_closes(headers, limit)
            if path != TRACES_PATH:
                raise _Reply(404, grpc.StatusCode.NOT_FOUND, f"no such path {quoted(path, 200)}", close=close)
            if not receiver.authorized(_first(headers, "authorization")):
                raise _Reply(*_NOT_AUTHORIZED, close=close)
            ctype = (_first(headers, "content-type") or "").split(";", 1)[0].strip().lower()
            if ctype not in (PROTOBUF, JSON):
                raise _Reply(415, grpc.StatusCode.INVALID_ARGUMENT,
                             f"Content-Type {ctype[:100] or 'missing'!r}; use {PROTOBUF} or {JSON}", close=close)
            json_body = ctype == JSON
            encoding = (_first(headers, "content-encoding") or "identity").strip().lower()
            if encoding not in ("identity", "gzip"):
                raise _Reply(415, grpc.StatusCode.INVALID_ARGUMENT,
                             f"Content-Encoding {quoted(encoding, 100)}; use gzip", close=close)
            chunked = "transfer-encoding" in headers
            if not chunked:
                length_text = _first(headers, "content-length")
                if length_text is None:
                    raise _Reply(411, grpc.StatusCode.INVALID_ARGUMENT, "Content-Length is required", close=True)
                if int(length_text) > limit:
                    if int(length_text) <= 2 * limit:  # read it, so the client gets the 413, not a reset
                        await self._drain(receive)
                    raise BodyTooLargeError(f"body of {int(length_text)} bytes is over the {limit}-byte limit")
            body = await self._read_body(receive, limit)
            if encoding == "gzip":  # CPU (bounded): in the pool, not on the loop
                body = await asyncio.get_running_loop().run_in_executor(self.executor, inflate_gzip, body, limit)
            outcome = await receiver.export_async(body, "json" if json_body else "protobuf", "http", self.executor)
            status = 200
            await _send(send, 200, export_response_body(outcome, json_body), JSON if json_body else PROTOBUF)
        except _Reply as reply:
            status = reply.status
            await _answer(send, reply, json_body, {"www-authenticate": "Bearer"} if status == 401 else None)
        except BodyTooLargeError as err:
            status = 413
            await _answer(send, _Reply(413, grpc.StatusCode.RESOURCE_EXHAUSTED, str(err), close=True), json_body)
        except PayloadError as err:
            status = 400
            await _answer(send, _Reply(400, grpc.StatusCode.INVALID_ARGUMENT, str(err)), json_body)
        except SpoolBusyError as err:
            status = 429
            await _answer(send, _Reply(429, grpc.StatusCode.RESOURCE_EXHAUSTED, str(err),
                                       retry_after=err.retry_after), json_body)
        except SpoolFullError as err:
            status = 503
            await _answer(send, _Reply(503, grpc.StatusCode.RESOURCE_EXHAUSTED, str(err),
                                       retry_after=err.retry_after), json_body)
        except (SpoolError, DecoderUnavailableError) as err:
            status = 503
            await _answer(send, _Reply(503, grpc.StatusCode.UNAVAILABLE, str(err), retry_after=5), json_body)
        except _Gone:
            status = 499
        except Exception:
            log.exception("OTLP/HTTP export failed")
            await _answer(send, _Reply(500, grpc.StatusCode.INTERNAL, "internal error", close=True), json_body)
        finally:
            receiver.metrics.requests.labels("http", str(status)).inc()
            receiver.metrics.latency.labels("http").observe(time.perf_counter() - started)

    async def _drain(self, receive: Receive) -> None:
        """Read and drop a body that will not be used, within the body deadline (a client
        still sending gets the answer rather than a reset, as RFC 9110 9.3.3 allows)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.limits.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect" or not message.get("more_body"):
                        return

    async def _read_body(self, receive: Receive, limit: int) -> bytes:
        """The whole body, within ``limit`` bytes and the body deadline."""
        parts: list[bytes] = []
        total = 0
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _Gone
                    chunk = message.get("body", b"")
                    total += len(chunk)
                    if total > limit:
                        raise BodyTooLargeError(f"body is over the {limit}-byte limit")
                    parts.append(chunk)
                    if not message.get("more_body"):
                        return b"".join(parts)
        except TimeoutError:
            raise _Reply(408, grpc.StatusCode.DEADLINE_EXCEEDED,
                         f"body not received within {self.limits.body_timeout:g} s", close=True) from None


def _first(headers: Mapping[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


def _unread_body_closes(headers: Mapping[str, list[str]], limit: int) -> bool:
    """An answer that leaves the body unread closes the connection unless the body is small
    and of known length (the server then reads past it to the next request)."""
    lengths = headers.get("content-length", [])
    if "transfer-encoding" in headers or len(lengths) > 1:
        return True
    return bool(lengths) and (not lengths[0].strip().isdigit() or int(lengths[0]) > limit)


async def _send(send: Send, status: int, body: bytes, content_type: str,
                headers: Mapping[str, str] | None = None, close: bool = False) -> None:
    raw = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    if close:
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _answer(send: Send, reply: _Reply, json_body: bool, headers: Mapping[str, str] | None = None) -> None:
    extra = dict(headers or {})
    if reply.retry_after is not None:
        extra["retry-after"] = str(reply.retry_after)
    await _send(send, reply.status, status_body(reply.code, reply.message, json_body),
                JSON if json_body else PROTOBUF, extra, reply.close)


# --- the server -------------------------------------------------------------------------


#: Bytes of a request body gathered per connection before the app is woken (and reading paused
#: until it takes them): an export of a few thousand spans reaches the app in one piece.
BODY_BUFFER = 1 << 20


class _HeadTooLargeError(Exception):
    pass


class _Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus two limits it lacks: the request head's size and the
    time from its first byte to its end (a slowloris client that drips headers is closed).
    Counted per chunk received, not per header, to keep the hot path short."""

    limits = HttpLimits()  # replaced per server by a subclass (see HttpServer)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_bytes = 0
        self._began = 0
        self._in_head = True  # a new connection owes a request head
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            log.debug("%s: request head not received in %g s; closing", self.client, self.limits.head_timeout)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        began = self._began
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            # every byte since the head began is head (a pipelined chunk may add the end of
            # the previous body: an over-count of at most one chunk)
            self._head_bytes = len(data) if self._began != began else self._head_bytes + len(data)
            if self._head_bytes > self.limits.max_head_bytes:
                self._head_too_large()

    def _head_too_large(self) -> None:
        log.debug("%s: request head over %d bytes; closing", self.client, self.limits.max_head_bytes)
        self.send_400_response("Request head too large.")

    def on_body(self, body: bytes) -> None:
        # uvicorn wakes the app for every piece of a body and stops reading past 64 KiB until
        # the app took it: a 200 KiB export made several round trips through the app's task
        # and was copied once more to be joined. The app wants the whole body anyway, so up to
        # BODY_BUFFER it is gathered here and the app woken once, when the request is complete;
        # past that, uvicorn's own flow control (the app reads the body in pieces).
        cycle = self.cycle
        if (len(cycle.body) + len(body) <= BODY_BUFFER and not cycle.response_complete
                and not self.parser.should_upgrade()):
            cycle.body += body
            return
        super().on_body(body)

    def on_message_begin(self) -> None:
        self._in_head = True
        self._began += 1
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers) > self.limits.max_head_bytes:
            raise _HeadTooLargeError  # the parser turns it into a parse error: 400 and close
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)


class _QuietParserErrors(logging.Filter):
    """uvicorn warns once per malformed request: anyone on the port could flood the log with
    those. They go to this module's debug log instead, and into the request counter as 400."""

    ROUTINE = ("Invalid HTTP request received.", "Unsupported upgrade request.",
               "No supported WebSocket library detected")

    def __init__(self, on_bad_request: Callable[[], None]) -> None:
        super().__init__()
        self.on_bad_request = on_bad_request

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if record.levelno < logging.ERROR and text.startswith(self.ROUTINE):
            if text == self.ROUTINE[0]:
                self.on_bad_request()
            log.debug("uvicorn: %s", text)
            return False
        # start/stop chatter below WARNING is dropped: latmap serve says what it listens on itself
        return record.levelno >= logging.WARNING


_UVICORN_LOG = logging.getLogger("uvicorn.error")


class HttpServer:
    """uvicorn serving :class:`OtlpHttpApp` on its own thread and event loop.

    Binds at construction (``port`` is known at once, port 0 picks one); :meth:`start` serves,
    :meth:`stop` stops accepting, lets requests in flight finish (up to ``grace`` s) and closes
    the connections. ``threads``: the pool that runs exports (size it to the decode pool).
    """

    def __init__(self, addr: tuple[str, int], receiver: Exporter, *, threads: int,
                 limits: HttpLimits | None = None) -> None:
        self.limits = limits or HttpLimits()
        family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind(addr)
            self._sock.listen(2048)
        except OSError:
            self._sock.close()
            raise
        self.port: int = self._sock.getsockname()[1]
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="otlp-http-export")
        protocol = type("OtlpProtocol", (_Protocol,), {"limits": self.limits})
        config = uvicorn.Config(
            OtlpHttpApp(receiver, self.executor, self.limits),
            http=protocol, loop="auto", lifespan="off", interface="asgi3",
            access_log=False, log_config=None, log_level=None, server_header=False, proxy_headers=False,
            limit_concurrency=self.limits.max_connections, timeout_keep_alive=self.limits.keep_alive,
            h11_max_incomplete_event_size=self.limits.max_head_bytes,  # (used only if h11 is chosen)
        )
        self._server = uvicorn.Server(config)
        self._filter = _QuietParserErrors(lambda: receiver.metrics.requests.labels("http", "400").inc())
        self._thread: threading.Thread | None = None
        self._failed: BaseException | None = None

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as err:  # reported by start()
            self._failed = err

    def start(self, timeout: float = 30.0) -> None:
        _UVICORN_LOG.addFilter(self._filter)
        self._thread = threading.Thread(target=self._run, name="otlp-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop(0)
                raise OSError(f"OTLP/HTTP server did not start: {self._failed or 'timed out'}")
            time.sleep(0.01)

    def stop(self, grace: float = 5.0) -> None:
        self._server.config.timeout_graceful_shutdown = max(1, round(grace))
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(grace + 5)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(5)
            self._thread = None
        with contextlib.suppress(OSError):
            self._sock.close()
        self.executor.shutdown(wait=True, cancel_futures=True)
        _UVICORN_LOG.removeFilter(self._filter)
