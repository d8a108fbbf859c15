"""The span spool: a directory that makes every acknowledged OTLP export durable.

Layout (``DIR`` is what ``latmap serve --spool DIR`` names)::

    DIR/_wal/LOCK                              held (flock) by the one process that writes
    DIR/_wal/<created-ns>-<n>.wal              write-ahead segments, appended then compacted
    DIR/date=YYYY-MM-DD/hour=HH/<segment>.parquet

Several writers (``latmap serve --writer-id ID`` replicas behind one load balancer, sharing
one directory, e.g. a ReadWriteMany volume) each hold a *shared* flock on ``_wal/LOCK`` and an
exclusive one on ``_wal/LOCK.<ID>`` (a second writer with the same id is refused at start; a
writer without an id, which compacts every segment, excludes them all and is excluded by
them), and name their segments ``<created-ns>-<n>@<ID>.wal``. Each compacts and tidies only
its own segments, so its Parquet files carry its id too: no file is written by two
processes. Readers read every writer's segments and files.

The Parquet side is a plain hive-partitioned dataset: ``pyarrow.dataset.dataset(DIR,
partitioning="hive")`` (or DuckDB, Spark) reads it directly, since dataset discovery ignores
names starting with ``_`` or ``.`` (the WAL and temp files). One row per span, partitioned by
the span's *start* time in UTC; the schema is :func:`mapper.core.spans.parquet_schema`::

    trace_hi, trace_lo      uint64   trace id as two big-endian halves
    span_id, parent_id      uint64   0 = no parent
    link_trace_hi/lo,
    link_span_id            uint64   the span's first link (async hand-over); 0 = none
    links                   list<struct<trace_hi, trace_lo, span_id>>   every link of the span

Spools written before ``links`` existed still read: a missing or null ``links`` means the
span's links are its ``link_*`` first link (:mod:`collectors.spool.links`).
    start_ns, end_ns        int64    Unix nanoseconds
    kind, status            int8     OTLP SpanKind and StatusCode values
    service, name,
    destination, messaging_system,
    peer_service, db_system string   null when absent

plus the partition columns ``date`` (``YYYY-MM-DD``) and ``hour`` (0-23) from the directory
names (pyarrow infers them as string and int32).

Write-ahead segments. A segment starts with the 8-byte magic ``LMSPOOL1``; then one record
per accepted request::

    b"LMR1" | u32 little-endian payload length | u32 CRC32 of the payload | payload

The payload is the Arrow IPC *stream* of the decoded columns (schema as above), not the raw
protobuf: the receiver has to decode the request anyway (to validate it and to answer the
partial-success count), the columns are about half the size of the OTLP bytes (resource and
scope attributes, unused span attributes and events are not kept), so less is written before
each fsync, and reading a segment back is a zero-copy Arrow read instead of a second protobuf
decode. The per-record magic lets a reader resynchronise after a damaged record.

Durability. :meth:`Spool.append` returns only after the record's bytes are on disk
(``fdatasync`` of the segment, and ``fsync`` of ``_wal/`` when the segment was created), so
a caller that acknowledges after it returns never acknowledges something a crash can lose.
One writer thread does all file I/O: callers queue their records and wait; the writer takes
everything queued, writes it with one ``write``, syncs once and wakes all of them (group
commit). While it syncs, new requests queue up, so the batch grows with the load and the cost
of a sync (~0.4 ms here) is shared by every request of the batch.

A crash can leave a torn record at a segment's tail (short header, short payload, bad CRC).
Readers skip it, log a warning and count it; the other records and segments are read. Such a
record was never acknowledged (its sync had not returned).

Damaged segments. A segment that does not start with the magic (overwritten, replaced by
other bytes) cannot be read at all: readers skip it, count it and name it (``SpoolRead``'s
``damaged_segments``; the map shows a ``spool-damaged`` check) so the rest of the spool still
maps, and the writer moves it aside into ``_wal/quarantine/`` when it opens the spool (or when
compaction meets it), where it stays for a person to look at. Segments that hold nothing
but the magic (or not even that: a write that failed with ENOSPC) are removed at open.

Segments rotate by size and age; a closed segment is compacted into one Parquet file per
(date, hour) it touches, each written to a temp name, fsynced and renamed, and only then is
the segment removed (a crash in between leaves both, which readers deduplicate and the next
compaction overwrites). Retention drops hour partitions and segments older than N days.
Capacity: bytes on disk and bytes queued for the writer are bounded; past either,
:meth:`Spool.append` raises :class:`SpoolFullError` / :class:`SpoolBusyError` with a
``retry_after`` (seconds) that the receiver turns into 503 / 429 + ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from collectors.spool.payload import decode_payload, encode_payload
from collectors.spool.reader import (
    HOUR_NS,
    QUARANTINE_DIR,
    SEGMENT_MAGIC,
    SEGMENT_SUFFIX,
    WAL_DIR,
    WRITER_ID,
    SpoolError,
    SpoolRead,
    looks_like_spool,
    partitions,
    read_segment,
    read_spool,
    record,
    scan_spool,
    segments,
    writer_of,
)
from mapper.core.redact import quoted
from mapper.core.spans import SpanBatch

__all__ = [
    "QUARANTINE_DIR",
    "SEGMENT_MAGIC",
    "Spool",
    "SpoolBusyError",
    "SpoolError",
    "SpoolFullError",
    "SpoolLimits",
    "SpoolRead",
    "SpoolStats",
    "decode_payload",
    "encode_payload",
    "looks_like_spool",
    "read_segment",
    "read_spool",
    "scan_spool",
]

log = logging.getLogger(__name__)

class SpoolBusyError(SpoolError):
    """Too many bytes are waiting for the writer: retry in ``retry_after`` seconds (HTTP 429)."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SpoolFullError(SpoolError):
    """The spool is at its disk limit or closing: retry in ``retry_after`` seconds (HTTP 503)."""

    def __init__(self, message: str, retry_after: int = 30) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class SpoolLimits:
    """Sizes in bytes, times in seconds. ``retention_days=None`` keeps everything."""

    max_disk_bytes: int = 8 << 30
    max_pending_bytes: int = 64 << 20
    segment_bytes: int = 64 << 20
    segment_age: float = 60.0
    compact_interval: float = 30.0
    retention_days: float | None = 7.0
    #: This writer's id among several sharing the directory (None: the only writer); see
    #: the module docstring. Carried here so that whatever opens the spool passes it on.
    writer_id: str | None = None


@dataclass(frozen=True)
class SpoolStats:
    disk_bytes: int  # segments + Parquet files
    segments: int  # write-ahead segments on disk, the active one included
    pending_bytes: int  # queued for the writer, not yet durable
    records: int  # records made durable since the spool was opened
    syncs: int  # group commits (one fdatasync each)
    torn_records: int  # damaged records skipped by compaction
    quarantined: int = 0  # damaged segments moved aside since the spool was opened (at open included)


# --- writing ----------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Append:
    __slots__ = ("done", "error", "future", "loop", "record")

    def __init__(self, record: bytes) -> None:
        self.record = record
        self.done = False
        self.error: BaseException | None = None
        # set when an event loop waits for it (append_payload_async): the writer wakes it there
        self.loop: asyncio.AbstractEventLoop | None = None
        self.future: asyncio.Future[None] | None = None


def _wake(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    """On the waiters' event loop: complete their futures (a cancelled one is left alone)."""
    for fut in futures:
        if not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)


class _Segment:
    """The active segment: an append-only file descriptor."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.size = 0
        self.created = time.monotonic()
        self.needs_dir_sync = True
        _write_all(self.fd, SEGMENT_MAGIC)
        self.size = len(SEGMENT_MAGIC)

    def close(self) -> None:
        os.close(self.fd)


class Spool:
    """The writing side of a spool directory; one per directory (an exclusive lock says so).

    Thread-safe: :meth:`append` is called from many request threads. ``compact=False``
    leaves closed segments alone (compaction then runs only when :meth:`compact` is called).
    """

    def __init__(self, path: str | Path, limits: SpoolLimits | None = None, *, compact: bool = True) -> None:
        self.path = Path(path)
        self.limits = limits or SpoolLimits()
        self.wal = self.path / WAL_DIR
        self.writer_id = self.limits.writer_id
        if self.writer_id is not None and not WRITER_ID.fullmatch(self.writer_id):
            raise SpoolError(f"{self.path}: writer id {quoted(self.writer_id, 70)}: "
                             "use 1-63 letters, digits, '.', '_', '-'")
        self._lock_fds = self._take_locks()
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        self._queue: list[_Append] = []
        self._pending = 0
        self._closing = False
        self._active: _Segment | None = None  # owned by the writer thread
        self._active_path: Path | None = None  # its name, set under the lock before it exists
        self._rotate_asked = self._rotating = False
        self._seq = 0
        self._records = self._syncs = self._torn = 0
        self._compact_lock = threading.Lock()
        self.quarantined_at_open = self._tidy_segments()
        self._quarantined = len(self.quarantined_at_open)
        self._disk = sum(f.stat().st_size for f in segments(self.path))
        self._disk += sum(f.stat().st_size for _, p in partitions(self.path) for f in p.glob("*.parquet"))
        self._n_segments = len(self._own_segments())
        self._writer = threading.Thread(target=self._write_loop, name="spool-writer", daemon=True)
        self._writer.start()
        self._stop = threading.Event()
        self._compactor: threading.Thread | None = None
        if compact:
            self._compactor = threading.Thread(target=self._compact_loop, name="spool-compactor", daemon=True)
            self._compactor.start()

    def __enter__(self) -> Spool:
        return self

    def _take_locks(self) -> list[int]:
        """The directory lock (exclusive without a writer id, shared with one) and the
        writer's own exclusive lock; a SpoolError naming the conflict otherwise."""
        fds: list[int] = []
        wanted = [("LOCK", fcntl.LOCK_EX if self.writer_id is None else fcntl.LOCK_SH)]
        if self.writer_id is not None:
            wanted.append((f"LOCK.{self.writer_id}", fcntl.LOCK_EX))
        try:
            self.wal.mkdir(parents=True, exist_ok=True)
            for name, mode in wanted:
                fd = os.open(self.wal / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                fds.append(fd)
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                except OSError:
                    raise SpoolError(self._conflict(name)) from None
        except OSError as err:
            for fd in fds:
                os.close(fd)
            raise SpoolError(f"{self.path}: cannot open spool: {err.strerror}") from err
        except SpoolError:
            for fd in fds:
                os.close(fd)
            raise
        return fds

    def _conflict(self, lock: str) -> str:
        if self.writer_id is None:
            return f"{self.path}: another process is writing to this spool"
        if lock == "LOCK":
            return (f"{self.path}: a writer without --writer-id holds this spool; every writer sharing a "
                    "spool needs its own --writer-id")
        return f"{self.path}: writer id {self.writer_id!r} is already writing to this spool (ids must be unique)"

    def _own(self, seg: Path) -> bool:
        """Whether ``seg`` is this writer's segment."""
        return writer_of(seg) == self.writer_id

    def _own_segments(self) -> list[Path]:
        return [s for s in segments(self.path) if self._own(s)]

    def _tidy_segments(self) -> tuple[str, ...]:
        """At open (the lock held, no segment active): remove empty segments, move damaged
        ones into ``_wal/quarantine/``; answer the names moved aside."""
        moved = []
        for seg in self._own_segments():
            try:
                with open(seg, "rb") as f:
                    head = f.read(len(SEGMENT_MAGIC))
                    more = f.read(1)
            except OSError as err:
                log.error("%s: cannot read (%s); moving it aside", seg, err.strerror)
                head, more = b"", b"?"
            if head == SEGMENT_MAGIC and more:
                continue
            if not more and SEGMENT_MAGIC.startswith(head):  # created, nothing written: nothing acked
                log.info("%s: empty segment (a write that failed), removed", seg)
                seg.unlink()
                continue
            moved.append(self._quarantine(seg, "not a spool segment (bad magic)"))
        if moved:
            _fsync_dir(self.wal)
        return tuple(moved)

    def _quarantine(self, seg: Path, why: str) -> str:
        """Move ``seg`` into ``_wal/quarantine/`` (kept for a person to look at); its name there."""
        folder = self.wal / QUARANTINE_DIR
        folder.mkdir(exist_ok=True)
        target = folder / seg.name
        n = 0
        while target.exists():
            n += 1
            target = folder / f"{seg.name}.{n}"
        seg.rename(target)
        _fsync_dir(folder)
        log.error("%s: %s; moved aside to %s", seg, why, target)
        return target.name

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- capacity -----------------------------------------------------------------------

    def _check(self, size: int) -> None:
        """Raise when a record of ``size`` bytes cannot be taken now (call with the lock held)."""
        if self._closing:
            raise SpoolFullError(f"{self.path}: spool is closing", retry_after=5)
        if self._disk + self._pending + size > self.limits.max_disk_bytes:
            raise SpoolFullError(f"{self.path}: spool is full ({self._disk} bytes on disk, "
                                 f"limit {self.limits.max_disk_bytes})")
        if self._pending and self._pending + size > self.limits.max_pending_bytes:
            raise SpoolBusyError(f"{self.path}: {self._pending} bytes are waiting for the disk")

    def check_capacity(self) -> None:
        """Raise :class:`SpoolFullError` / :class:`SpoolBusyError` if nothing can be taken now."""
        with self._lock:
            self._check(1)

    # -- appending ----------------------------------------------------------------------

    def append(self, batch: SpanBatch) -> None:
        """Make ``batch`` durable: returns once it is fsynced, raises if it could not be.

        An empty batch is a no-op. Raises :class:`SpoolBusyError` / :class:`SpoolFullError`
        (nothing written) or :class:`SpoolError` (the write or sync failed: nothing may be
        acknowledged; readers skip a partial record).
        """
        if len(batch) == 0:
            return
        self.append_payload(encode_payload(batch))

    def append_payload(self, payload: Any) -> None:
        """:meth:`append` for a payload already encoded by :func:`encode_payload` (bytes-like)."""
        item = _Append(record(payload))
        with self._lock:
            self._check(len(item.record))
            self._queue.append(item)
            self._pending += len(item.record)
            self._work.notify()
            while not item.done:
                if not self._done.wait(timeout=1.0) and not self._writer.is_alive():
                    raise SpoolError(f"{self.path}: the spool writer has stopped")
        if item.error is not None:
            raise SpoolError(f"{self.path}: write failed: {item.error}") from item.error

    async def append_payload_async(self, payload: Any) -> None:
        """:meth:`append_payload` on the running event loop: the same queue and group commit,
        but the caller waits on the loop (the writer completes a future there once the record
        is fsynced) instead of parking a thread. Same errors, same promise."""
        loop = asyncio.get_running_loop()
        item = _Append(record(payload))
        item.loop, item.future = loop, loop.create_future()
        with self._lock:
            self._check(len(item.record))
            self._queue.append(item)
            self._pending += len(item.record)
            self._work.notify()
        watchdog = loop.call_later(1.0, self._watch, item)
        try:
            await item.future
        except SpoolError:
            raise
        except Exception as err:
            raise SpoolError(f"{self.path}: write failed: {err}") from err
        finally:
            watchdog.cancel()

    def _watch(self, item: _Append) -> None:
        """Every second an async append waits: fail it if the writer thread is gone."""
        fut, loop = item.future, item.loop
        if fut is None or loop is None or fut.done():
            return
        if self._writer.is_alive():
            loop.call_later(1.0, self._watch, item)
        else:
            fut.set_exception(SpoolError(f"{self.path}: the spool writer has stopped"))

    def _write_loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing and not self._rotate_asked:
                    if not self._work.wait(timeout=self._idle_timeout()):
                        break  # the active segment may have reached its age
                batch, self._queue = self._queue, []
                closing = self._closing
                force = closing or self._rotate_asked
                self._rotating, self._rotate_asked = self._rotate_asked, False
            error: Exception | None = None
            if batch:
                try:
                    self._commit(b"".join(item.record for item in batch))
                except Exception as err:  # every waiter must hear of it, whatever it is
                    log.error("%s: spool write failed: %s", self.path, err)
                    error = err
                    force = True  # the file's state is unknown after a failed sync: start afresh
            self._maybe_rotate(force)
            waiting: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
            with self._lock:
                for item in batch:
                    item.done, item.error = True, error
                    self._pending -= len(item.record)
                    if item.loop is not None and item.future is not None:
                        waiting.setdefault(item.loop, []).append(item.future)
                if batch and error is None:
                    self._records += len(batch)
                    self._syncs += 1
                self._rotating = False
                self._done.notify_all()
                stop = closing and not self._queue
            for loop, futures in waiting.items():  # one wake-up per loop for the whole batch
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                    loop.call_soon_threadsafe(_wake, futures, error)
            if stop:
                return

    def _idle_timeout(self) -> float | None:
        if self._active is None:
            return None
        return max(0.05, self.limits.segment_age - (time.monotonic() - self._active.created))

    def _commit(self, data: bytes) -> None:
        if self._active is None:
            with self._lock:
                self._seq += 1
                tag = "" if self.writer_id is None else f"@{self.writer_id}"
                self._active_path = self.wal / f"{time.time_ns():020d}-{self._seq:06d}{tag}{SEGMENT_SUFFIX}"
            try:
                self._active = _Segment(self._active_path)
            except OSError:
                with self._lock:
                    self._active_path = None
                raise
            with self._lock:
                self._n_segments += 1
                self._disk += self._active.size
        seg = self._active
        _write_all(seg.fd, data)
        seg.size += len(data)
        with self._lock:
            self._disk += len(data)
        os.fdatasync(seg.fd)
        if seg.needs_dir_sync:
            _fsync_dir(self.wal)
            seg.needs_dir_sync = False

    def _maybe_rotate(self, force: bool) -> None:
        seg = self._active
        if seg is None:
            return
        if force or seg.size >= self.limits.segment_bytes or time.monotonic() - seg.created >= self.limits.segment_age:
            with contextlib.suppress(OSError):
                seg.close()
            self._active = None
            with self._lock:
                self._active_path = None

    def rotate(self) -> None:
        """Close the active segment now, after the queued appends (it can then be compacted)."""
        with self._lock:
            self._rotate_asked = True
            self._work.notify()
            while (self._rotate_asked or self._rotating) and self._writer.is_alive():
                self._done.wait(timeout=1.0)

    # -- compaction and retention -------------------------------------------------------

    def _closed_segments(self) -> list[Path]:
        # List first, then read the active name: a segment created after the listing is not
        # in it, and the writer names a segment (under the lock) before it creates it.
        found = self._own_segments()
        with self._lock:
            active = self._active_path
        return [s for s in found if s != active]

    def compact(self) -> int:
        """Compact every closed segment into Parquet now; returns how many were compacted
        (those of writers that are gone included: see :meth:`adopt_orphans`)."""
        with self._compact_lock:
            done = 0
            for seg in self._closed_segments():
                self._compact_one(seg)
                done += 1
            return done + self.adopt_orphans()

    def adopt_orphans(self) -> int:
        """Compact the segments of writers that are gone (a replica replaced under a new pod
        name): a writer id whose lock nobody holds has no process left, and holding its lock
        while compacting keeps both a returning writer of that id and other adopters out.
        Returns how many segments were compacted."""
        if self.writer_id is None:
            return 0  # the only writer compacts every segment anyway
        done = 0
        for other in sorted({w for s in segments(self.path) if (w := writer_of(s)) not in (None, self.writer_id)}):
            try:
                fd = os.open(self.wal / f"LOCK.{other}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue  # alive
            try:
                for seg in segments(self.path):
                    if writer_of(seg) == other:
                        log.info("%s: writer %r is gone; compacting its segment", seg, other)
                        self._compact_one(seg, own=False)
                        done += 1
            finally:
                os.close(fd)
        return done

    def _compact_one(self, seg: Path, own: bool = True) -> None:
        try:
            table, torn = read_segment(seg)
        except SpoolError:
            size = seg.stat().st_size
            self._quarantine(seg, "not a spool segment (bad magic)")
            with self._lock:
                self._n_segments -= 1 if own else 0
                self._disk -= size
                self._quarantined += 1
            return
        with self._lock:
            self._torn += torn
        start = table.column("start_ns").to_numpy() if table.num_rows else np.array([], dtype=np.int64)
        keep = np.ones(len(start), dtype=bool)
        if self.limits.retention_days is not None:
            keep &= start >= time.time_ns() - int(self.limits.retention_days * 86400e9)
        hours = start // HOUR_NS
        written = 0
        for hour in np.unique(hours[keep]):
            rows = np.flatnonzero(keep & (hours == hour))
            written += self._write_partition(int(hour), seg.stem, table.take(pa.array(rows)))
        size = seg.stat().st_size
        seg.unlink()
        _fsync_dir(self.wal)
        with self._lock:
            self._disk += written - size
            self._n_segments -= 1 if own else 0
        log.info("%s: compacted %d spans into Parquet (%d damaged records skipped)", seg, table.num_rows, torn)

    def _write_partition(self, hour: int, stem: str, table: pa.Table) -> int:
        when = datetime.fromtimestamp(hour * 3600, UTC)
        part = self.path / f"date={when:%Y-%m-%d}" / f"hour={when:%H}"
        part.mkdir(parents=True, exist_ok=True)
        final = part / f"{stem}.parquet"
        tmp = part / f".{stem}.parquet.tmp"
        old = final.stat().st_size if final.exists() else 0
        with open(tmp, "wb") as f:
            pq.write_table(table.sort_by("start_ns"), f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        _fsync_dir(part)
        return final.stat().st_size - old

    def apply_retention(self, now_ns: int | None = None) -> int:
        """Remove hour partitions older than the retention; returns how many were removed."""
        if self.limits.retention_days is None:
            return 0
        cutoff = (now_ns if now_ns is not None else time.time_ns()) - int(self.limits.retention_days * 86400e9)
        removed = 0
        for hour_start, part in partitions(self.path):
            if hour_start + HOUR_NS > cutoff:
                continue
            freed = 0
            for f in part.iterdir():
                with contextlib.suppress(FileNotFoundError):  # another writer's retention got there first
                    size = f.stat().st_size
                    f.unlink()
                    freed += size
            with contextlib.suppress(OSError):
                part.rmdir()  # not when another writer compacted into it meanwhile
                part.parent.rmdir()  # only when the day is now empty
            with self._lock:
                self._disk -= freed
            removed += 1
        return removed

    def _compact_loop(self) -> None:
        while not self._stop.wait(self.limits.compact_interval):
            try:
                self.compact()
                self.apply_retention()
            except (OSError, SpoolError, pa.ArrowException) as err:
                log.error("%s: compaction failed, will retry: %s", self.path, err)

    # -- state --------------------------------------------------------------------------

    def stats(self) -> SpoolStats:
        with self._lock:
            return SpoolStats(self._disk, self._n_segments, self._pending, self._records, self._syncs, self._torn,
                              self._quarantined)

    def close(self) -> None:
        """Finish the queued appends, close the active segment and stop the threads."""
        self._stop.set()
        with self._lock:
            self._closing = True
            self._work.notify()
        self._writer.join()
        if self._compactor is not None:
            self._compactor.join()
        for fd in self._lock_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
