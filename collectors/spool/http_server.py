"""The OTLP/HTTP server: uvicorn serving :class:`~collectors.spool.http_app.OtlpHttpApp` on its
own thread and event loop, with the httptools parser and the connection limits uvicorn lacks.

Why uvicorn + httptools (llhttp, the parser of Node.js) and not h11: checked request by
request, llhttp itself refuses every ambiguous framing of RFC 9112 §6.1-6.3 with 400 and
closes the connection (see :mod:`collectors.spool.http_framing`), while h11 0.16 answers
``CL + TE`` and ``obs-fold`` as a valid request and keeps the connection open. It is also
the faster of the two.

Limits (:class:`~collectors.spool.http_framing.HttpLimits`): connections and requests in
flight (uvicorn's ``limit_concurrency``: past it a new request is answered 503), the request
head (URL and headers) in bytes and in time from its first byte (slowloris; :class:`_Protocol`),
idle keep-alive connections. A malformed request is routine and logged at debug, never with a
traceback (:class:`_QuietParserErrors`): anyone on the port could flood the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from collectors.spool.http_app import OtlpHttpApp
from collectors.spool.http_framing import HttpLimits

if TYPE_CHECKING:
    from collectors.spool.exporter import Exporter

__all__ = ["BODY_BUFFER", "HttpServer"]

log = logging.getLogger(__name__)


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
