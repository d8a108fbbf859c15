"""Decoding OTLP request bodies off the receiver's main thread: in worker processes.

Decoding is pure Python per span and the GIL would keep it on one core in threads, so the
receiver hands bodies to plain subprocesses over pipes (length-prefixed frames: the body in,
the Arrow payload of the decoded columns and the counts back). A worker that dies costs
one 503 and is replaced. ``decode_workers=0`` decodes in the calling process instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import struct
import subprocess
import sys

from collectors.otlp.codec import PayloadError, decode_protobuf
from collectors.otlp.json import decode_json
from collectors.spool.payload import encode_payload
from mapper.core.errors import LatmapError

log = logging.getLogger(__name__)


class DecoderUnavailableError(LatmapError):
    """A decode worker died mid-request (HTTP 503: the client retries)."""


#: (rows kept, reason -> spans rejected, reason -> spans repaired, Arrow IPC payload or b"")
DecodeResult = tuple[int, dict[str, int], dict[str, int], bytes]
_ENCODINGS = ("protobuf", "json")
_REQ = struct.Struct("<BI")  # encoding index, body length
_RESP = struct.Struct("<BII")  # status (0 ok, 1 bad payload, 2 internal), meta length, payload length


def decode_request(body: bytes, encoding: str) -> DecodeResult:
    """Decode an export body (``"protobuf"`` or ``"json"``) into a spool payload; PayloadError if bad."""
    decoded = decode_protobuf(body) if encoding == "protobuf" else decode_json(body)
    rows = len(decoded.batch)
    payload = encode_payload(decoded.batch).to_pybytes() if rows else b""
    return (rows, {k: int(v) for k, v in decoded.rejected.items()},
            {k: int(v) for k, v in decoded.warnings.items()}, payload)


def _read_exact(fd: int, n: int) -> bytes | None:
    """``n`` bytes from ``fd``; None on EOF before the first byte, EOFError on EOF after it."""
    if n == 0:
        return b""
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            if got == 0:
                return None
            raise EOFError(f"pipe closed after {got} of {n} bytes")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _widen_pipe(fd: int) -> None:
    """Ask Linux for a 1 MiB pipe buffer: a request crosses in a few writes instead of dozens."""
    with contextlib.suppress(OSError, AttributeError):
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)  # type: ignore[attr-defined]


def worker_main() -> None:
    """A decode worker: framed requests on stdin, framed :data:`DecodeResult` on stdout, until EOF.

    A parent that went away (killed with SIGKILL, even during start-up) closes the pipes: the
    worker then exits quietly, without a BrokenPipe traceback per worker in the log.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops us
    try:
        _worker_loop()
    except (BrokenPipeError, EOFError, ConnectionError):
        os._exit(0)  # no flush of stdio into a pipe nobody reads


def _worker_loop() -> None:
    out = os.dup(1)
    os.dup2(2, 1)  # anything printed by accident goes to stderr, not into the protocol
    _widen_pipe(0)
    _widen_pipe(out)
    _write_all(out, b"R")  # imports done: ready
    while True:
        head = _read_exact(0, _REQ.size)
        if head is None:
            return
        enc, length = _REQ.unpack(head)
        body = _read_exact(0, length)
        if body is None:
            raise EOFError("request cut short")
        try:
            rows, rejected, warnings, payload = decode_request(body, _ENCODINGS[enc])
            status, meta = 0, json.dumps([rows, rejected, warnings]).encode()
        except PayloadError as err:
            status, meta, payload = 1, str(err).encode(), b""
        except Exception as err:  # a bug: answer it (HTTP 500) rather than die
            status, meta, payload = 2, f"{type(err).__name__}: {err}".encode(), b""
        _write_all(out, _RESP.pack(status, len(meta), len(payload)) + meta)
        _write_all(out, payload)


class _Worker:
    """One decode subprocess; used by one request thread at a time."""

    def __init__(self) -> None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        code = "from collectors.spool.decode_pool import worker_main; worker_main()"
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env, bufsize=0)
        stdin, stdout = self.proc.stdin, self.proc.stdout
        if stdin is None or stdout is None:  # pragma: no cover (PIPE always gives both)
            raise LatmapError("decode worker has no pipes")
        self.w, self.r = stdin.fileno(), stdout.fileno()
        _widen_pipe(self.w)

    def wait_ready(self) -> None:
        """Block until the worker has imported everything (about a second)."""
        if _read_exact(self.r, 1) != b"R":
            raise LatmapError(f"decode worker {self.proc.pid} did not start (see its stderr)")

    def call(self, body: bytes, encoding: str) -> DecodeResult:
        _write_all(self.w, _REQ.pack(_ENCODINGS.index(encoding), len(body)))
        _write_all(self.w, body)
        head = _read_exact(self.r, _RESP.size)
        if head is None:
            raise EOFError("decode worker exited")
        status, meta_len, payload_len = _RESP.unpack(head)
        meta = _read_exact(self.r, meta_len)
        payload = _read_exact(self.r, payload_len)
        if meta is None or payload is None:
            raise EOFError("decode worker exited mid-answer")
        if status == 1:
            raise PayloadError(meta.decode())
        if status == 2:
            raise RuntimeError(f"decode worker: {meta.decode()}")
        rows, rejected, warnings = json.loads(meta)
        return int(rows), rejected, warnings, payload

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            self.proc.stdout.close()  # type: ignore[union-attr]


class DecodePool:
    """Decode worker processes, so that decoding uses every core instead of one GIL.

    Decoding a request is pure CPU in Python (~3.5 us a span); in threads the GIL serialises
    it. Workers are plain subprocesses talking length-prefixed frames over pipes (no fork of
    a process running gRPC threads, no pickling): the body goes in, the Arrow IPC payload the
    spool writes comes back, so the receiving process only moves bytes. A worker that dies is
    replaced; its request answers 503 and is retried by the client.
    """

    def __init__(self, workers: int) -> None:
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all = [_Worker() for _ in range(workers)]
        for w in self._all:
            w.wait_ready()  # they start in parallel; the first request must not wait for imports
            self._idle.put(w)
        self._closed = False

    def decode(self, body: bytes, encoding: str) -> DecodeResult:
        worker = self._idle.get()
        try:
            return worker.call(body, encoding)
        except (OSError, EOFError) as err:
            if self._closed:
                raise DecoderUnavailableError("receiver is stopping; retry") from err
            log.error("decode worker %d failed (%s); starting another", worker.proc.pid, err)
            worker.close()
            replacement = _Worker()
            replacement.wait_ready()
            self._all = [replacement if w is worker else w for w in self._all]
            worker = replacement
            raise DecoderUnavailableError("decode worker failed; retry") from err
        finally:
            self._idle.put(worker)

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._all]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for w in self._all:
                w.close()
