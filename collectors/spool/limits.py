"""What a spool may hold, and the errors that say it is full or busy.

Capacity is bounded twice: bytes on disk (segments and Parquet files) and bytes queued for the
writer but not yet durable. Past either, an append raises before anything is written, with a
``retry_after`` (seconds) that the receiver turns into 503 / 429 + ``Retry-After``.
:func:`check_capacity` is the one place that decides, from the counters the spool keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from collectors.spool.reader import SpoolError


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
    #: :mod:`collectors.spool.locks`. Carried here so that whatever opens the spool passes it on.
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


def check_capacity(path: Path, limits: SpoolLimits, *, disk: int, pending: int, size: int, closing: bool) -> None:
    """Raise when a record of ``size`` bytes cannot be taken now: :class:`SpoolFullError` when
    the spool is closing or the disk limit would be passed, :class:`SpoolBusyError` when the
    bytes waiting for the writer would pass theirs (a lone record larger than that still goes)."""
    if closing:
        raise SpoolFullError(f"{path}: spool is closing", retry_after=5)
    if disk + pending + size > limits.max_disk_bytes:
        raise SpoolFullError(f"{path}: spool is full ({disk} bytes on disk, limit {limits.max_disk_bytes})")
    if pending and pending + size > limits.max_pending_bytes:
        raise SpoolBusyError(f"{path}: {pending} bytes are waiting for the disk")
