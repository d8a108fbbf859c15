"""OTLP/HTTP for ``latmap serve``: the ASGI app that routes a request and answers it.

What the app keeps of the receiver's promises (see :mod:`collectors.spool.receiver`): the
answer is sent after :meth:`Receiver.export` returned, i.e. after the spool's fsync (group
commit: the exports in flight share one); gzip bodies inflate in bounded steps
(:func:`~collectors.spool.http_framing.inflate_gzip`); the OTLP status table with
``google.rpc.Status`` bodies in the request's encoding and ``Retry-After``; the bearer token
compared in constant time; ``/metrics`` public or behind the token. Nothing blocks the event
loop: an export waits on the loop itself for its decode worker's pipe and for the spool's
group commit (:meth:`Receiver.export_async`: no thread hand-off each way); gunzip,
``/metrics`` and in-process decoding (no decode workers) run in a thread pool.

The body is read within its deadline (408 and close) and size limit (413); a request with an
ambiguous framing is answered 400 and the connection closed
(:mod:`collectors.spool.http_framing`). The server around the app, and the limits it puts on
connections and request heads, are :mod:`collectors.spool.http_server`'s. A client that
resets is routine and not logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from collectors.otlp.codec import PayloadError
from collectors.spool.decode_pool import DecoderUnavailableError
from collectors.spool.exposition import metrics_response
from collectors.spool.http_framing import (
    BodyTooLargeError,
    HttpLimits,
    expects_continue,
    framing_problem,
    inflate_gzip,
    unread_body_closes,
)
from collectors.spool.limits import SpoolBusyError, SpoolFullError
from collectors.spool.reader import SpoolError
from mapper.core.redact import quoted

if TYPE_CHECKING:
    from collectors.spool.exporter import Exporter, ExportOutcome

__all__ = [
    "JSON",
    "METRICS_PATH",
    "PROTOBUF",
    "TRACES_PATH",
    "OtlpHttpApp",
    "export_response_body",
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
            close = unread_body_closes(headers, self.receiver.max_body_bytes)
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
            close = unread_body_closes(headers, limit)
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
                    # read it, so the client gets the 413, not a reset; but never ask for a body
                    # that will be refused: a client waiting for 100 Continue gets the 413 alone
                    # (RFC 9110 10.1.1; receive() would send the 100 Continue)
                    if int(length_text) <= 2 * limit and not expects_continue(headers):
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
