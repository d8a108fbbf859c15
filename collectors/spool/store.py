"""The span spool: a directory that makes every acknowledged OTLP export durable.

Layout (``DIR`` is what ``latmap serve --spool DIR`` names)::

    DIR/_wal/LOCK                              held (flock) by the one process that writes
    DIR/_wal/<created-ns>-<n>.wal              write-ahead segments, appended then compacted
    DIR/date=YYYY-MM-DD/hour=HH/<segment>.parquet

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

import contextlib
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from collectors.spool.payload import SCHEMA, arrays, decode_payload, encode_payload
from mapper.core.errors import LatmapError
from mapper.core.spans import LINKS_COLUMN, SpanBatch, SpanLinks, dedupe

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

SEGMENT_MAGIC = b"LMSPOOL1"
RECORD_MAGIC = b"LMR1"
_HEADER = struct.Struct("<4sII")
WAL_DIR = "_wal"
#: Under ``_wal/``: damaged segments moved aside (never read, never deleted by latmap).
QUARANTINE_DIR = "quarantine"
SEGMENT_SUFFIX = ".wal"
_HOUR_NS = 3_600_000_000_000
_STRING_COLUMNS = [f.name for f in SCHEMA if pa.types.is_string(f.type)]


class SpoolError(LatmapError):
    """The spool cannot be opened or written (the message names the path)."""


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


@dataclass(frozen=True)
class SpoolStats:
    disk_bytes: int  # segments + Parquet files
    segments: int  # write-ahead segments on disk, the active one included
    pending_bytes: int  # queued for the writer, not yet durable
    records: int  # records made durable since the spool was opened
    syncs: int  # group commits (one fdatasync each)
    torn_records: int  # damaged records skipped by compaction
    quarantined: int = 0  # damaged segments moved aside since the spool was opened (at open included)


@dataclass(frozen=True)
class SpoolRead:
    batch: SpanBatch
    torn_records: int  # damaged records skipped while reading segments
    duplicates: int  # rows dropped as duplicates (retried exports, compaction overlap)
    damaged_segments: tuple[str, ...] = ()  # segments skipped whole (not a segment: bad magic)
    quarantined: tuple[str, ...] = ()  # segments moved aside earlier, in _wal/quarantine/


# --- record payloads --------------------------------------------------------------------


def _table_to_batch(table: pa.Table) -> SpanBatch:
    if table.num_rows == 0:
        return SpanBatch.empty()
    cols = {f.name: _column(table.column(f.name)) for f in SCHEMA if f.name != LINKS_COLUMN}
    first = (cols["link_trace_hi"], cols["link_trace_lo"], cols["link_span_id"])
    return SpanBatch(**cols, links=links_from_table(table, first))


def _column(col: pa.ChunkedArray) -> np.ndarray:
    """A column as numpy. Strings go through a dictionary, so the few distinct service and
    span names become a few Python objects shared by every row (to_numpy would make one
    object per row: 2.5 million strings for a million spans)."""
    if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
        return col.to_numpy()
    encoded = col.combine_chunks().dictionary_encode() if col.num_chunks else pa.array([], pa.string())
    if len(encoded) == 0:
        return np.array([], dtype=object)
    values = np.array([*encoded.dictionary.to_pylist(), None], dtype=object)
    return values[encoded.indices.fill_null(len(values) - 1).to_numpy()]


def _batch_to_table(batch: SpanBatch) -> pa.Table:
    return pa.table(arrays(batch), schema=SCHEMA)


def _record(payload: Any) -> bytes:
    view = memoryview(payload)
    return _HEADER.pack(RECORD_MAGIC, view.nbytes, zlib.crc32(view)) + view


# --- reading ----------------------------------------------------------------------------


def _valid_at(data: memoryview, off: int) -> int | None:
    """The payload length of a valid record at ``off``, or None."""
    if len(data) - off < _HEADER.size:
        return None
    magic, length, crc = _HEADER.unpack_from(data, off)
    end = off + _HEADER.size + length
    if magic != RECORD_MAGIC or end > len(data):
        return None
    if zlib.crc32(data[off + _HEADER.size:end]) != crc:
        return None
    return int(length)


def _iter_records(path: Path, data: bytes) -> Iterator[memoryview | None]:
    """Payloads of ``data`` (one segment file); ``None`` once per damaged stretch skipped."""
    view = memoryview(data)
    if len(data) < len(SEGMENT_MAGIC):
        return  # crashed between creating the file and writing its magic: nothing acked
    if bytes(view[:len(SEGMENT_MAGIC)]) != SEGMENT_MAGIC:
        raise SpoolError(f"{path}: not a spool segment (bad magic)")
    off = len(SEGMENT_MAGIC)
    while off < len(data):
        length = _valid_at(view, off)
        if length is not None:
            yield view[off + _HEADER.size:off + _HEADER.size + length]
            off += _HEADER.size + length
            continue
        log.warning("%s: damaged record at byte %d (torn write or corruption), skipped", path, off)
        yield None
        # Resynchronise: the next offset where a whole record with a good CRC starts.
        nxt = data.find(RECORD_MAGIC, off + 1)
        while nxt != -1 and _valid_at(view, nxt) is None:
            nxt = data.find(RECORD_MAGIC, nxt + 1)
        if nxt == -1:
            return
        off = nxt


def read_segment(path: str | Path) -> tuple[pa.Table, int]:
    """All good records of one segment as one table, and the number of damaged ones skipped."""
    p = Path(path)
    data = p.read_bytes()
    tables: list[pa.Table] = []
    torn = 0
    for payload in _iter_records(p, data):
        if payload is None:
            torn += 1
            continue
        try:
            tables.append(decode_payload(payload))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:  # CRC good, content not ours
            log.error("%s: record does not decode as spans (%s), skipped", p, err)
            torn += 1
    if not tables:
        return SCHEMA.empty_table(), torn
    return pa.concat_tables(tables), torn


def _segments(path: Path) -> list[Path]:
    wal = path / WAL_DIR
    if not wal.is_dir():
        return []
    return sorted(wal.glob(f"*{SEGMENT_SUFFIX}"))


def _hour_start(partition: Path) -> int | None:
    """The partition's first nanosecond, from ``date=YYYY-MM-DD/hour=HH``; None if not one."""
    if not partition.parent.name.startswith("date=") or not partition.name.startswith("hour="):
        return None
    try:
        day = date.fromisoformat(partition.parent.name.removeprefix("date="))
        hour = int(partition.name.removeprefix("hour="))
    except ValueError:
        return None
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return int(midnight.timestamp()) * 1_000_000_000 + hour * _HOUR_NS


def _partitions(path: Path) -> list[tuple[int, Path]]:
    found = []
    for part in path.glob("date=*/hour=*"):
        start = _hour_start(part)
        if start is not None and part.is_dir():
            found.append((start, part))
    return sorted(found)


def looks_like_spool(path: str | Path) -> bool:
    """True when ``path`` holds a ``_wal/`` directory or ``date=`` partitions."""
    p = Path(path)
    return (p / WAL_DIR).is_dir() or any(p.glob("date=*"))


def _time_filter(table: pa.Table, start_ns: int | None, end_ns: int | None) -> pa.Table:
    if start_ns is None and end_ns is None:
        return table
    col = table.column("start_ns").to_numpy()
    keep = np.ones(len(col), dtype=bool)
    if start_ns is not None:
        keep &= col >= start_ns
    if end_ns is not None:
        keep &= col <= end_ns
    return table.filter(pa.array(keep))


def scan_spool(path: str | Path, start_ns: int | None = None, end_ns: int | None = None) -> SpoolRead:
    """Spans that start in ``[start_ns, end_ns]`` (Unix ns, both ends inclusive, None = open).

    Reads the hour partitions that can hold such spans plus every write-ahead segment not yet
    compacted, then drops duplicates. Safe while a receiver writes and compacts: segments
    are listed and read first, Parquet after, and compaction renames a segment's Parquet
    files into place before it removes the segment, so no span falls between the two.
    """

    root = Path(path)
    if not root.is_dir():
        raise SpoolError(f"{root}: no such spool directory")
    tables: list[pa.Table] = []
    torn = 0
    damaged: list[str] = []
    for seg in _segments(root):
        try:
            table, bad = read_segment(seg)
        except FileNotFoundError:
            continue  # compacted meanwhile: its Parquet files are listed below
        except SpoolError as err:  # a whole segment unreadable: the others still count
            log.warning("%s; skipped (latmap serve moves it aside at its next start)", err)
            damaged.append(seg.name)
            continue
        torn += bad
        tables.append(_time_filter(table, start_ns, end_ns))
    files = []
    for hour_start, part in _partitions(root):
        if start_ns is not None and hour_start + _HOUR_NS <= start_ns:
            continue
        if end_ns is not None and hour_start > end_ns:
            continue
        files += [str(f) for f in sorted(part.glob("*.parquet")) if not f.name.startswith((".", "_"))]
    if files:
        dataset = ds.dataset(files, schema=SCHEMA, format="parquet")
        expr = None
        if start_ns is not None:
            expr = ds.field("start_ns") >= start_ns
        if end_ns is not None:
            upper = ds.field("start_ns") <= end_ns
            expr = upper if expr is None else expr & upper
        tables.append(dataset.to_table(filter=expr))
    tables = [t for t in tables if t.num_rows]
    batch = _table_to_batch(pa.concat_tables(tables)) if tables else SpanBatch.empty()
    batch, dups = dedupe(batch)
    quarantine = root / WAL_DIR / QUARANTINE_DIR
    moved = tuple(sorted(f.name for f in quarantine.iterdir())) if quarantine.is_dir() else ()
    return SpoolRead(batch, torn, dups, tuple(damaged), moved)


def read_spool(path: str | Path, start_ns: int | None = None, end_ns: int | None = None) -> SpanBatch:
    """The deduplicated spans of a spool that start in ``[start_ns, end_ns]`` (see :func:`scan_spool`)."""
    return scan_spool(path, start_ns, end_ns).batch


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
    __slots__ = ("done", "error", "record")

    def __init__(self, record: bytes) -> None:
        self.record = record
        self.done = False
        self.error: BaseException | None = None


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
        try:
            self.wal.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.wal / "LOCK", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise SpoolError(f"{self.path}: cannot open spool: {err.strerror}") from err
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise SpoolError(f"{self.path}: another process is writing to this spool") from None
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
        self._disk = sum(f.stat().st_size for f in _segments(self.path))
        self._disk += sum(f.stat().st_size for _, p in _partitions(self.path) for f in p.glob("*.parquet"))
        self._n_segments = len(_segments(self.path))
        self._writer = threading.Thread(target=self._write_loop, name="spool-writer", daemon=True)
        self._writer.start()
        self._stop = threading.Event()
        self._compactor: threading.Thread | None = None
        if compact:
            self._compactor = threading.Thread(target=self._compact_loop, name="spool-compactor", daemon=True)
            self._compactor.start()

    def __enter__(self) -> Spool:
        return self

    def _tidy_segments(self) -> tuple[str, ...]:
        """At open (the lock held, no segment active): remove empty segments, move damaged
        ones into ``_wal/quarantine/``; answer the names moved aside."""
        moved = []
        for seg in _segments(self.path):
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
        item = _Append(_record(payload))
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
            with self._lock:
                for item in batch:
                    item.done, item.error = True, error
                    self._pending -= len(item.record)
                if batch and error is None:
                    self._records += len(batch)
                    self._syncs += 1
                self._rotating = False
                self._done.notify_all()
                if closing and not self._queue:
                    return

    def _idle_timeout(self) -> float | None:
        if self._active is None:
            return None
        return max(0.05, self.limits.segment_age - (time.monotonic() - self._active.created))

    def _commit(self, data: bytes) -> None:
        if self._active is None:
            with self._lock:
                self._seq += 1
                self._active_path = self.wal / f"{time.time_ns():020d}-{self._seq:06d}{SEGMENT_SUFFIX}"
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
        found = _segments(self.path)
        with self._lock:
            active = self._active_path
        return [s for s in found if s != active]

    def compact(self) -> int:
        """Compact every closed segment into Parquet now; returns how many were compacted."""
        with self._compact_lock:
            done = 0
            for seg in self._closed_segments():
                self._compact_one(seg)
                done += 1
            return done

    def _compact_one(self, seg: Path) -> None:
        try:
            table, torn = read_segment(seg)
        except SpoolError:
            size = seg.stat().st_size
            self._quarantine(seg, "not a spool segment (bad magic)")
            with self._lock:
                self._n_segments -= 1
                self._disk -= size
                self._quarantined += 1
            return
        with self._lock:
            self._torn += torn
        start = table.column("start_ns").to_numpy() if table.num_rows else np.array([], dtype=np.int64)
        keep = np.ones(len(start), dtype=bool)
        if self.limits.retention_days is not None:
            keep &= start >= time.time_ns() - int(self.limits.retention_days * 86400e9)
        hours = start // _HOUR_NS
        written = 0
        for hour in np.unique(hours[keep]):
            rows = np.flatnonzero(keep & (hours == hour))
            written += self._write_partition(int(hour), seg.stem, table.take(pa.array(rows)))
        size = seg.stat().st_size
        seg.unlink()
        _fsync_dir(self.wal)
        with self._lock:
            self._disk += written - size
            self._n_segments -= 1
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
        for hour_start, part in _partitions(self.path):
            if hour_start + _HOUR_NS > cutoff:
                continue
            freed = 0
            for f in part.iterdir():
                freed += f.stat().st_size
                f.unlink()
            part.rmdir()
            with contextlib.suppress(OSError):
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
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)


def links_from_table(table: Any, first: tuple[np.ndarray, np.ndarray, np.ndarray]) -> SpanLinks:
    """Every link of ``table``'s rows; rows whose ``links`` is null (old schema) or tables
    without the column fall back to ``first`` (the ``link_*`` columns)."""
    n = table.num_rows
    if LINKS_COLUMN not in table.column_names:
        return SpanLinks.first_of(*first)
    col = table.column(LINKS_COLUMN).combine_chunks()
    old = col.is_null().to_numpy(zero_copy_only=False)
    rows = pc.list_parent_indices(col).to_numpy().astype(np.int64) if n else np.array([], np.int64)
    flat = col.flatten()
    parts = [(rows, *(flat.field(k).to_numpy(zero_copy_only=False).astype(np.uint64)
                      for k in ("trace_hi", "trace_lo", "span_id")))]
    if old.any():
        legacy = SpanLinks.first_of(*(np.where(old, c, 0) for c in first))
        parts.append((legacy.row, legacy.trace_hi, legacy.trace_lo, legacy.span_id))
    return SpanLinks(*(np.concatenate(cols) for cols in zip(*parts, strict=True)))
