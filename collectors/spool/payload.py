"""A spool record's payload: the Arrow IPC stream of a span batch's columns.

Kept apart from the spool itself so that a decode worker, which only encodes, loads numpy,
protobuf and pyarrow's IPC, not the Parquet and dataset machinery (nor pandas) the spool's
reader needs.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from mapper.core.spans import SpanBatch, parquet_schema

#: The columns of every record and Parquet file: :func:`mapper.core.spans.parquet_schema`.
SCHEMA = parquet_schema()


def encode_payload(batch: SpanBatch) -> pa.Buffer:
    """The Arrow IPC stream of ``batch``'s columns (what a record carries)."""
    arrays = [pa.array(getattr(batch, f.name), type=f.type) for f in SCHEMA]
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, SCHEMA) as writer:
        writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=SCHEMA))
    return sink.getvalue()


def decode_payload(payload: Any) -> pa.Table:
    """A record's payload back as a table (zero-copy over ``payload``)."""
    return pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
