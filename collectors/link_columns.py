"""Span links between :class:`~collectors.spans.SpanLinks` and the spool's Arrow ``links`` column.

The column is ``list<struct<trace_hi, trace_lo, span_id>>``, one list per span (empty: no
links). Spools written before the column existed (Parquet files and write-ahead records of
the old schema) read as null lists: for those rows the links are the ``link_*`` columns'
first link, which is all the old schema kept. Both directions are array operations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from collectors.spans import LINKS_COLUMN, SpanLinks, links_type

__all__ = ["links_array", "links_from_table"]


def links_array(links: SpanLinks, n: int) -> pa.Array:
    """The ``links`` column for a batch of ``n`` spans."""
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(links.counts(n), out=offsets[1:])
    values = pa.StructArray.from_arrays(
        [pa.array(links.trace_hi, pa.uint64()), pa.array(links.trace_lo, pa.uint64()),
         pa.array(links.span_id, pa.uint64())], names=["trace_hi", "trace_lo", "span_id"])
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=links_type())


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
