"""Who may write a spool directory: the flocks that keep two writers from sharing segments.

Several writers (``latmap serve --writer-id ID`` replicas behind one load balancer, sharing
one directory, e.g. a ReadWriteMany volume) each hold a *shared* flock on ``_wal/LOCK`` and an
exclusive one on ``_wal/LOCK.<ID>`` (a second writer with the same id is refused at start; a
writer without an id, which compacts every segment, excludes them all and is excluded by
them), and name their segments ``<created-ns>-<n>@<ID>.wal``. Each compacts and tidies only
its own segments, so its Parquet files carry its id too: no file is written by two
processes. Readers read every writer's segments and files.

A writer id whose lock nobody holds has no process left: :func:`try_writer_lock` takes it so
that the gone writer's segments can be adopted (compacted) without a returning writer of that
id, or another adopter, touching them meanwhile. flocks go with the process, so a crash
releases them.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from collectors.spool.reader import SpoolError


def take_locks(path: Path, wal: Path, writer_id: str | None) -> list[int]:
    """The directory lock (exclusive without a writer id, shared with one) and the writer's
    own exclusive lock, as open descriptors (closing them releases the locks); a SpoolError
    naming the conflict otherwise. Creates ``wal`` if needed."""
    fds: list[int] = []
    wanted = [("LOCK", fcntl.LOCK_EX if writer_id is None else fcntl.LOCK_SH)]
    if writer_id is not None:
        wanted.append((f"LOCK.{writer_id}", fcntl.LOCK_EX))
    try:
        wal.mkdir(parents=True, exist_ok=True)
        for name, mode in wanted:
            fd = os.open(wal / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fds.append(fd)
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except OSError:
                raise SpoolError(_conflict(path, writer_id, name)) from None
    except OSError as err:
        for fd in fds:
            os.close(fd)
        raise SpoolError(f"{path}: cannot open spool: {err.strerror}") from err
    except SpoolError:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def _conflict(path: Path, writer_id: str | None, lock: str) -> str:
    if writer_id is None:
        return f"{path}: another process is writing to this spool"
    if lock == "LOCK":
        return (f"{path}: a writer without --writer-id holds this spool; every writer sharing a "
                "spool needs its own --writer-id")
    return f"{path}: writer id {writer_id!r} is already writing to this spool (ids must be unique)"


def try_writer_lock(wal: Path, writer_id: str) -> int | None:
    """Writer ``writer_id``'s exclusive lock, as an open descriptor to close when done; None
    when that writer is alive (it holds the lock) or the lock file cannot be opened."""
    try:
        fd = os.open(wal / f"LOCK.{writer_id}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd
