"""A spool record's payload: the Arrow IPC stream of a span batch's columns, its links as a
``list<struct<trace_hi, trace_lo, span_id>>`` column (one list per span; empty: no links).

Kept apart from the spool itself so that a decode worker, which only encodes, loads numpy,
protobuf and pyarrow's IPC, not the Parquet and dataset machinery (nor pandas) the spool's
reader needs.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import numpy as np
import pyarrow as pa

from collectors.otlp.attributes import parse_raw
from mapper.core.spans import (
    ATTRIBUTE_FIELDS,
    ATTRIBUTES_JSON,
    ATTRIBUTES_RAW,
    LINKS_COLUMN,
    OPTIONAL_COLUMNS,
    RESOURCE_ATTRIBUTES,
    SpanAttributes,
    SpanBatch,
    SpanLinks,
    links_type,
    parquet_schema,
)

#: The columns every reader gives by default (what the map needs): :func:`mapper.core.spans.parquet_schema`.
SCHEMA = parquet_schema()
#: What every record and Parquet file is written with: :data:`SCHEMA` and the attribute columns.
FULL_SCHEMA = parquet_schema(attributes=True)


#: A write-ahead record: magic, payload length, CRC32 of the payload, then the payload
#: (:mod:`collectors.spool.wal`). Here so that a decode worker frames its answer itself.
RECORD_MAGIC = b"LMR1"
HEADER = struct.Struct("<4sII")


def record(payload: Any) -> bytes:
    """``payload`` framed as a spool record (header with its CRC32, then the bytes)."""
    view = memoryview(payload)
    return HEADER.pack(RECORD_MAGIC, view.nbytes, zlib.crc32(view)) + view


def schema_of(with_attributes: bool) -> pa.Schema:
    return FULL_SCHEMA if with_attributes else SCHEMA


def encode_payload(batch: SpanBatch) -> pa.Buffer:
    """The Arrow IPC stream of ``batch``'s columns (what a record carries)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, FULL_SCHEMA) as writer:
        writer.write_batch(pa.RecordBatch.from_arrays(arrays(batch, FULL_SCHEMA), schema=FULL_SCHEMA))
    return sink.getvalue()


def decode_payload(payload: Any, with_attributes: bool = False) -> pa.Table:
    """A record's payload back as a table (zero-copy over ``payload``) of :data:`SCHEMA`'s
    columns (``with_attributes``: :data:`FULL_SCHEMA`'s); a record of an older schema (no
    ``links``, no sampling or attribute columns) gets null columns, so every record has one
    schema (null: unknown)."""
    table = pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
    return conform_table(table, schema_of(with_attributes))


def conform_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns in its order: optional ones it lacks are null, others dropped."""
    if table.column_names == schema.names:
        return table
    for name in (*OPTIONAL_COLUMNS, LINKS_COLUMN, *ATTRIBUTE_FIELDS):
        if name in schema.names and name not in table.column_names:
            table = table.append_column(schema.field(name), pa.nulls(table.num_rows, schema.field(name).type))
    return table.select(schema.names)


def arrays(batch: SpanBatch, schema: pa.Schema = SCHEMA) -> list[pa.Array]:
    """``batch``'s columns as Arrow arrays in ``schema``'s order, its links as a list column."""
    n = len(batch)
    extra = attribute_arrays(batch.attributes, n) if schema.names[-1] in ATTRIBUTE_FIELDS else {}
    return [links_array(batch.all_links, n) if f.name == LINKS_COLUMN else extra[f.name] if f.name in extra
            else pa.array(getattr(batch, f.name), type=f.type) for f in schema]


def attribute_arrays(attributes: SpanAttributes | None, n: int) -> dict[str, pa.Array]:
    """The attribute columns of a batch of ``n`` spans (all null: attributes unknown)."""
    if attributes is None:
        return {name: pa.nulls(n, FULL_SCHEMA.field(name).type) for name in ATTRIBUTE_FIELDS}
    raw = attributes.raw
    if raw is None:  # parsed (built, or merged from several sources): written as text
        spans: list[Any] = [None] * n  # span attributes only: the resources are written below
        sp = attributes.span
        for r, k, v in zip(sp.row.tolist(), sp.names[sp.key].tolist(), sp.values[sp.value].tolist(), strict=True):
            if spans[r] is None:
                spans[r] = {}
            spans[r][k] = v
        pb, text = [None] * n, [None if d is None else json.dumps(d, separators=(",", ":")) for d in spans]
    else:
        items = raw.tolist()
        if all(type(x) is bytes for x in items):  # what the protobuf decoders keep: one pass
            pb, text = items, [None] * n
        else:
            is_pb = [type(x) is bytes for x in items]
            pb = [x if b else None for x, b in zip(items, is_pb, strict=True)]
            text = [None if b else x for x, b in zip(items, is_pb, strict=True)]
    dictionary = pa.array([json.dumps([dict(r), int(d)], separators=(",", ":"), ensure_ascii=False)
                           for r, d in zip(attributes.resources, attributes.resource_dropped.tolist(), strict=True)],
                          pa.string())
    index = pa.array(attributes.resource, pa.int32(), mask=attributes.resource < 0)
    return {ATTRIBUTES_RAW: pa.array(pb, pa.binary()), ATTRIBUTES_JSON: pa.array(text, pa.string()),
            RESOURCE_ATTRIBUTES: pa.DictionaryArray.from_arrays(index, dictionary)}


def attributes_from_table(table: pa.Table) -> SpanAttributes | None:
    """The attributes of ``table``'s rows, the span ones left raw (parsed on first use); None
    when the table has none (a spool written before they were kept)."""
    n = table.num_rows
    if RESOURCE_ATTRIBUTES not in table.column_names or table.column(RESOURCE_ATTRIBUTES).null_count == n:
        return None
    res = table.column(RESOURCE_ATTRIBUTES)
    res = res.cast(pa.string()) if pa.types.is_dictionary(res.type) else res
    encoded = res.combine_chunks().dictionary_encode()
    parsed = [json.loads(d) for d in encoded.dictionary.to_pylist()]
    index = encoded.indices.fill_null(-1).to_numpy().astype(np.int32)
    raw = table.column(ATTRIBUTES_RAW).to_numpy(zero_copy_only=False).astype(object)
    text = table.column(ATTRIBUTES_JSON).to_numpy(zero_copy_only=False)
    missing = np.array([x is None for x in raw.tolist()], dtype=bool).reshape(n)
    raw[missing] = text[missing]
    return SpanAttributes(n, resource=index, resources=[r for r, _ in parsed], resource_dropped=[d for _, d in parsed],
                          raw=raw, parse=parse_raw)


def links_array(links: SpanLinks, n: int) -> pa.Array:
    """The ``links`` column for a batch of ``n`` spans."""
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(links.counts(n), out=offsets[1:])
    values = pa.StructArray.from_arrays(
        [pa.array(links.trace_hi, pa.uint64()), pa.array(links.trace_lo, pa.uint64()),
         pa.array(links.span_id, pa.uint64())], names=["trace_hi", "trace_lo", "span_id"])
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=links_type())
