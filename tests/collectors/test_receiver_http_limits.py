"""The OTLP/HTTP stack's own limits, with raw sockets against a receiver with tight ones:
a request head dripped byte by byte (slowloris) or too large, a body that does not arrive
in time, more connections than allowed; a slow client does not hold up the others."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.spool.receiver import HttpLimits, Receiver
from collectors.spool.store import Spool, SpoolLimits
from mapper.demo.localprom import free_port
from tests.collectors.test_receiver import otlp_request, post
from tests.paths import ROOT

LIMITS = HttpLimits(max_connections=8, max_head_bytes=4096, head_timeout=1.0, body_timeout=1.0, keep_alive=2)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    spool = Spool(tmp_path_factory.mktemp("spool"), SpoolLimits(compact_interval=3600))
    r = Receiver(spool, http="127.0.0.1:0", grpc=None, decode_workers=0, http_limits=LIMITS)
    with r:
        yield r
    spool.close()


def _read_all(sock: socket.socket, wait: float = 5.0) -> tuple[bytes, bool]:
    """What the server sends until it closes (True) or ``wait`` seconds pass (False)."""
    sock.settimeout(wait)
    out = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return out, True
            out += chunk
    except (TimeoutError, ConnectionResetError):
        return out, False


def test_a_head_dripped_slowly_is_closed_at_the_head_deadline(receiver: Receiver) -> None:
    with socket.create_connection(("127.0.0.1", receiver.http_port or 0)) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\n")
        closed = False
        for _ in range(40):
            try:
                sock.sendall(b"X-Drip: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.1)
        if not closed:
            _, closed = _read_all(sock, 2)
        assert closed and time.monotonic() - started < 4


def test_a_silent_connection_is_closed_at_the_head_deadline(receiver: Receiver) -> None:
    with socket.create_connection(("127.0.0.1", receiver.http_port or 0)) as sock:
        out, closed = _read_all(sock, 4)
        assert closed and out == b""


def test_a_head_over_the_limit_is_400_and_closed(receiver: Receiver) -> None:
    with socket.create_connection(("127.0.0.1", receiver.http_port or 0)) as sock:
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 8000 + b"\r\n\r\n")
        out, closed = _read_all(sock)
        assert out.startswith(b"HTTP/1.1 400") and closed


def test_a_head_over_the_limit_in_many_pieces_is_400_and_closed(receiver: Receiver) -> None:
    with socket.create_connection(("127.0.0.1", receiver.http_port or 0)) as sock:
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
        with contextlib.suppress(OSError):
            for i in range(12):  # 12 x ~500 bytes, each its own segment, never a blank line
                sock.sendall(b"X-Part-%d: " % i + b"a" * 500 + b"\r\n")
                time.sleep(0.02)
        out, closed = _read_all(sock)
        assert out.startswith(b"HTTP/1.1 400") and closed


def test_a_body_that_does_not_arrive_in_time_is_408_and_closed(receiver: Receiver) -> None:
    with socket.create_connection(("127.0.0.1", receiver.http_port or 0)) as sock:
        sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                     b"Content-Length: 1000\r\n\r\n" + b"\x0a" * 10)
        out, closed = _read_all(sock, 5)
        assert out.startswith(b"HTTP/1.1 408") and closed


def test_past_the_connection_cap_new_requests_are_503_and_old_ones_still_work(receiver: Receiver) -> None:
    held = [socket.create_connection(("127.0.0.1", receiver.http_port or 0)) for _ in range(LIMITS.max_connections)]
    try:
        for s in held:
            s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                      b"Content-Length: 100\r\n\r\n")  # a body that is still to come
        # the held connections are accepted by the event loop in its own time (later under a
        # loaded machine): ask until they are all in, then a new request must be turned away
        deadline = time.monotonic() + 10
        while True:
            status, _, _ = post(receiver.http_port or 0, otlp_request(2), {"Content-Type": "application/x-protobuf"})
            if status == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status == 503
    finally:
        for s in held:
            s.close()
    time.sleep(0.3)
    status, _, _ = post(receiver.http_port or 0, otlp_request(2), {"Content-Type": "application/x-protobuf"})
    assert status == 200


def test_a_slow_client_does_not_hold_up_the_others(receiver: Receiver) -> None:
    """The event loop is never blocked: while one body trickles in (and before its deadline
    ends it), other exports are answered."""
    stop = threading.Event()
    slow_answered = threading.Event()

    def slow() -> None:
        with socket.create_connection(("127.0.0.1", receiver.http_port or 0)) as sock:
            sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                         b"Content-Length: 100000\r\n\r\n")
            sock.settimeout(0.05)
            while not stop.is_set():
                with contextlib.suppress(OSError):
                    sock.sendall(b"\x00")
                try:
                    if sock.recv(100):
                        slow_answered.set()
                        return
                except TimeoutError:
                    pass
                except OSError:
                    slow_answered.set()
                    return

    t = threading.Thread(target=slow)
    t.start()
    try:
        time.sleep(0.1)
        for i in range(5):
            status, _, _ = post(receiver.http_port or 0, otlp_request(3, trace=900 + i),
                                {"Content-Type": "application/x-protobuf"})
            assert status == 200
        assert not slow_answered.is_set(), "the exports waited for the slow client's deadline"
    finally:
        stop.set()
        t.join()


def test_serve_max_connections_flag_caps_connections(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mapper", "serve", "--spool", str(tmp_path / "spool"), "--http",
                             f"127.0.0.1:{port}", "--grpc", "off", "--decode-workers", "0", "--max-connections", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    held: list[socket.socket] = []
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith(b"latmap serve: OTLP/HTTP port")
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        time.sleep(0.2)
        status, _, _ = post(port, otlp_request(1), {"Content-Type": "application/x-protobuf"})
        assert status == 503
        for s in held:
            s.close()
        held = []
        time.sleep(0.3)
        status, _, _ = post(port, otlp_request(1), {"Content-Type": "application/x-protobuf"})
        assert status == 200
    finally:
        for s in held:
            s.close()
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
