"""Whether every byte of each span is accounted for by the fields ptars read: the proof that
the fast decoder (:mod:`collectors.otlp.fast`) reads a request exactly as upb does.

upb and ptars agree on canonical protobuf. Where they may not is in what a reader skips or
resolves: unknown fields (upb checks that groups nest and are not too deep; ptars does not),
a field given twice (last wins, messages merge), overlong varints. None of these can hide in a
span whose byte length equals the *smallest* encoding of the values read from it: each field's
smallest encoding (a varint in its fewest bytes, a tag in its fewest, an absent or default
proto3 value in none) is a lower bound of what was on the wire, so equality means there was
nothing else: no unknown field, no repeat, no padding. The fast path decodes only requests
whose every span passes (:func:`canonical`); the others go to the reference decoder.

The schema ptars reads therefore declares every OTLP field of the span and of its events,
links, status and attributes (:data:`SPAN_SCHEMA`), even those latmap does not keep.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from collectors.otlp.lean import Schema, T

__all__ = ["SPAN_SCHEMA", "canonical"]

_B, _M = T.TYPE_BYTES, T.TYPE_MESSAGE
#: AnyValue with the nested array and map values as bytes (upb checks those: see fast.py).
_ANY = (("string_value", 1, _B, None), ("bool_value", 2, T.TYPE_BOOL, None),
        ("int_value", 3, T.TYPE_INT64, None), ("double_value", 4, T.TYPE_DOUBLE, None),
        ("array_value", 5, _B, None), ("kvlist_value", 6, _B, None), ("bytes_value", 7, _B, None),
        ("string_value_strindex", 8, T.TYPE_INT32, None))
#: Every field of OTLP's Span (opentelemetry/proto/trace/v1/trace.proto), strings as bytes.
SPAN_SCHEMA: Schema = {
    "AnyValue": _ANY,
    "KeyValue": (("key", 1, _B, None), ("value", 2, _M, "AnyValue"), ("key_strindex", 3, T.TYPE_INT32, None)),
    "Status": (("message", 2, _B, None), ("code", 3, T.TYPE_INT32, None)),
    "Link": (("trace_id", 1, _B, None), ("span_id", 2, _B, None), ("trace_state", 3, _B, None),
             ("attributes", 4, _M, "KeyValue"), ("dropped_attributes_count", 5, T.TYPE_UINT32, None),
             ("flags", 6, T.TYPE_FIXED32, None)),
    "Event": (("time_unix_nano", 1, T.TYPE_FIXED64, None), ("name", 2, _B, None),
              ("attributes", 3, _M, "KeyValue"), ("dropped_attributes_count", 4, T.TYPE_UINT32, None)),
    "Span": (("trace_id", 1, _B, None), ("span_id", 2, _B, None), ("trace_state", 3, _B, None),
             ("parent_span_id", 4, _B, None), ("name", 5, _B, None), ("kind", 6, T.TYPE_INT32, None),
             ("start_time_unix_nano", 7, T.TYPE_FIXED64, None), ("end_time_unix_nano", 8, T.TYPE_FIXED64, None),
             ("attributes", 9, _M, "KeyValue"), ("dropped_attributes_count", 10, T.TYPE_UINT32, None),
             ("events", 11, _M, "Event"), ("dropped_events_count", 12, T.TYPE_UINT32, None),
             ("links", 13, _M, "Link"), ("dropped_links_count", 14, T.TYPE_UINT32, None),
             ("status", 15, _M, "Status"), ("flags", 16, T.TYPE_FIXED32, None)),
}
#: The repeated fields of :data:`SPAN_SCHEMA`.
REPEATED = {("Span", "attributes"), ("Span", "events"), ("Span", "links"), ("Event", "attributes"),
            ("Link", "attributes")}
_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)


def _varint(values: np.ndarray) -> np.ndarray:
    """Bytes of the shortest varint of each (uint64) value."""
    v = np.asarray(values).astype(np.uint64)
    if not v.size or v.max() < 0x80:
        return np.ones(v.size, dtype=np.int64)
    return 1 + np.searchsorted(_LIMITS, v, side="right").astype(np.int64)


def _int32(values: np.ndarray) -> np.ndarray:
    """Fewest bytes of a varint that reads as each int32 (a negative one: its low 32 bits)."""
    v = np.asarray(values, dtype=np.int64)
    return np.where(v < 0, 5, _varint(np.maximum(v, 0)))


#: numpy dtypes of the fixed-width Arrow types ptars gives (``to_pandas_dtype`` would import pandas).
NUMPY_TYPES = {pa.int32(): np.int32, pa.int64(): np.int64, pa.uint32(): np.uint32, pa.uint64(): np.uint64,
               pa.float64(): np.float64}


def _np(arr: pa.Array) -> np.ndarray:
    """A fixed-width array's values, zero-copy (a null's slot holds whatever it holds: mask it)."""
    if arr.null_count == 0:
        return arr.to_numpy()
    return np.frombuffer(arr.buffers()[1], dtype=NUMPY_TYPES[arr.type])[arr.offset:arr.offset + len(arr)]


def _lengths(arr: pa.Array) -> np.ndarray:
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + len(arr) + 1]
    return np.diff(offsets).astype(np.int64)


def _valid(arr: pa.Array) -> np.ndarray:
    """The validity bitmap as bools (no compute call)."""
    n = len(arr)
    if arr.null_count == 0 or arr.buffers()[0] is None:
        return np.ones(n, dtype=bool)
    bits = np.unpackbits(np.frombuffer(arr.buffers()[0], dtype=np.uint8), bitorder="little")
    return bits[arr.offset:arr.offset + n].astype(bool)


def _len_field(size: np.ndarray, tag: int = 1) -> np.ndarray:
    """Bytes of a length-delimited field holding ``size`` bytes, each."""
    return tag + _varint(size) + size


def _bytes(arr: pa.Array, tag: int = 1) -> int:
    """Total bytes of an implicit-presence bytes field over the rows (nothing when empty)."""
    n = _lengths(arr)
    if not n.size:
        return 0
    if n.max() < 0x80:
        return int(n.sum()) + (tag + 1) * int(np.count_nonzero(n))
    return int(np.where(n > 0, _len_field(n, tag), 0).sum())


def _scalar(values: np.ndarray, size: np.ndarray | int, tag: int = 1) -> int:
    """Total bytes of an implicit-presence number over the rows (nothing when zero)."""
    return int(np.where(values != 0, tag + size, 0).sum())


def _varints(values: np.ndarray, tag: int = 1) -> int:
    return _scalar(values, _varint(values), tag) if values.any() else 0


def _key_values(lists: pa.ListArray) -> np.ndarray:
    """The bytes of each entry (tag and length included) of a ``repeated KeyValue`` list."""
    items = lists.flatten()
    if not len(items):
        return np.zeros(0, dtype=np.int64)
    value = items.field("value")
    present = _valid(value)
    any_size = np.zeros(len(value), dtype=np.int64)
    for name, size in (("string_value", None), ("bool_value", 2), ("int_value", "varint"), ("double_value", 9),
                       ("array_value", None), ("kvlist_value", None), ("bytes_value", None),
                       ("string_value_strindex", "int32")):
        member = value.field(name)
        if member.null_count == len(member):
            continue
        there = _valid(member) & present
        if size is None:
            any_size += np.where(there, _len_field(_lengths(member)), 0)
        elif size == "int32":
            any_size += np.where(there, 1 + _int32(_np(member).astype(np.int64)), 0)
        elif size == "varint":
            any_size += np.where(there, 1 + _varint(_np(member).view(np.uint64)), 0)
        else:
            any_size += np.where(there, size, 0)
    kv_size = np.where(present, _len_field(any_size), 0)
    kv_size += np.where(_lengths(items.field("key")) > 0, _len_field(_lengths(items.field("key"))), 0)
    strindex = _np(items.field("key_strindex")).astype(np.int64)
    if strindex.any():
        kv_size += np.where(strindex != 0, 1 + _int32(strindex), 0)
    return _len_field(kv_size)


def _per_row(lists: pa.ListArray, item_bytes: np.ndarray) -> np.ndarray:
    """Per row of ``lists``, the bytes of its items."""
    offsets = lists.offsets.to_numpy().astype(np.int64)
    total = np.concatenate([[0], np.cumsum(item_bytes)])
    return total[offsets[1:] - offsets[0]] - total[offsets[:-1] - offsets[0]]


def canonical(spans: pa.RecordBatch, span_bytes: pa.Array) -> bool:
    """Whether the spans' bytes (``span_bytes``) add up to the smallest encoding of what ptars
    read from them (``spans``, with :data:`SPAN_SCHEMA`): see the module's docstring. Each
    field's smallest encoding is a lower bound of its bytes on the wire, so the totals are
    equal only if every span's, every field's are."""
    events, links, status = spans.column("events"), spans.column("links"), spans.column("status")
    total = int(_key_values(spans.column("attributes")).sum())
    for name in ("trace_id", "span_id", "trace_state", "parent_span_id", "name"):
        total += _bytes(spans.column(name))
    kind = _np(spans.column("kind")).astype(np.int64)
    total += _scalar(kind, _int32(kind)) if kind.any() else 0
    total += _scalar(_np(spans.column("start_time_unix_nano")), 8) + _scalar(_np(spans.column("end_time_unix_nano")), 8)
    total += _scalar(_np(spans.column("flags")), 4, tag=2)
    for name in ("dropped_attributes_count", "dropped_events_count", "dropped_links_count"):
        total += _varints(_np(spans.column(name)))
    if len(ev := events.flatten()):
        size = (np.where(_np(ev.field("time_unix_nano")) != 0, 9, 0) + _sizes(ev.field("name"))
                + np.where(_np(ev.field("dropped_attributes_count")) != 0,
                           1 + _varint(_np(ev.field("dropped_attributes_count"))), 0)
                + _per_row(ev.field("attributes"), _key_values(ev.field("attributes"))))
        total += int(_len_field(size).sum())
    if len(lk := links.flatten()):
        size = (_sizes(lk.field("trace_id")) + _sizes(lk.field("span_id")) + _sizes(lk.field("trace_state"))
                + np.where(_np(lk.field("dropped_attributes_count")) != 0,
                           1 + _varint(_np(lk.field("dropped_attributes_count"))), 0)
                + np.where(_np(lk.field("flags")) != 0, 5, 0)
                + _per_row(lk.field("attributes"), _key_values(lk.field("attributes"))))
        total += int(_len_field(size).sum())
    if status.null_count < len(status):
        present = _valid(status)
        code = np.where(present, _np(status.field("code")).astype(np.int64), 0)
        size = (np.where(present, _sizes(status.field("message")), 0) + np.where(code != 0, 1 + _int32(code), 0))
        total += int(_len_field(size[present]).sum())
    offsets = np.frombuffer(span_bytes.buffers()[1], dtype=np.int32)
    return total == int(offsets[span_bytes.offset + len(span_bytes)]) - int(offsets[span_bytes.offset])


def _sizes(arr: pa.Array) -> np.ndarray:
    """Per row, the bytes of an implicit-presence bytes field."""
    n = _lengths(arr)
    return np.where(n > 0, _len_field(n), 0)
