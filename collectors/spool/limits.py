"""What a spool may hold, and the errors that say it is full or busy.

Capacity is bounded twice: bytes on disk (segments and Parquet files) and bytes queued for the
writer but not yet durable. Past either, an append raises before anything is written, with a
``retry_after`` (seconds) that the receiver turns into 503 / 429 + ``Retry-After``.
:func:`check_capacity` is the one place that decides, from the counters the spool keeps.

Time is bounded too: :func:`accepted_starts` is the range of span start times the receiver
acknowledges. Compaction partitions spans by their start and retention deletes them by it, so
a span that starts before the retention's cutoff (give or take the time its segment waits to
be compacted) would be acknowledged and then deleted: the receiver refuses it instead, in the
OTLP ``partial_success`` (:data:`~collectors.spool.decode_pool.OLDER_THAN_RETENTION`). A span
that starts further ahead of the receiver's clock than ``max_ahead`` is refused too
(:data:`~collectors.spool.decode_pool.TOO_FAR_AHEAD`): no clock is that wrong, and it would
sit in a partition no window reads until its time comes.

The limits refuse values that cannot work when they are made (:class:`LimitError`, naming the
field): a spool of no bytes takes nothing, a retention of no time deletes everything.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields
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


class LimitError(ValueError):
    """A limit that cannot work (zero, negative, not a number); ``field`` names it, so that a
    command line can name its option instead."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


def require_positive(obj: object, *names: str, optional: tuple[str, ...] = ()) -> None:
    """Raise :class:`LimitError` unless each of ``names`` is a finite number > 0 (those in
    ``optional`` may also be None: no limit)."""
    for name in names:
        value = getattr(obj, name)
        if value is None and name in optional:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                math.isfinite(value) and value > 0):
            raise LimitError(name, f"{value!r} is not a number > 0")


@dataclass(frozen=True)
class SpoolLimits:
    """Sizes in bytes, times in seconds. ``retention_days=None`` keeps everything;
    ``max_ahead``: seconds ahead of this clock that a span may start (None: no bound).
    Every size and time must be > 0 (:class:`LimitError` otherwise)."""

    max_disk_bytes: int = 8 << 30
    max_pending_bytes: int = 64 << 20
    segment_bytes: int = 64 << 20
    segment_age: float = 60.0
    compact_interval: float = 30.0
    retention_days: float | None = 7.0
    #: This writer's id among several sharing the directory (None: the only writer); see
    #: :mod:`collectors.spool.locks`. Carried here so that whatever opens the spool passes it on.
    writer_id: str | None = None
    max_ahead: float | None = 86400.0

    def __post_init__(self) -> None:
        require_positive(self, *(f.name for f in fields(self) if f.name != "writer_id"),
                         optional=("retention_days", "max_ahead"))
        if self.retention_days is not None and self.retention_days * 86400 <= self.compaction_delay:
            raise LimitError("retention_days", f"{self.retention_days * 86400:g} s is not longer than the "
                             f"{self.compaction_delay:g} s a span waits to be compacted: every span would be "
                             "refused")

    @property
    def compaction_delay(self) -> float:
        """Seconds a record can wait in the write-ahead log before compaction (and retention)
        sees it: its segment's age, then one compaction interval."""
        return self.segment_age + self.compact_interval


def accepted_starts(limits: SpoolLimits, now_ns: int | None = None) -> tuple[int | None, int | None]:
    """The span start times (Unix ns, both ends inclusive, None: open) the receiver
    acknowledges now: not older than the retention minus :attr:`SpoolLimits.compaction_delay`
    (so that compaction keeps every span acknowledged), not more than ``max_ahead`` ahead."""
    now = now_ns if now_ns is not None else time.time_ns()
    lo = hi = None
    if limits.retention_days is not None:
        lo = now - int(limits.retention_days * 86400e9) + int(limits.compaction_delay * 1e9)
    if limits.max_ahead is not None:
        hi = now + int(limits.max_ahead * 1e9)
    return lo, hi


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
