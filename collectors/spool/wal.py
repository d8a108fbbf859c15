"""The spool's write-ahead segments as files: creating, appending, syncing, tidying.

A segment starts with the 8-byte magic ``LMSPOOL1``; then one record per accepted request::

    b"LMR1" | u32 little-endian payload length | u32 CRC32 of the payload | payload

The payload is the Arrow IPC *stream* of the decoded columns (:mod:`collectors.spool.payload`),
not the raw protobuf: the receiver has to decode the request anyway (to validate it and to
answer the partial-success count), the columns are about half the size of the OTLP bytes
(resource and scope attributes, unused span attributes and events are not kept), so less is
written before each fsync, and reading a segment back is a zero-copy Arrow read instead of a
second protobuf decode. The per-record magic lets a reader resynchronise after a damaged
record. The format's constants and readers are :mod:`collectors.spool.reader`'s.

A crash can leave a torn record at a segment's tail (short header, short payload, bad CRC).
Readers skip it, log a warning and count it; the other records and segments are read. Such a
record was never acknowledged (its sync had not returned).

Damaged segments. A segment that does not start with the magic (overwritten, replaced by
other bytes) cannot be read at all: readers skip it, count it and name it (``SpoolRead``'s
``damaged_segments``; the map shows a ``spool-damaged`` check) so the rest of the spool still
maps, and the writer moves it aside into ``_wal/quarantine/`` (:func:`quarantine`) when it
opens the spool (:func:`tidy_segments`) or when compaction meets it, where it stays for a
person to look at. Segments that hold nothing but the magic (or not even that: a write that
failed with ENOSPC) are removed at open.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

from collectors.spool.reader import QUARANTINE_DIR, SEGMENT_MAGIC, SEGMENT_SUFFIX

log = logging.getLogger(__name__)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a file created, renamed or removed in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` (``os.write`` may write fewer than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def writev_all(fd: int, parts: list[bytes | memoryview]) -> int:
    """Write ``parts`` back to back with ``writev`` (no joined copy), resuming after a short
    write; the bytes written."""
    views = [memoryview(p).cast("B") for p in parts]
    total = sum(v.nbytes for v in views)
    at = 0
    while at < len(views):
        n = os.writev(fd, views[at:at + 512])  # well under IOV_MAX
        while n and at < len(views):
            if n >= views[at].nbytes:
                n -= views[at].nbytes
                at += 1
            else:
                views[at] = views[at][n:]
                n = 0
        while at < len(views) and views[at].nbytes == 0:
            at += 1
    return total


def segment_path(wal: Path, seq: int, writer_id: str | None) -> Path:
    """A new segment's name, ``<created-ns>-<n>[@<writer id>].wal``: sorted by creation."""
    tag = "" if writer_id is None else f"@{writer_id}"
    return wal / f"{time.time_ns():020d}-{seq:06d}{tag}{SEGMENT_SUFFIX}"


class ActiveSegment:
    """The segment being appended to: an append-only file descriptor, created with the magic.

    ``needs_dir_sync`` stays true until ``_wal/`` has been fsynced after the file's creation
    (the first commit does it, so the segment's name survives a crash with its records)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.size = 0
        self.created = time.monotonic()
        self.needs_dir_sync = True
        try:
            write_all(self.fd, SEGMENT_MAGIC)
        except OSError:  # ENOSPC: no descriptor left open, no empty file left per failed write
            os.close(self.fd)
            path.unlink(missing_ok=True)
            raise
        self.size = len(SEGMENT_MAGIC)

    def close(self) -> None:
        os.close(self.fd)


def quarantine(wal: Path, seg: Path, why: str) -> str:
    """Move ``seg`` into ``_wal/quarantine/`` (kept for a person to look at); its name there."""
    folder = wal / QUARANTINE_DIR
    folder.mkdir(exist_ok=True)
    target = folder / seg.name
    n = 0
    while target.exists():
        n += 1
        target = folder / f"{seg.name}.{n}"
    seg.rename(target)
    fsync_dir(folder)
    log.error("%s: %s; moved aside to %s", seg, why, target)
    return target.name


def tidy_segments(wal: Path, own: Iterable[Path]) -> tuple[str, ...]:
    """At open (the writer's lock held, no segment active), over the writer's ``own``
    segments: remove empty ones, move damaged ones into ``_wal/quarantine/``; answer the
    names moved aside."""
    moved = []
    for seg in own:
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
        moved.append(quarantine(wal, seg, "not a spool segment (bad magic)"))
    if moved:
        fsync_dir(wal)
    return tuple(moved)
