"""The span spool: a directory that makes every acknowledged OTLP export durable.

Layout (``DIR`` is what ``latmap serve --spool DIR`` names)::

    DIR/_wal/LOCK                              held (flock) by the one process that writes
    DIR/_wal/<created-ns>-<n>.wal              write-ahead segments, appended then compacted
    DIR/date=YYYY-MM-DD/hour=HH/<segment>.parquet

Several writers may share one directory, each with its own id, lock and segments
(:mod:`collectors.spool.locks`).

The Parquet side is a plain hive-partitioned dataset: ``pyarrow.dataset.dataset(DIR,
partitioning="hive")`` (or DuckDB, Spark) reads it directly, since dataset discovery ignores
names starting with ``_`` or ``.`` (the WAL and temp files). One row per span, partitioned by
the span's *start* time in UTC; the schema is :func:`mapper.core.spans.parquet_schema`::

    trace_hi, trace_lo      uint64   trace id as two big-endian halves
    span_id, parent_id      uint64   0 = no parent
    link_trace_hi/lo,
    link_span_id            uint64   the span's first link (async hand-over); 0 = none
    links                   list<struct<trace_hi, trace_lo, span_id>>   every link of the span
    start_ns, end_ns        int64    Unix nanoseconds
    kind, status            int8     OTLP SpanKind and StatusCode values
    service, name,
    destination, messaging_system,
    peer_service, db_system string   null when absent
    sampling_th             int64    OTel sampling threshold (tracestate ot=th); -1 unknown,
                                     -2 the W3C sampled flag is clear
    tail_policy             string   the Collector's tailsampling.policy; null when absent

Spools written before ``links`` existed still read: a missing or null ``links`` means the
span's links are its ``link_*`` first link (:mod:`collectors.spool.links`). Spools written
before the sampling columns existed read too: missing or null means "unknown sampling".

plus the partition columns ``date`` (``YYYY-MM-DD``) and ``hour`` (0-23) from the directory
names (pyarrow infers them as string and int32).

Write-ahead segments (:mod:`collectors.spool.wal`: the record format, torn records, damaged
segments moved aside into ``_wal/quarantine/``) hold each accepted request's decoded columns.

Durability. :meth:`Spool.append` returns only after the record's bytes are on disk
(``fdatasync`` of the segment, and ``fsync`` of ``_wal/`` when the segment was created), so
a caller that acknowledges after it returns never acknowledges something a crash can lose.
One writer thread does all file I/O: callers queue their records and wait; the writer takes
everything queued, writes it with one ``writev``, syncs once and wakes all of them (group
commit). While it syncs, new requests queue up, so the batch grows with the load and the cost
of a sync (~0.4 ms here) is shared by every request of the batch.

Segments rotate by size and age; a closed segment is compacted into hour-partitioned Parquet
and then removed, and retention drops what is older than N days
(:mod:`collectors.spool.compaction`). Capacity: bytes on disk and bytes queued for the writer
are bounded; past either, :meth:`Spool.append` raises :class:`SpoolFullError` /
:class:`SpoolBusyError` with a ``retry_after`` (:mod:`collectors.spool.limits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from collectors.spool.compaction import (
    drop_partition,
    expired_partitions,
    hour_slices,
    retention_cutoff,
    write_partition,
)
from collectors.spool.limits import SpoolBusyError, SpoolFullError, SpoolLimits, SpoolStats, check_capacity
from collectors.spool.locks import take_locks, try_writer_lock
from collectors.spool.payload import decode_payload, encode_payload
from collectors.spool.reader import (
    QUARANTINE_DIR,
    SEGMENT_MAGIC,
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
from collectors.spool.wal import ActiveSegment, fsync_dir, quarantine, segment_path, tidy_segments, writev_all
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


class _Append:
    __slots__ = ("done", "error", "future", "loop", "record")

    def __init__(self, record: bytes | memoryview) -> None:
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
        self._lock_fds = take_locks(self.path, self.wal, self.writer_id)
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        self._queue: list[_Append] = []
        self._pending = 0
        self._closing = False
        self._active: ActiveSegment | None = None  # owned by the writer thread
        self._active_path: Path | None = None  # its name, set under the lock before it exists
        self._rotate_asked = self._rotating = False
        self._seq = 0
        self._records = self._syncs = self._torn = 0
        self._compact_lock = threading.Lock()
        self.quarantined_at_open = tidy_segments(self.wal, self._own_segments())
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

    def _own(self, seg: Path) -> bool:
        """Whether ``seg`` is this writer's segment."""
        return writer_of(seg) == self.writer_id

    def _own_segments(self) -> list[Path]:
        return [s for s in segments(self.path) if self._own(s)]

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- capacity -----------------------------------------------------------------------

    def _check(self, size: int) -> None:
        """Raise when a record of ``size`` bytes cannot be taken now (call with the lock held)."""
        check_capacity(self.path, self.limits, disk=self._disk, pending=self._pending, size=size,
                       closing=self._closing)

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
        self.append_record(record(payload))

    def append_record(self, framed: bytes | memoryview) -> None:
        """:meth:`append_payload` for a payload already framed by
        :func:`collectors.spool.payload.record` (a decode worker's answer)."""
        item = _Append(framed)
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
        await self.append_record_async(record(payload))

    async def append_record_async(self, framed: bytes | memoryview) -> None:
        """:meth:`append_payload_async` for a record already framed (by a decode worker: its
        CRC and framing cost the event loop nothing)."""
        loop = asyncio.get_running_loop()
        item = _Append(framed)
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
                    self._commit([item.record for item in batch])
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

    def _commit(self, records: list[bytes | memoryview]) -> None:
        """Append ``records`` with one ``writev`` (no joined copy) and sync once (group commit)."""
        if self._active is None:
            with self._lock:
                self._seq += 1
                self._active_path = segment_path(self.wal, self._seq, self.writer_id)
            try:
                self._active = ActiveSegment(self._active_path)
            except OSError:
                with self._lock:
                    self._active_path = None
                raise
            with self._lock:
                self._n_segments += 1
                self._disk += self._active.size
        seg = self._active
        size = writev_all(seg.fd, records)
        seg.size += size
        with self._lock:
            self._disk += size
        os.fdatasync(seg.fd)
        if seg.needs_dir_sync:
            fsync_dir(self.wal)
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
            fd = try_writer_lock(self.wal, other)
            if fd is None:
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
            table, torn = read_segment(seg, with_attributes=True)  # the Parquet files keep them
        except SpoolError:
            size = seg.stat().st_size
            quarantine(self.wal, seg, "not a spool segment (bad magic)")
            with self._lock:
                self._n_segments -= 1 if own else 0
                self._disk -= size
                self._quarantined += 1
            return
        with self._lock:
            self._torn += torn
        written = sum(write_partition(self.path, hour, seg.stem, rows)
                      for hour, rows in hour_slices(table, self.limits.retention_days))
        size = seg.stat().st_size
        seg.unlink()
        fsync_dir(self.wal)
        with self._lock:
            self._disk += written - size
            self._n_segments -= 1 if own else 0
        log.info("%s: compacted %d spans into Parquet (%d damaged records skipped)", seg, table.num_rows, torn)

    def apply_retention(self, now_ns: int | None = None) -> int:
        """Remove hour partitions older than the retention; returns how many were removed."""
        if self.limits.retention_days is None:
            return 0
        removed = 0
        for part in expired_partitions(self.path, retention_cutoff(self.limits.retention_days, now_ns)):
            freed = drop_partition(part)
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
