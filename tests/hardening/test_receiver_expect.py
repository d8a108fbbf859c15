"""``Expect: 100-continue`` (RFC 9110 10.1.1): the receiver never invites a body it will refuse.
A client announcing a body over the limit gets 413 without ``100 Continue``; any answer given
without reading the body of such a client closes the connection (its next bytes are unknown);
a body within the limit is invited and taken."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collectors.spool.receiver import Receiver
from collectors.spool.store import Spool, SpoolLimits

LIMIT = 64 << 10


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    spool = Spool(tmp_path_factory.mktemp("spool"), SpoolLimits(compact_interval=3600), compact=False)
    rx = Receiver(spool, http="127.0.0.1:0", grpc=None, token="tok", max_body_bytes=LIMIT, decode_workers=0)
    rx.start()
    yield rx
    rx.stop()
    spool.close()


def _head(length: int, *, auth: bool = True, ctype: str = "application/x-protobuf") -> bytes:
    return (f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {length}\r\n"
            + ("Authorization: Bearer tok\r\n" if auth else "") + "Expect: 100-continue\r\n\r\n").encode()


def _first_answer(sock: socket.socket) -> bytes:
    """Everything the server sends before it closes or goes quiet for a second."""
    sock.settimeout(1.0)
    got = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        got += chunk
    return got


def _closed(sock: socket.socket) -> bool:
    sock.settimeout(5.0)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("length", [LIMIT + 1, 2 * LIMIT, 2 * LIMIT + 1, 10**12])
def test_a_body_announced_over_the_limit_gets_413_without_100_continue(receiver: Receiver, length: int) -> None:
    with socket.create_connection(("127.0.0.1", receiver.http_port or 0)) as sock:
        sock.sendall(_head(length))
        answer = _first_answer(sock)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
        assert b"100 Continue" not in answer
        assert _closed(sock)


@pytest.mark.parametrize(("auth", "ctype", "status"), [(False, "application/x-protobuf", b"401"),
                                                       (True, "text/plain", b"415")])
def test_a_refusal_before_the_body_closes_and_never_invites_it(receiver: Receiver, auth: bool, ctype: str,
                                                               status: bytes) -> None:
    with socket.create_connection(("127.0.0.1", receiver.http_port or 0)) as sock:
        sock.sendall(_head(100, auth=auth, ctype=ctype))
        answer = _first_answer(sock)
        assert answer.startswith(b"HTTP/1.1 " + status) and b"100 Continue" not in answer
        assert b"connection: close" in answer.lower()


def test_a_body_within_the_limit_is_invited_and_taken(receiver: Receiver, tmp_path: Path) -> None:
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    now = time.time_ns()
    span.trace_id, span.span_id = (7).to_bytes(16, "big"), (7).to_bytes(8, "big")
    span.start_time_unix_nano, span.end_time_unix_nano, span.name = now, now + 1000, "op"
    body = req.SerializeToString()
    with socket.create_connection(("127.0.0.1", receiver.http_port or 0)) as sock:
        sock.sendall(_head(len(body)))
        sock.settimeout(10)
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        assert _first_answer(sock).startswith(b"HTTP/1.1 200 ")
