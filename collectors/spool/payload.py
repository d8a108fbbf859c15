"""A spool record's payload: the Arrow IPC stream of a span batch's columns, its links as a
``list<struct<trace_hi, trace_lo, span_id>>`` column (one list per span; empty: no links).

Kept apart from the spool itself so that a decode worker, which only encodes, loads numpy,
protobuf and pyarrow's IPC, not the Parquet and dataset machinery (nor pandas) the spool's
reader needs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from mapper.core.spans import LINKS_COLUMN, OPTIONAL_COLUMNS, SpanBatch, SpanLinks, links_type, parquet_schema

#: The columns of every record and Parquet file: :func:`mapper.core.spans.parquet_schema`.
SCHEMA = parquet_schema()


def encode_payload(batch: SpanBatch) -> pa.Buffer:
    """The Arrow IPC stream of ``batch``'s columns (what a record carries)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, SCHEMA) as writer:
        writer.write_batch(pa.RecordBatch.from_arrays(arrays(batch), schema=SCHEMA))
    return sink.getvalue()


def decode_payload(payload: Any) -> pa.Table:
    """A record's payload back as a table (zero-copy over ``payload``); a record of an older
    schema (no ``links``, no sampling columns) gets null columns, so every record has one
    schema (null sampling: unknown)."""
    table = pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
    if table.column_names != SCHEMA.names:
        for name in (*OPTIONAL_COLUMNS, LINKS_COLUMN):
            if name not in table.column_names:
                table = table.append_column(SCHEMA.field(name), pa.nulls(table.num_rows, SCHEMA.field(name).type))
        table = table.select(SCHEMA.names)
    return table


def arrays(batch: SpanBatch) -> list[pa.Array]:
    """``batch``'s columns as Arrow arrays in :data:`SCHEMA`'s order, its links as a list column."""
    return [links_array(batch.all_links, len(batch)) if f.name == LINKS_COLUMN
            else pa.array(getattr(batch, f.name), type=f.type) for f in SCHEMA]


def links_array(links: SpanLinks, n: int) -> pa.Array:
    """The ``links`` column for a batch of ``n`` spans."""
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(links.counts(n), out=offsets[1:])
    values = pa.StructArray.from_arrays(
        [pa.array(links.trace_hi, pa.uint64()), pa.array(links.trace_lo, pa.uint64()),
         pa.array(links.span_id, pa.uint64())], names=["trace_hi", "trace_lo", "span_id"])
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=links_type())
