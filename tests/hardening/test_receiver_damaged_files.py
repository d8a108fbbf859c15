"""One bad file never fails a map (issue 25): a garbage, empty, truncated or wrong-schema
Parquet file, or a segment or Parquet path that is a directory, is skipped and named (the
``spool-damaged`` check), and the rest of the spool is read; a spool URL with nothing there
is one clear line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from collectors.spool.reader import SpoolError, iter_spool_file, scan_spool, spool_files
from collectors.spool.store import Spool, SpoolLimits
from collectors.traces import load_spans
from mapper.core.model import Window
from mapper.core.spans import SpanBatch
from mapper.core.spec import SourceSpec

T0 = 1_790_000_000 * 10**9
PART = "date=2026-09-21/hour=14"  # T0's hour


def _spool(path: Path) -> Path:
    """Two Parquet files in T0's hour and one live segment: 3 spans in all."""
    with Spool(path, SpoolLimits(compact_interval=3600, retention_days=None), compact=False) as spool:
        for span in (1, 2):
            spool.append(SpanBatch.from_columns({"trace_hi": [0], "trace_lo": [span], "span_id": [span],
                                                 "start_ns": [T0 + span], "end_ns": [T0 + span + 10],
                                                 "service": ["svc"], "name": ["op"], "kind": [2]}))
            spool.rotate()
            spool.compact()
        spool.append(SpanBatch.from_columns({"trace_hi": [0], "trace_lo": [3], "span_id": [3],
                                             "start_ns": [T0 + 3], "end_ns": [T0 + 13],
                                             "service": ["svc"], "name": ["op"], "kind": [2]}))
    return path


def _garbage(f: Path) -> None:
    f.write_bytes(b"this is not parquet at all" * 10)


def _empty(f: Path) -> None:
    f.write_bytes(b"")


def _truncated(f: Path) -> None:
    good = next(f.parent.glob("*.parquet")).read_bytes()
    f.write_bytes(good[: len(good) // 2])


def _other_schema(f: Path) -> None:
    pq.write_table(pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]}), f)


def _wrong_types(f: Path) -> None:
    good = pq.read_table(next(f.parent.glob("*.parquet")))
    cols = {n: (pa.array([f"t{i}" for i in range(good.num_rows)]) if n == "start_ns" else good.column(n))
            for n in good.column_names}
    pq.write_table(pa.table(cols), f)


def _directory(f: Path) -> None:
    f.mkdir()
    (f / "inside").write_bytes(b"x")


SHAPES: dict[str, Callable[[Path], None]] = {"garbage": _garbage, "empty": _empty, "truncated": _truncated,
                                             "other schema": _other_schema, "wrong column types": _wrong_types,
                                             "a directory": _directory}


@pytest.mark.parametrize("shape", SHAPES)
def test_a_bad_parquet_file_is_skipped_and_named(tmp_path: Path, shape: str) -> None:
    root = _spool(tmp_path / "spool")
    bad = root / PART / "zz-bad.parquet"
    SHAPES[shape](bad)
    read = scan_spool(root)
    assert sorted(read.batch.span_id.tolist()) == [1, 2, 3]
    assert read.damaged_segments == (f"{PART}/zz-bad.parquet",)
    loaded = load_spans(SourceSpec("spans", "traces", "", "test", path=str(root)), Window(T0 / 1e9 - 60, T0 / 1e9 + 60))
    assert len(loaded.batch) == 3 and loaded.damaged == (f"{PART}/zz-bad.parquet",)
    # the partitioned route's reader says SpoolError (which it counts as damaged), never anything else
    with pytest.raises(SpoolError, match=r"zz-bad\.parquet"):
        list(iter_spool_file(str(bad)))


def test_a_segment_that_is_a_directory_is_skipped_and_named(tmp_path: Path) -> None:
    root = _spool(tmp_path / "spool")
    odd = root / "_wal" / "00000000000000000001-000001.wal"
    odd.mkdir()
    read = scan_spool(root)
    assert sorted(read.batch.span_id.tolist()) == [1, 2, 3] and read.damaged_segments == (odd.name,)
    with pytest.raises(SpoolError, match="cannot read the segment"):
        list(iter_spool_file(str(odd)))
    # and the receiver moves it aside at its next start, the spool still serving
    with Spool(root, SpoolLimits(compact_interval=3600, retention_days=None), compact=False) as spool:
        assert spool.quarantined_at_open == (odd.name,)


def test_an_fsspec_spool_with_no_files_is_one_clear_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SpoolError, match="not a spool: no _wal/ segments"):
        spool_files(f"file://{empty}")
    root = _spool(tmp_path / "spool")
    assert len(spool_files(f"file://{root}").files) == 3
    for seg in (root / "_wal").glob("*.wal"):
        seg.unlink()  # compacted: only Parquet files are left
    with pytest.raises(SpoolError, match="no segments and no Parquet files for the window"):
        spool_files(f"file://{root}", 0, 10)
