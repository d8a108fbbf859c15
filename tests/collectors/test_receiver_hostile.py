"""The receiver against hostile clients, with raw sockets: ambiguous request framing (request
smuggling) is answered 400 and the connection closed; clients that reset leave no traceback;
a gRPC body that is not protobuf is INVALID_ARGUMENT, and the token is checked before the
body is looked at."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from collectors.spool.receiver import TRACE_SERVICE, Receiver
from collectors.spool.store import Spool, SpoolLimits

TOKEN = "t0k3n-hostile-tests"
SMUGGLED = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    spool = Spool(tmp_path_factory.mktemp("spool"), SpoolLimits(compact_interval=3600))
    r = Receiver(spool, http="127.0.0.1:0", grpc="127.0.0.1:0", token=TOKEN, decode_workers=0)
    with r:
        yield r
    spool.close()


def _exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` and read until the server closes (or 5 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        out = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                return out
            out += chunk
    raise AssertionError(f"the connection stayed open after {out[:200]!r}")


HEAD = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + \
    b"\r\nContent-Type: application/x-protobuf\r\n"


@pytest.mark.parametrize("headers", [
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    b"Transfer-Encoding: xchunked\r\n",
    b"Transfer-Encoding: chunked, identity\r\n",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    b"Transfer-Encoding:\r\n chunked\r\n",  # obs-fold
    b"Transfer-Encoding : chunked\r\n",
    b"Content-Length: 0\r\nContent-Length: 38\r\n",
    b"Content-Length: 0\r\nContent-Length: 0\r\n",
    b"Content-Length: 0, 0\r\n",
    b"Content-Length: +5\r\n",
])
def test_ambiguous_framing_is_refused_by_the_parser_and_the_connection_closes(receiver: Receiver,
                                                                              headers: bytes) -> None:
    """The parser (llhttp) refuses these itself: 400 and close, before the app is called."""
    body = b"0\r\n\r\n" + SMUGGLED if b"chunked" in headers else SMUGGLED
    answer = _exchange(receiver.http_port or 0, HEAD + headers + b"\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.count(b"HTTP/1.") == 1, "the smuggled request was answered"
    assert b"connection: close" in answer.lower()


def test_a_transfer_coding_before_chunked_is_refused_by_the_app(receiver: Receiver) -> None:
    """llhttp lets ``gzip, chunked`` through (the last coding is chunked); the app refuses it."""
    answer = _exchange(receiver.http_port or 0, HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
                       + SMUGGLED)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"Transfer-Encoding other than chunked" in answer
    assert answer.count(b"HTTP/1.") == 1 and b"connection: close" in answer.lower()


def test_malformed_requests_do_not_flood_the_log(receiver: Receiver, capfd: pytest.CaptureFixture[str],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    for _ in range(30):
        _exchange(receiver.http_port or 0, b"POST /v1/traces HTTP/1.1\r\nContent-Length: 1\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        _exchange(receiver.http_port or 0, b"\x16\x03\x01 not http at all\r\n\r\n")
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert not [r for r in caplog.records if r.levelno >= 30], [r.getMessage() for r in caplog.records][:5]
    assert any("Invalid HTTP request" in r.getMessage() for r in caplog.records)  # at debug


def test_clients_that_reset_leave_no_traceback(receiver: Receiver, capfd: pytest.CaptureFixture[str],
                                               caplog: pytest.LogCaptureFixture) -> None:
    for i in range(20):
        sock = socket.create_connection(("127.0.0.1", receiver.http_port or 0), timeout=5)
        sock.sendall(HEAD + b"Content-Length: 100000\r\n\r\n" + b"x" * (i * 100))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
        sock.close()
    time.sleep(0.5)
    # the receiver still answers
    assert _exchange(receiver.http_port or 0, b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                     ).startswith(b"HTTP/1.1 404")
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") or r.exc_info]


def _raw_export(port: int, body: bytes, token: str | None) -> grpc.RpcError:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(f"/{TRACE_SERVICE}/Export")  # no serializers: raw bytes
        metadata = (("authorization", f"Bearer {token}"),) if token else None
        with pytest.raises(grpc.RpcError) as err:
            call(body, metadata=metadata, timeout=10)
    return err.value


@pytest.mark.parametrize("body", [b"\xff\xff\xff\xff not protobuf", b"\x0a\x05abc", b"\x0a\xff\xff\xff\xff\x0f"])
def test_grpc_body_that_is_not_protobuf_is_invalid_argument(receiver: Receiver, body: bytes,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    err = _raw_export(receiver.grpc_port or 0, body, TOKEN)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "protobuf" in (err.details() or "")
    assert "Traceback" not in "".join(capfd.readouterr())


def test_grpc_token_is_checked_before_the_body_is_parsed(receiver: Receiver) -> None:
    for token in (None, "wrong"):
        err = _raw_export(receiver.grpc_port or 0, b"\xff\xff not protobuf", token)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED


def test_grpc_still_takes_real_exports(receiver: Receiver, tmp_path: Path) -> None:
    from tests.collectors.test_receiver import otlp_request

    with grpc.insecure_channel(f"127.0.0.1:{receiver.grpc_port}") as channel:
        call = channel.unary_unary(f"/{TRACE_SERVICE}/Export")
        answer = call(otlp_request(3, trace=0x4242), metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=10)
    assert answer == b""  # an empty ExportTraceServiceResponse: everything kept


@pytest.mark.parametrize("cut", ["before the ready byte", "mid-request"])
def test_a_decode_worker_whose_parent_is_gone_exits_without_a_traceback(cut: str) -> None:
    import os
    import subprocess
    import sys

    from tests.paths import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", "from collectors.spool.decode_pool import worker_main; "
                             "worker_main()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    if cut == "before the ready byte":
        proc.stdout.close()  # as if the parent was SIGKILLed during start-up
        proc.stdin.close()
    else:
        assert proc.stdout.read(1) == b"R"
        proc.stdin.write(struct.pack("<BI", 0, 1000) + b"\x0a\x05")  # a request header, then a cut body
        proc.stdin.close()
        proc.stdout.close()
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0 and b"Traceback" not in err, err.decode(errors="replace")


@pytest.mark.parametrize("after", [0.3, 1.5])
def test_sigkill_of_serve_during_start_up_leaves_no_worker_traceback(tmp_path: Path, after: float) -> None:
    """``latmap serve`` killed with SIGKILL while its decode workers start (or just after):
    the workers find their pipes closed and exit without a word."""
    import os
    import signal
    import subprocess
    import sys

    from tests.paths import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "mapper", "serve", "--spool", str(tmp_path / "spool"),
                             "--http", "127.0.0.1:0", "--grpc", "off", "--decode-workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    time.sleep(after)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    err = proc.stderr.read()  # EOF once every worker (which shares this stderr) has exited too
    proc.stderr.close()
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode(errors="replace")
