"""Decoding OTLP request bodies off the receiver's main thread: in worker processes.

Decoding is CPU in this process's GIL, which would keep it on one core in threads, so the
receiver hands bodies to plain subprocesses over pipes (length-prefixed frames: the body in,
the counts and the spool record of the decoded columns back). The worker frames the record
itself (its CRC32 is computed there, in parallel, not on the receiver's event loop), and the
receiver reads the answer into one buffer and hands the record on without copying it. A
worker that dies costs one 503 and is replaced. ``decode_workers=0`` decodes in the calling
process instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable

import numpy as np

from collectors.otlp.codec import PayloadError
from collectors.otlp.json import decode_json
from collectors.otlp.protobuf import decode_protobuf
from collectors.spool.payload import encode_payload, record
from mapper.core.errors import LatmapError
from mapper.core.spans import SpanBatch

log = logging.getLogger(__name__)


class DecoderUnavailableError(LatmapError):
    """A decode worker died mid-request (HTTP 503: the client retries)."""


#: (rows kept, reason -> spans rejected, reason -> spans repaired, the spool record of the
#: spans kept or b"": :func:`collectors.spool.payload.record` of their Arrow IPC payload)
DecodeResult = tuple[int, dict[str, int], dict[str, int], bytes | memoryview]
#: Reasons a span that decoded well is refused for its start time (``partial_success``, the
#: rejected counter); the limits are :func:`collectors.spool.limits.accepted_starts`'s. Here, not
#: there, so that a decode worker does not import the spool's reader (Parquet, datasets).
OLDER_THAN_RETENTION = "older than the retention"
TOO_FAR_AHEAD = "starts too far in the future"
#: The span start times (Unix ns, inclusive; None: open) an export may keep (see
#: :func:`collectors.spool.limits.accepted_starts`); the others are rejected with their reason.
Starts = tuple[int | None, int | None]
_ENCODINGS = ("protobuf", "json")
_REQ = struct.Struct("<BIqq")  # encoding index, body length, lowest and highest start kept
_INT64 = (-(2**63), 2**63 - 1)  # an open end of Starts on the pipe
_RESP = struct.Struct("<BII")  # status (0 ok, 1 bad payload, 2 internal), meta length, payload length
_ANSWER_READ = 1 << 20  # an answer's first read takes this much if it is there (the pipe's size)


def decode_request(body: bytes, encoding: str, starts: Starts = (None, None)) -> DecodeResult:
    """Decode an export body (``"protobuf"`` or ``"json"``) into a spool record; PayloadError if bad.

    Spans that start outside ``starts`` are left out and counted under
    :data:`~collectors.spool.limits.OLDER_THAN_RETENTION` / :data:`~collectors.spool.limits.TOO_FAR_AHEAD`
    (after the decoder's own reasons: a span is counted once).
    """
    decoded = decode_protobuf(body) if encoding == "protobuf" else decode_json(body, request=True)
    rejected = {k: int(v) for k, v in decoded.rejected.items()}
    # the repairs are counted over the spans that decoded, those refused here for their time included
    warnings = {k: int(v) for k, v in decoded.warnings.items()}
    batch = decoded.batch
    lo, hi = starts
    if len(batch) and (lo is not None or hi is not None):
        start = batch.start_ns
        old = start < lo if lo is not None else np.zeros(start.size, dtype=bool)
        ahead = start > hi if hi is not None else np.zeros(start.size, dtype=bool)
        for reason, mask in ((OLDER_THAN_RETENTION, old), (TOO_FAR_AHEAD, ahead)):
            if mask.any():
                rejected[reason] = int(mask.sum())
        if old.any() or ahead.any():
            batch = batch.take(np.flatnonzero(~(old | ahead)))
    return _encoded(batch, rejected, warnings)


def _encoded(batch: SpanBatch, rejected: dict[str, int], warnings: dict[str, int]) -> DecodeResult:
    rows = len(batch)
    return rows, rejected, warnings, record(encode_payload(batch)) if rows else b""


def _read_exact(fd: int, n: int) -> bytes | None:
    """``n`` bytes from ``fd``; None on EOF before the first byte, EOFError on EOF after it.

    ``fd`` may be non-blocking (the receiver's ends of the pipes are: see :class:`_Worker`).
    """
    if n == 0:
        return b""
    parts: list[bytes] = []
    got = 0
    while got < n:
        try:
            chunk = os.read(fd, min(n - got, 1 << 20))
        except BlockingIOError:
            select.select([fd], [], [])
            continue
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
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:  # a non-blocking fd whose pipe is full
            select.select([], [fd], [])


def _writev_all(fd: int, parts: list[bytes | memoryview]) -> None:
    """Write ``parts`` back to back, in one system call when the pipe has room: the reader
    (often an event loop) then wakes once for the whole answer."""
    views = [memoryview(p) for p in parts if p]
    while views:
        n = os.writev(fd, views)
        while views and n >= views[0].nbytes:
            n -= views[0].nbytes
            views.pop(0)
        if views and n:
            views[0] = views[0][n:]


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, write: bool) -> None:
    """Wait on the event loop until ``fd`` can be read (or written), without a thread."""
    fut: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not fut.done():
            fut.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await fut
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def _write_all_async(loop: asyncio.AbstractEventLoop, fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            await _ready(loop, fd, True)


async def _read_exact_async(loop: asyncio.AbstractEventLoop, fd: int, n: int, most: int = 0) -> bytes:
    """``n`` bytes from the non-blocking ``fd`` (up to ``most`` when more are there), waiting
    on the loop; EOFError on EOF."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        try:
            chunk = os.read(fd, max(min(n - got, 1 << 20), most))
        except BlockingIOError:
            await _ready(loop, fd, False)
            continue
        if not chunk:
            raise EOFError(f"pipe closed after {got} of {n} bytes")
        parts.append(chunk)
        got += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def _read_into_async(loop: asyncio.AbstractEventLoop, fd: int, view: memoryview) -> None:
    """Fill ``view`` from the non-blocking ``fd``, waiting on the loop; EOFError on EOF."""
    got, n = 0, view.nbytes
    while got < n:
        try:
            k = os.readv(fd, [view[got:]])
        except BlockingIOError:
            await _ready(loop, fd, False)
            continue
        if not k:
            raise EOFError(f"pipe closed after {got} of {n} bytes")
        got += k


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
        enc, length, lo, hi = _REQ.unpack(head)
        body = _read_exact(0, length)
        if body is None:
            raise EOFError("request cut short")
        try:
            rows, rejected, warnings, payload = decode_request(
                body, _ENCODINGS[enc], (None if lo == _INT64[0] else lo, None if hi == _INT64[1] else hi))
            status, meta = 0, json.dumps([rows, rejected, warnings]).encode()
        except PayloadError as err:
            status, meta, payload = 1, str(err).encode(), b""
        except Exception as err:  # a bug: answer it (HTTP 500) rather than die
            status, meta, payload = 2, f"{type(err).__name__}: {err}".encode(), b""
        _writev_all(out, [_RESP.pack(status, len(meta), len(payload)) + meta, payload])


def _request_head(body: bytes, encoding: str, starts: Starts) -> bytes:
    lo, hi = starts
    return _REQ.pack(_ENCODINGS.index(encoding), len(body), _INT64[0] if lo is None else lo,
                     _INT64[1] if hi is None else hi)


def _answer(status: int, meta: bytes, payload: bytes | memoryview) -> DecodeResult:
    if status == 1:
        raise PayloadError(meta.decode())
    if status == 2:
        raise RuntimeError(f"decode worker: {meta.decode()}")
    rows, rejected, warnings = json.loads(meta)
    return int(rows), rejected, warnings, payload


class _Worker:
    """One decode subprocess; used by one request at a time, from a thread (:meth:`call`) or
    from an event loop (:meth:`call_async`). The receiver's ends of its pipes are non-blocking
    so that the event loop can wait on them; the blocking calls wait in ``select``."""

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
        os.set_blocking(self.w, False)
        os.set_blocking(self.r, False)

    def wait_ready(self) -> None:
        """Block until the worker has imported everything (about a second)."""
        if _read_exact(self.r, 1) != b"R":
            raise LatmapError(f"decode worker {self.proc.pid} did not start (see its stderr)")

    def call(self, body: bytes, encoding: str, starts: Starts) -> DecodeResult:
        _write_all(self.w, _request_head(body, encoding, starts))
        _write_all(self.w, body)
        head = _read_exact(self.r, _RESP.size)
        if head is None:
            raise EOFError("decode worker exited")
        status, meta_len, payload_len = _RESP.unpack(head)
        meta = _read_exact(self.r, meta_len)
        payload = _read_exact(self.r, payload_len)
        if meta is None or payload is None:
            raise EOFError("decode worker exited mid-answer")
        return _answer(status, meta, payload)

    async def call_async(self, body: bytes, encoding: str, starts: Starts) -> tuple[int, bytes, memoryview]:
        """:meth:`call` on the running event loop (the pipes are waited on, not a thread);
        the answer's (status, meta, payload) for :func:`_answer`."""
        loop = asyncio.get_running_loop()
        head = _request_head(body, encoding, starts)
        await _write_all_async(loop, self.w, head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            await _write_all_async(loop, self.w, body)
        # one answer is outstanding, so a read of "whatever is there" never takes the next one's bytes
        first = b""
        while len(first) < _RESP.size:
            first += await _read_exact_async(loop, self.r, _RESP.size - len(first), _ANSWER_READ)
        status, meta_len, payload_len = _RESP.unpack_from(first)
        size = _RESP.size + meta_len + payload_len
        if len(first) > size:
            raise EOFError("decode worker sent more than one answer")
        if len(first) < size:  # the rest straight into one buffer: no copy per chunk, none after
            buf = bytearray(size)
            buf[:len(first)] = first
            await _read_into_async(loop, self.r, memoryview(buf)[len(first):])
            data = memoryview(buf)[_RESP.size:]
        else:
            data = memoryview(first)[_RESP.size:]
        return status, bytes(data[:meta_len]), data[meta_len:]

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

    :meth:`decode` blocks its thread (gRPC); :meth:`decode_async` waits on the event loop
    (OTLP/HTTP), so a request there costs no thread hand-off. Both share the idle workers:
    a request that finds none waits in line (first come, first served) for the next one.
    """

    def __init__(self, workers: int) -> None:
        self._lock = threading.Lock()
        self._idle: deque[_Worker] = deque()
        self._waiters: deque[Callable[[_Worker], None]] = deque()
        self._all = [_Worker() for _ in range(workers)]
        for w in self._all:
            w.wait_ready()  # they start in parallel; the first request must not wait for imports
            self._idle.append(w)
        self._closed = False

    # -- lending workers ----------------------------------------------------------------

    def _take(self) -> _Worker:
        with self._lock:
            if self._idle:
                return self._idle.popleft()
            got: list[_Worker] = []
            ready = threading.Event()

            def give(w: _Worker) -> None:
                got.append(w)
                ready.set()

            self._waiters.append(give)
        ready.wait()
        return got[0]

    async def _take_async(self) -> _Worker:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._idle:
                return self._idle.popleft()
            fut: asyncio.Future[_Worker] = loop.create_future()

            def hand(w: _Worker) -> None:  # on the loop
                if fut.cancelled():
                    self._give_back(w)  # its request is gone: the next in line gets it
                else:
                    fut.set_result(w)

            loop_thread = threading.get_ident()

            def give(w: _Worker) -> None:  # any thread
                if threading.get_ident() == loop_thread:
                    hand(w)  # given back by another request on this loop: no wake-up needed
                    return
                try:
                    loop.call_soon_threadsafe(hand, w)
                except RuntimeError:  # the loop is closed: nobody waits there any more
                    self._give_back(w)

            self._waiters.append(give)
        return await fut

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if not self._waiters:
                self._idle.append(worker)
                return
            give = self._waiters.popleft()
        give(worker)

    def _replace(self, worker: _Worker) -> _Worker:
        """A new worker in place of ``worker`` (which failed); blocks about a second."""
        worker.close()
        replacement = _Worker()
        try:
            replacement.wait_ready()
        except BaseException:
            replacement.close()
            raise
        with self._lock:
            self._all = [replacement if w is worker else w for w in self._all]
        return replacement

    def _replace_and_give_back(self, worker: _Worker) -> None:
        if self._closed:
            worker.close()
            return
        try:
            self._give_back(self._replace(worker))
        except Exception as err:  # pragma: no cover (a worker that cannot start)
            log.error("cannot start a decode worker: %s", err)

    # -- decoding -----------------------------------------------------------------------

    def decode(self, body: bytes, encoding: str, starts: Starts = (None, None)) -> DecodeResult:
        worker = self._take()
        try:
            return worker.call(body, encoding, starts)
        except (OSError, EOFError) as err:
            if self._closed:
                raise DecoderUnavailableError("receiver is stopping; retry") from err
            log.error("decode worker %d failed (%s); starting another", worker.proc.pid, err)
            worker = self._replace(worker)
            raise DecoderUnavailableError("decode worker failed; retry") from err
        finally:
            self._give_back(worker)

    async def decode_async(self, body: bytes, encoding: str, starts: Starts = (None, None)) -> DecodeResult:
        """:meth:`decode` on the running event loop (which it never blocks)."""
        worker = await self._take_async()
        try:
            answer = await worker.call_async(body, encoding, starts)
        except (OSError, EOFError) as err:
            if self._closed:
                self._give_back(worker)
                raise DecoderUnavailableError("receiver is stopping; retry") from err
            log.error("decode worker %d failed (%s); starting another", worker.proc.pid, err)
            threading.Thread(target=self._replace_and_give_back, args=(worker,), name="decode-respawn",
                             daemon=True).start()
            raise DecoderUnavailableError("decode worker failed; retry") from err
        except BaseException:
            # cancelled mid-conversation: the worker's pipes hold half a frame; start afresh
            threading.Thread(target=self._replace_and_give_back, args=(worker,), name="decode-respawn",
                             daemon=True).start()
            raise
        self._give_back(worker)
        return _answer(*answer)

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._all]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for w in self._all:
                w.close()
