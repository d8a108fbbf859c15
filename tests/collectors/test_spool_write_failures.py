"""The spool's write path when the disk fails: a short write then ENOSPC, a failed fdatasync,
ENOSPC while a segment is created. Nothing is acknowledged that was not synced, the error is
one line naming the spool, what was acknowledged reads back, and a failure leaks nothing."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from pathlib import Path

import numpy as np
import pytest

from collectors.spool import store as store_mod
from collectors.spool import wal
from collectors.spool.payload import encode_payload, record
from collectors.spool.reader import SpoolError, scan_spool
from collectors.spool.store import Spool, SpoolLimits
from mapper.core.spans import SpanBatch

NOW = time.time_ns()
LIMITS = SpoolLimits(compact_interval=3600)


def _batch(n: int, trace: int) -> SpanBatch:
    return SpanBatch.from_columns({
        "trace_hi": np.zeros(n), "trace_lo": np.full(n, trace), "span_id": np.arange(1, n + 1),
        "start_ns": NOW + np.arange(n) * 1000, "end_ns": NOW + np.arange(n) * 1000 + 500,
        "service": ["svc"] * n, "name": ["op"] * n})


def _enospc(*_: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_short_write_then_enospc_is_refused_and_the_rest_reads_back(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def half_then_full(fd: int, parts: list[bytes | memoryview]) -> int:
        data = b"".join(bytes(p) for p in parts)
        os.write(fd, data[:len(data) // 2])
        _enospc()
        return 0

    with Spool(tmp_path, LIMITS) as spool:
        spool.append(_batch(3, 1))
        monkeypatch.setattr(store_mod, "writev_all", half_then_full)
        with pytest.raises(SpoolError, match=r"write failed: .*No space left on device"):
            spool.append(_batch(4, 2))
        monkeypatch.undo()
        spool.append(_batch(5, 3))
    read = scan_spool(tmp_path)
    assert sorted(read.batch.trace_lo.tolist()) == [1] * 3 + [3] * 5
    assert read.torn_records == 1


def test_a_failed_sync_fails_the_async_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Spool(tmp_path, LIMITS) as spool:
        monkeypatch.setattr(store_mod.os, "fdatasync", lambda fd: _enospc())
        with pytest.raises(SpoolError, match="write failed"):
            asyncio.run(spool.append_record_async(record(encode_payload(_batch(4, 2)))))
        monkeypatch.undo()
        spool.append(_batch(5, 3))
    assert sorted(set(scan_spool(tmp_path).batch.trace_lo.tolist())) == [2, 3]  # unacked data may stay


def test_enospc_creating_a_segment_leaks_no_descriptor_and_no_file(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with Spool(tmp_path, LIMITS) as spool:
        fds = len(os.listdir("/proc/self/fd"))
        monkeypatch.setattr(wal, "write_all", _enospc)
        for _ in range(5):
            with pytest.raises(SpoolError, match="No space left on device"):
                spool.append(_batch(4, 2))
        monkeypatch.undo()
        assert len(os.listdir("/proc/self/fd")) == fds
        assert not list((tmp_path / "_wal").glob("*.wal"))
        spool.append(_batch(5, 3))
    assert len(scan_spool(tmp_path).batch) == 5
