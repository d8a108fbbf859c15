"""Benchmark-only baseline: ``latmap serve``'s OTLP/HTTP as it was before the uvicorn move.

The standard library's ``ThreadingHTTPServer`` with the handler the receiver had (a thread per
connection, the framing checks of RFC 9112 6.1 done by hand), in front of the same
:class:`~collectors.spool.receiver.Receiver` (``export``: decode pool, spool, fsync before the
ack). ``benchmarks/trace_ingest.py`` runs it beside the product's server in one run, so the
move's cost or gain is measured, not remembered. Not part of the product: nothing imports it.

Usage: ``python benchmarks/stdlib_receiver.py SPOOL_DIR PORT`` (serves until SIGTERM/SIGINT).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from prometheus_client import generate_latest  # noqa: E402
from prometheus_client.exposition import CONTENT_TYPE_LATEST  # noqa: E402

from collectors.otlp.codec import PayloadError  # noqa: E402
from collectors.spool.decode_pool import DecoderUnavailableError  # noqa: E402
from collectors.spool.http_app import JSON, METRICS_PATH, PROTOBUF, TRACES_PATH  # noqa: E402
from collectors.spool.http_app import export_response_body as _response_body  # noqa: E402
from collectors.spool.http_app import status_body as _status_body  # noqa: E402
from collectors.spool.http_framing import BodyTooLargeError, framing_problem, inflate_gzip  # noqa: E402
from collectors.spool.receiver import Receiver  # noqa: E402
from collectors.spool.store import Spool, SpoolBusyError, SpoolError, SpoolFullError, SpoolLimits  # noqa: E402

_framing_problem = framing_problem
log = logging.getLogger(__name__)


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
            self._send(200, generate_latest(self.server.receiver.registry), CONTENT_TYPE_LATEST)
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



def main(argv: list[str]) -> int:
    directory, port = argv[0], int(argv[1])
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    limits = SpoolLimits(max_disk_bytes=10 << 30, retention_days=7)  # latmap serve's defaults
    with Spool(directory, limits) as spool:
        receiver = Receiver(spool, http=None, grpc=None)  # the decode pool and export(), no listener
        receiver.start()
        server = _HttpServer(("127.0.0.1", port), receiver)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        thread.start()
        try:
            done.wait()
        finally:
            server.shutdown()
            server.close_connections(5.0)
            server.server_close()
            receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
