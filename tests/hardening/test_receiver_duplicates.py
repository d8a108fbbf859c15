"""Every duplicate span dropped on the way to a map is counted (issue 25): whether the copies
sit in one segment, in two segments, in a segment and the Parquet file compacted from it, or
in two Parquet files, ``load_spans`` counts each dropped copy under ``duplicate span`` (the
``spans-set-aside`` check), as it does for OTLP files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from collectors.otlp.codec import DUPLICATE_SPAN
from collectors.spool.store import Spool, SpoolLimits
from collectors.traces import load_spans
from mapper.core.model import Window
from mapper.core.spans import SpanBatch
from mapper.core.spec import SourceSpec

T0 = 1_790_000_000 * 10**9


def _batch(ids: list[int]) -> SpanBatch:
    n = len(ids)
    return SpanBatch.from_columns({"trace_hi": [0] * n, "trace_lo": [1] * n, "span_id": ids,
                                   "start_ns": [T0 + i for i in ids], "end_ns": [T0 + i + 1000 for i in ids],
                                   "service": ["svc"] * n, "name": ["op"] * n, "kind": [2] * n})


def _load(path: Path) -> tuple[SpanBatch, dict[str, int]]:
    loaded = load_spans(SourceSpec("spans", "traces", "", "test", path=str(path)), Window(T0 / 1e9 - 60,
                                                                                         T0 / 1e9 + 60))
    return loaded.batch, loaded.set_aside


@pytest.mark.parametrize("shape", ["one segment", "two segments", "segment and its parquet", "two parquet files"])
def test_each_dropped_copy_is_counted(tmp_path: Path, shape: str) -> None:
    limits = SpoolLimits(compact_interval=3600, retention_days=None)
    with Spool(tmp_path, limits, compact=False) as spool:
        spool.append(_batch([1, 2, 3]))
        if shape == "one segment":
            spool.append(_batch([2, 3]))
        elif shape == "two segments":
            spool.rotate()
            spool.append(_batch([2, 3]))
        elif shape == "two parquet files":
            spool.rotate()
            spool.compact()
            spool.append(_batch([2, 3]))
            spool.rotate()
            spool.compact()
        else:  # a crash between compaction and the segment's removal: both hold the spans
            spool.append(_batch([2, 3]))
            spool.rotate()
            seg = next((tmp_path / "_wal").glob("*.wal"))
            kept = seg.read_bytes()
            spool.compact()
            seg.write_bytes(kept)
    batch, set_aside = _load(tmp_path)
    assert sorted(batch.span_id.tolist()) == [1, 2, 3]
    copies = 7 if shape == "segment and its parquet" else 2  # there: 5 rows twice, 3 spans
    assert set_aside == {DUPLICATE_SPAN: copies}
    assert len(np.unique(batch.span_id)) == len(batch)


def test_no_duplicates_no_count(tmp_path: Path) -> None:
    with Spool(tmp_path, SpoolLimits(compact_interval=3600, retention_days=None), compact=False) as spool:
        spool.append(_batch([1, 2, 3]))
    assert _load(tmp_path)[1] == {}
