"""Reading a spool: the on-disk format (segment and record framing) and the readers that
turn a spool directory, or one segment, back into span columns for a window.

What a reader can rely on: a record torn by a crash or damaged on disk is skipped alone and
counted; a segment that is not a segment at all (its magic overwritten) is skipped whole and
named, so the rest of the spool still reads; rows written twice (a retried export, a crash
between compaction and the segment's removal) come back once. Writing is
:mod:`collectors.spool.store`'s, which imports the format from here.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from collectors.spool.payload import (
    FULL_SCHEMA,
    HEADER,
    RECORD_MAGIC,
    SCHEMA,
    arrays,
    attributes_from_table,
    decode_payload,
    schema_of,
)
from collectors.spool.payload import record as record  # re-exported: the store and tests frame with it
from mapper.core.errors import LatmapError
from mapper.core.spans import LINKS_COLUMN, OPTIONAL_COLUMNS, SpanBatch, SpanLinks, dedupe

log = logging.getLogger(__name__)

SEGMENT_MAGIC = b"LMSPOOL1"
WAL_DIR = "_wal"
#: Under ``_wal/``: damaged segments moved aside (never read, never deleted by latmap).
QUARANTINE_DIR = "quarantine"
SEGMENT_SUFFIX = ".wal"
HOUR_NS = 3_600_000_000_000
_STRING_COLUMNS = [f.name for f in SCHEMA if pa.types.is_string(f.type)]
#: A writer id (``latmap serve --writer-id``): it names the writer's lock and segments.
WRITER_ID = re.compile(r"[A-Za-z0-9_.-]{1,63}")


def writer_of(segment: Path) -> str | None:
    """The id of the writer that wrote ``segment`` (``<ns>-<n>@<id>.wal``); None: the only writer."""
    stem = segment.name.removesuffix(SEGMENT_SUFFIX)
    return stem.split("@", 1)[1] if "@" in stem else None


class SpoolError(LatmapError):
    """The spool cannot be opened or written (the message names the path)."""


@dataclass(frozen=True)
class SpoolRead:
    batch: SpanBatch
    torn_records: int  # damaged records skipped while reading segments
    duplicates: int  # rows dropped as duplicates (retried exports, compaction overlap)
    damaged_segments: tuple[str, ...] = ()  # segments skipped whole (not a segment: bad magic)
    quarantined: tuple[str, ...] = ()  # segments moved aside earlier, in _wal/quarantine/


# --- record payloads --------------------------------------------------------------------


def table_to_batch(table: pa.Table) -> SpanBatch:
    """A table of :data:`SCHEMA`'s columns as a span batch; a sampling column that is null or
    absent (a spool written before latmap read sampling) is "unknown sampling"."""
    if table.num_rows == 0:
        return SpanBatch.empty()
    cols: dict[str, Any] = {f.name: _column(_filled(table, f.name)) for f in SCHEMA if f.name != LINKS_COLUMN}
    first = (cols["link_trace_hi"], cols["link_trace_lo"], cols["link_span_id"])
    return SpanBatch.from_columns(cols, links=links_from_table(table, first), attributes=attributes_from_table(table))


def _filled(table: pa.Table, name: str) -> pa.ChunkedArray:
    """The column, with a sampling column's nulls (or its absence) as its "unknown" value."""
    if name not in OPTIONAL_COLUMNS or OPTIONAL_COLUMNS[name] is None:
        return table.column(name) if name in table.column_names else pa.chunked_array(
            [pa.nulls(table.num_rows, SCHEMA.field(name).type)])
    if name not in table.column_names:
        return pa.chunked_array([pa.array(np.full(table.num_rows, OPTIONAL_COLUMNS[name]), SCHEMA.field(name).type)])
    col = table.column(name)
    return col.fill_null(OPTIONAL_COLUMNS[name]) if col.null_count else col


def payloads_batch(payloads: Sequence[Any], with_attributes: bool = False) -> SpanBatch:
    """Several records' payloads as one span batch, in order (one conversion for them all);
    ``with_attributes``: with :attr:`SpanBatch.attributes` (None otherwise)."""
    if not payloads:
        return SpanBatch.empty()
    return table_to_batch(pa.concat_tables([decode_payload(p, with_attributes) for p in payloads]))


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


# --- reading ----------------------------------------------------------------------------


def _valid_at(data: memoryview, off: int) -> int | None:
    """The payload length of a valid record at ``off``, or None."""
    if len(data) - off < HEADER.size:
        return None
    magic, length, crc = HEADER.unpack_from(data, off)
    end = off + HEADER.size + length
    if magic != RECORD_MAGIC or end > len(data):
        return None
    if zlib.crc32(data[off + HEADER.size:end]) != crc:
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
            yield view[off + HEADER.size:off + HEADER.size + length]
            off += HEADER.size + length
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


def read_segment(path: str | Path, with_attributes: bool = False) -> tuple[pa.Table, int]:
    """All good records of one segment as one table, and the number of damaged ones skipped.
    ``path`` may be an fsspec URL; ``with_attributes``: the attribute columns too."""
    p = Path(path)
    try:
        data = _open(str(path)).read() if "://" in str(path) else p.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as err:  # a directory, no permission ...: this segment only
        raise SpoolError(f"{path}: cannot read the segment ({err.strerror or err})") from err
    tables: list[pa.Table] = []
    torn = 0
    for payload in _iter_records(p, data):
        if payload is None:
            torn += 1
            continue
        try:
            tables.append(decode_payload(payload, with_attributes))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:  # CRC good, content not ours
            log.error("%s: record does not decode as spans (%s), skipped", p, err)
            torn += 1
    if not tables:
        return schema_of(with_attributes).empty_table(), torn
    return pa.concat_tables(tables), torn


def segments(path: Path) -> list[Path]:
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
    return int(midnight.timestamp()) * 1_000_000_000 + hour * HOUR_NS


def partitions(path: Path) -> list[tuple[int, Path]]:
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


def _parquet_files(root: Path, start_ns: int | None, end_ns: int | None) -> list[str]:
    """The compacted Parquet files of the hour partitions that overlap ``(start_ns, end_ns]``
    (hidden and in-progress files left out), oldest hour first."""
    files: list[str] = []
    for hour_start, part in partitions(root):
        if start_ns is not None and hour_start + HOUR_NS <= start_ns:
            continue
        if end_ns is not None and hour_start > end_ns:
            continue
        files += [str(f) for f in sorted(part.glob("*.parquet")) if not f.name.startswith((".", "_"))]
    return files


def scan_spool(path: str | Path, start_ns: int | None = None, end_ns: int | None = None,
               with_attributes: bool = False) -> SpoolRead:
    """Spans that start in ``[start_ns, end_ns]`` (Unix ns, both ends inclusive, None = open);
    ``with_attributes``: with every span and resource attribute (:attr:`SpanBatch.attributes`:
    None otherwise, and for a spool written before latmap kept them).

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
    for seg in segments(root):
        try:
            table, bad = read_segment(seg, with_attributes)
        except FileNotFoundError:
            continue  # compacted meanwhile: its Parquet files are listed below
        except SpoolError as err:  # a whole segment unreadable: the others still count
            log.warning("%s; skipped (latmap serve moves it aside at its next start)", err)
            damaged.append(seg.name)
            continue
        torn += bad
        tables.append(_time_filter(table, start_ns, end_ns))
    for name in _parquet_files(root, start_ns, end_ns):
        try:  # one by one: a damaged file costs its own spans only
            tables.append(read_spool_file(name, start_ns, end_ns, with_attributes=with_attributes)[0])
        except FileNotFoundError:
            continue  # removed by retention meanwhile
        except SpoolError as err:
            log.warning("%s; skipped", err)
            damaged.append(str(Path(name).relative_to(root)))
    tables = [t for t in tables if t.num_rows]
    batch = table_to_batch(pa.concat_tables(tables)) if tables else SpanBatch.empty()
    batch, dups = dedupe(batch)
    quarantine = root / WAL_DIR / QUARANTINE_DIR
    moved = tuple(sorted(f.name for f in quarantine.iterdir())) if quarantine.is_dir() else ()
    return SpoolRead(batch, torn, dups, tuple(damaged), moved)


@dataclass(frozen=True)
class SpoolFiles:
    """What a partitioned scan reads: the write-ahead segments and the Parquet files that
    can hold spans of the window, listed once (see :func:`read_spool_file`)."""

    root: str
    segments: tuple[str, ...]
    parquet: tuple[str, ...]
    quarantined: tuple[str, ...] = ()

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.segments, *self.parquet)


def _open(url: str) -> Any:
    """A binary file object of an fsspec URL (``s3://``, ``gs://``, ``file://`` ...)."""
    import fsspec  # only spools given by URL need it (installed with latmap[dask])

    try:
        return fsspec.open(url, "rb").open()
    except FileNotFoundError:
        raise
    except (OSError, ValueError, ImportError) as err:
        raise SpoolError(f"{url}: cannot open: {err}") from err


def _url_files(url: str, start_ns: int | None, end_ns: int | None) -> SpoolFiles:
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
        segs = sorted(fs.glob(f"{root}/{WAL_DIR}/*{SEGMENT_SUFFIX}"))
        files = []
        for f in sorted(fs.glob(f"{root}/date=*/hour=*/*.parquet")):
            *_, day, hour, name = f.split("/")
            start = _hour_start(Path(day) / hour)
            if start is None or name.startswith((".", "_")):
                continue
            if (start_ns is not None and start + HOUR_NS <= start_ns) or (end_ns is not None and start > end_ns):
                continue
            files.append(f)
        moved = tuple(sorted(Path(f).name for f in fs.glob(f"{root}/{WAL_DIR}/{QUARANTINE_DIR}/*")))
        if not segs and not files:
            # nothing to read: say why in one line (a spool elsewhere, or a window before its data)
            if not fs.glob(f"{root}/{WAL_DIR}") and not fs.glob(f"{root}/date=*/hour=*/*.parquet"):
                raise SpoolError(f"{url}: not a spool: no {WAL_DIR}/ segments and no "
                                 "date=YYYY-MM-DD/hour=HH/*.parquet files there")
            raise SpoolError(f"{url}: the spool has no segments and no Parquet files for the window")
    except (OSError, ValueError, ImportError) as err:
        raise SpoolError(f"{url}: cannot list the spool: {_one_line(err)}") from err
    return SpoolFiles(url, tuple(fs.unstrip_protocol(s) for s in segs), tuple(fs.unstrip_protocol(f) for f in files),
                      moved)


def spool_files(path: str | Path, start_ns: int | None = None, end_ns: int | None = None) -> SpoolFiles:
    """The files of a spool that :func:`scan_spool` would read for the window, listed once.
    ``path`` may be an fsspec URL (``s3://bucket/spool``): the files are then URLs too."""
    if "://" in str(path):
        return _url_files(str(path), start_ns, end_ns)
    root = Path(path)
    if not root.is_dir():
        raise SpoolError(f"{root}: no such spool directory")
    files = _parquet_files(root, start_ns, end_ns)
    quarantine = root / WAL_DIR / QUARANTINE_DIR
    moved = tuple(sorted(f.name for f in quarantine.iterdir())) if quarantine.is_dir() else ()
    return SpoolFiles(str(root), tuple(str(s) for s in segments(root)), tuple(files), moved)


def iter_spool_file(name: str, start_ns: int | None = None, end_ns: int | None = None,
                    columns: list[str] | None = None, batch_rows: int = 500_000,
                    with_attributes: bool = False) -> Iterator[tuple[pa.Table, int]]:
    """:func:`read_spool_file` in pieces of at most ``batch_rows`` rows (a Parquet file is
    streamed, never read whole); each piece comes with the damaged records it skipped.
    ``columns`` default to :data:`SCHEMA`'s (``with_attributes``: :data:`FULL_SCHEMA`'s).

    A local segment compacted since it was listed is read from the Parquet files compaction
    made of it (``date=*/hour=*/<segment>.parquet``: renamed into place before the segment
    is removed), so a map over a live spool reads the same spans in every pass.
    """
    if name.endswith(SEGMENT_SUFFIX):  # bounded by the receiver's segment size
        try:
            table, torn = read_spool_file(name, start_ns, end_ns, columns, with_attributes)
        except FileNotFoundError:
            seg = Path(name)
            made = sorted(seg.parent.parent.glob(f"date=*/hour=*/{seg.name.removesuffix(SEGMENT_SUFFIX)}.parquet"))
            if "://" in name or not made:
                raise
            for f in made:
                yield from iter_spool_file(str(f), start_ns, end_ns, columns, batch_rows, with_attributes)
            return
        for at in range(0, max(table.num_rows, 1), batch_rows):
            yield table.slice(at, batch_rows), torn if at == 0 else 0
        return
    # Row group by row group, no read-ahead, one thread: a file costs one row group of memory
    # (the dataset scanner keeps many batches in flight). Spans outside the window are
    # dropped here; columns an old file lacks come back null, as the dataset reader does.
    try:
        pf = pq.ParquetFile(_open(name) if "://" in name else name, pre_buffer=False)
        have = set(pf.schema_arrow.names)
        _check_columns(name, list(have))
        want = list(columns) if columns else schema_of(with_attributes).names
        read = [c for c in {*want, "start_ns"} if c in have]
        for batch in pf.iter_batches(batch_size=batch_rows, columns=read, use_threads=False):
            table = _time_filter(pa.Table.from_batches([batch]), start_ns, end_ns)
            yield _conform(table, want), 0
    except (pa.ArrowException, OSError) as err:  # a wrong type fails the cast: ArrowNotImplementedError
        if isinstance(err, FileNotFoundError) or ("://" not in name and not Path(name).exists()):
            raise FileNotFoundError(name) from err
        raise SpoolError(f"{name}: not a readable Parquet file ({_one_line(err)})") from err


def _conform(table: pa.Table, columns: list[str]) -> pa.Table:
    """``columns`` of ``table`` in :data:`SCHEMA`'s types, absent ones null."""
    out = []
    for c in columns:
        field = FULL_SCHEMA.field(c)
        if c in table.column_names:
            col = table.column(c)
            out.append(col if col.type == field.type else col.cast(field.type))
        else:
            out.append(pa.nulls(table.num_rows, field.type))
    return pa.table(out, schema=pa.schema([FULL_SCHEMA.field(c) for c in columns]))


def read_spool_file(name: str, start_ns: int | None = None, end_ns: int | None = None,
                    columns: list[str] | None = None, with_attributes: bool = False) -> tuple[pa.Table, int]:
    """One file listed by :func:`spool_files`: its rows that start in ``[start_ns, end_ns]``
    (``columns`` only, ``start_ns`` always read) and the damaged records skipped.

    Raises :class:`SpoolError` for a segment that is not one (bad magic) and
    ``FileNotFoundError`` for a file gone since it was listed (compacted meanwhile).
    """
    if name.endswith(SEGMENT_SUFFIX):
        table, torn = read_segment(name, with_attributes or bool(columns and set(columns) - set(SCHEMA.names)))
        table = _time_filter(table, start_ns, end_ns)
        return (table.select(columns) if columns else table), torn
    expr = None
    if start_ns is not None:
        expr = ds.field("start_ns") >= start_ns
    if end_ns is not None:
        upper = ds.field("start_ns") <= end_ns
        expr = upper if expr is None else expr & upper
    try:
        _check_columns(name, ds.dataset([name], format="parquet").schema.names)
        schema = schema_of(with_attributes or bool(columns and set(columns) - set(SCHEMA.names)))
        return ds.dataset([name], schema=schema, format="parquet").to_table(
            columns=columns or schema.names, filter=expr), 0
    except (pa.ArrowException, OSError) as err:  # (ArrowIOError is an OSError)
        if isinstance(err, FileNotFoundError) or ("://" not in name and not Path(name).exists()):
            raise FileNotFoundError(name) from err
        raise SpoolError(f"{name}: not a readable Parquet file ({_one_line(err)})") from err


#: What a Parquet file must hold to be one of the spool's: every column but ``links`` and the
#: sampling columns (which spools written before them lack; the readers fill them in).
_REQUIRED = tuple(f.name for f in SCHEMA if f.name != LINKS_COLUMN and f.name not in OPTIONAL_COLUMNS)


def _check_columns(name: str, have: Sequence[str]) -> None:
    """Refuse a Parquet file without the spool's columns (another program's file): read with
    the spool's schema it would give nulls, not an error."""
    missing = [c for c in _REQUIRED if c not in have]
    if missing:
        raise SpoolError(f"{name}: not a spool Parquet file (no {', '.join(missing[:3])}"
                         f"{' ...' if len(missing) > 3 else ''} column)")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:300]


def read_spool(path: str | Path, start_ns: int | None = None, end_ns: int | None = None,
               with_attributes: bool = False) -> SpanBatch:
    """The deduplicated spans of a spool that start in ``[start_ns, end_ns]`` (see :func:`scan_spool`)."""
    return scan_spool(path, start_ns, end_ns, with_attributes).batch


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
