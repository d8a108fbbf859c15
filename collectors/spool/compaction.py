"""Turning closed write-ahead segments into the spool's Parquet dataset, and dropping old hours.

A closed segment is compacted into one Parquet file per (date, hour) it touches
(``DIR/date=YYYY-MM-DD/hour=HH/<segment>.parquet``, rows sorted by start time), each written
to a temp name, fsynced and renamed, and only then is the segment removed (a crash in between
leaves both, which readers deduplicate and the next compaction overwrites). Retention drops
spans, hour partitions and segments older than N days. These functions do the file work; the
:class:`~collectors.spool.store.Spool` decides when, and keeps the byte counts.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from collectors.spool.reader import HOUR_NS, partitions
from collectors.spool.wal import fsync_dir


def retention_cutoff(retention_days: float, now_ns: int | None = None) -> int:
    """The Unix-ns time before which spans are dropped (``now_ns`` defaults to now)."""
    return (now_ns if now_ns is not None else time.time_ns()) - int(retention_days * 86400e9)


def hour_slices(table: pa.Table, retention_days: float | None) -> Iterator[tuple[int, pa.Table]]:
    """``table``'s rows by the hour (since the epoch) of their start, older than the retention
    left out; vectorised: one pass over the start column, one ``take`` per hour."""
    start = table.column("start_ns").to_numpy() if table.num_rows else np.array([], dtype=np.int64)
    keep = np.ones(len(start), dtype=bool)
    if retention_days is not None:
        keep &= start >= retention_cutoff(retention_days)
    hours = start // HOUR_NS
    for hour in np.unique(hours[keep]):
        rows = np.flatnonzero(keep & (hours == hour))
        yield int(hour), table.take(pa.array(rows))


def write_partition(root: Path, hour: int, stem: str, table: pa.Table) -> int:
    """Write ``table`` as ``<stem>.parquet`` in hour ``hour``'s partition of ``root`` (temp
    name, fsync, rename, fsync of the folder); the bytes the spool grew by (a file rewritten
    after a crash counts only its growth)."""
    when = datetime.fromtimestamp(hour * 3600, UTC)
    part = root / f"date={when:%Y-%m-%d}" / f"hour={when:%H}"
    part.mkdir(parents=True, exist_ok=True)
    final = part / f"{stem}.parquet"
    tmp = part / f".{stem}.parquet.tmp"
    old = final.stat().st_size if final.exists() else 0
    with open(tmp, "wb") as f:
        pq.write_table(table.sort_by("start_ns"), f, compression="zstd")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fsync_dir(part)
    return final.stat().st_size - old


def expired_partitions(root: Path, cutoff: int) -> list[Path]:
    """The hour partitions of ``root`` that end at or before ``cutoff`` (Unix ns)."""
    return [part for hour_start, part in partitions(root) if hour_start + HOUR_NS <= cutoff]


def drop_partition(part: Path) -> int:
    """Remove an hour partition's files, then the folder and its day's folder if now empty;
    the bytes freed. Safe against other writers doing the same at the same time."""
    freed = 0
    for f in part.iterdir():
        with contextlib.suppress(FileNotFoundError):  # another writer's retention got there first
            size = f.stat().st_size
            f.unlink()
            freed += size
    with contextlib.suppress(OSError):
        part.rmdir()  # not when another writer compacted into it meanwhile
        part.parent.rmdir()  # only when the day is now empty
    return freed
