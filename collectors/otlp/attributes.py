"""Span and resource attributes as text: how every OTLP ``AnyValue`` becomes the text
:class:`~mapper.core.spans.SpanAttributes` holds, and the parser of the span attributes a
decoder kept raw.

Why raw: rendering every attribute of every span in Python would cost the receiver more than
decoding the rest of the span does. So the protobuf decoder keeps each span's wire bytes (a
list upb fills in C, no Python per span) and the JSON decoder the span's attribute list as
compact JSON; :func:`parse_raw` reads them when a reader first asks (``latmap explain``),
usually from the spool. Resource attributes are few (one set per resource, not per span) and
are rendered at decode time.

Text: a string as itself, a bool as ``true``/``false``, an int as its decimal digits, a double
as Python's shortest repr, bytes as base64, an array or a map as compact JSON (``[1,"a"]``,
``{"k":"v"}``), an empty value as ``null``. Values longer than
:data:`~mapper.core.spans.MAX_ATTRIBUTE_CHARS` are cut; at most
:data:`~mapper.core.spans.MAX_ATTRIBUTES` are kept per span (in wire order), the rest counted.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np

from collectors.otlp.lean import T, lean_messages
from mapper.core.span_attributes import MAX_ATTRIBUTE_CHARS, MAX_ATTRIBUTES, SparseAttributes, encode_sparse

__all__ = ["json_value_text", "parse_raw", "pb_value_text", "resource_texts"]

_PACKAGE = "latmap.otlp_attrs"
_ANY = (("string_value", 1, T.TYPE_BYTES, None), ("bool_value", 2, T.TYPE_BOOL, None),
        ("int_value", 3, T.TYPE_INT64, None), ("double_value", 4, T.TYPE_DOUBLE, None),
        ("array_value", 5, T.TYPE_MESSAGE, "ArrayValue"), ("kvlist_value", 6, T.TYPE_MESSAGE, "KeyValueList"),
        ("bytes_value", 7, T.TYPE_BYTES, None))
#: A span's attributes only (field 9 of OTLP's Span; every other field skipped unparsed), with
#: each value kept as its bytes so that repeated values are rendered once.
_SCHEMA = {
    "AnyValue": _ANY,
    "ArrayValue": (("values", 1, T.TYPE_MESSAGE, "AnyValue"),),
    "KeyValue": (("key", 1, T.TYPE_BYTES, None), ("value", 2, T.TYPE_MESSAGE, "AnyValue")),
    "KeyValueList": (("values", 1, T.TYPE_MESSAGE, "KeyValue"),),
    "RawKeyValue": (("key", 1, T.TYPE_BYTES, None), ("value", 2, T.TYPE_BYTES, None)),
    "Span": (("attributes", 9, T.TYPE_MESSAGE, "RawKeyValue"),),
    "Spans": (("spans", 1, T.TYPE_MESSAGE, "Span"),),
}
_MESSAGES = lean_messages(_PACKAGE, _SCHEMA, {("ArrayValue", "values"), ("KeyValueList", "values"),
                                              ("Span", "attributes"), ("Spans", "spans")})
_AnyValue, _Spans = _MESSAGES["AnyValue"], _MESSAGES["Spans"]


def _cut(text: str) -> str:
    return text if len(text) <= MAX_ATTRIBUTE_CHARS else text[:MAX_ATTRIBUTE_CHARS]


def _pb_native(v: Any) -> Any:
    """A protobuf AnyValue as the JSON-able Python value arrays and maps are written with."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value.decode("utf-8", "replace")
    if which == "bool_value":
        return v.bool_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        d = v.double_value
        return d if math.isfinite(d) else repr(d)
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode("ascii")
    if which == "array_value":
        return [_pb_native(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key.decode("utf-8", "replace") if isinstance(kv.key, bytes) else kv.key: _pb_native(kv.value)
                for kv in v.kvlist_value.values}
    return None


def _text(native: Any) -> str:
    if isinstance(native, str):
        return _cut(native)
    if native is None:
        return "null"
    if isinstance(native, bool):
        return "true" if native else "false"
    if isinstance(native, float):
        return repr(native)
    if isinstance(native, int):
        return str(native)
    return _cut(json.dumps(native, separators=(",", ":"), ensure_ascii=False))


def pb_value_text(v: Any) -> str:
    """The text of a protobuf ``AnyValue`` (of any lean schema declaring OTLP's fields)."""
    return _text(_pb_native(v))


def _json_native(v: Any) -> Any:
    """An OTLP/JSON AnyValue (``{"stringValue": ...}`` ...) as a Python value."""
    if not isinstance(v, dict) or not v:
        return None
    for k, x in v.items():
        if k == "stringValue":
            return x if isinstance(x, str) else str(x)
        if k == "boolValue":
            return bool(x)
        if k == "intValue":
            try:
                return int(x)
            except (TypeError, ValueError):
                return str(x)
        if k == "doubleValue":
            try:
                d = float(x)
            except (TypeError, ValueError):
                return str(x)
            return d if math.isfinite(d) else repr(d)
        if k == "bytesValue":
            return str(x)
        if k == "arrayValue":
            return [_json_native(e) for e in ((x or {}).get("values") or ())]
        if k == "kvlistValue":
            return {str(kv.get("key")): _json_native(kv.get("value")) for kv in ((x or {}).get("values") or ())
                    if isinstance(kv, dict)}
    return None


def json_value_text(v: Any) -> str:
    """The text of an OTLP/JSON ``AnyValue`` object."""
    return _text(_json_native(v))


def resource_texts(pairs: Any, from_json: bool) -> tuple[dict[str, str], int]:
    """A resource's attributes as text (at most :data:`MAX_ATTRIBUTES`), and how many more
    there were. ``pairs``: a protobuf map's items, or the OTLP/JSON ``attributes`` list."""
    out: dict[str, str] = {}
    if from_json:
        items = ((kv.get("key"), kv.get("value")) for kv in pairs if isinstance(kv, dict))
        render = json_value_text
    else:
        items, render = iter(pairs), pb_value_text
    total = 0
    for key, value in items:
        total += 1
        if len(out) < MAX_ATTRIBUTES and isinstance(key, str):
            out[key] = render(value)
    return out, max(total - len(out), 0)


def _frame(raw: np.ndarray) -> bytes:
    """The raw protobuf spans as one ``Spans`` message (field 1, length-delimited each)."""
    parts = []
    for b in raw.tolist():
        b = b if isinstance(b, bytes) else b""
        n = len(b)
        head = bytearray(b"\x0a")
        while n >= 0x80:
            head.append((n & 0x7F) | 0x80)
            n >>= 7
        head.append(n)
        parts.append(bytes(head))
        parts.append(b)
    return b"".join(parts)


def parse_raw(raw: np.ndarray) -> SparseAttributes:
    """Parse what the decoders kept per span (protobuf span bytes, JSON attribute list text, or
    None: none) into dictionary-encoded attributes."""
    n = len(raw)
    rows: list[int] = []
    keys: list[str] = []
    values: list[str] = []
    dropped = np.zeros(n, np.int32)
    texts: dict[bytes, str] = {}
    names: dict[bytes, str] = {}
    is_pb = np.fromiter((isinstance(b, bytes) for b in raw.tolist()), dtype=bool, count=n)
    if is_pb.any():
        spans = _Spans.FromString(_frame(raw)).spans  # JSON entries framed as empty spans
        for i in np.flatnonzero(is_pb).tolist():
            kept = 0
            for kv in spans[i].attributes:
                if kept == MAX_ATTRIBUTES:
                    dropped[i] += 1
                    continue
                kept += 1
                key = names.get(kv.key)
                if key is None:
                    key = names[kv.key] = kv.key.decode("utf-8", "replace")
                text = texts.get(kv.value)
                if text is None:
                    text = texts[kv.value] = pb_value_text(_AnyValue.FromString(kv.value))
                rows.append(i)
                keys.append(key)
                values.append(text)
    for i in np.flatnonzero(~is_pb).tolist():
        doc = raw[i]
        if not isinstance(doc, str):
            continue
        pairs = json.loads(doc)
        found = (((str(k), v) for k, v in pairs.items()) if isinstance(pairs, dict) else
                 ((kv.get("key"), json_value_text(kv.get("value"))) for kv in pairs if isinstance(kv, dict)))
        kept = 0
        for key, text in found:
            if not isinstance(key, str):
                continue
            if kept == MAX_ATTRIBUTES:
                dropped[i] += 1
                continue
            kept += 1
            rows.append(i)
            keys.append(key)
            values.append(text if isinstance(text, str) else _text(text))
    return encode_sparse(np.array(rows, np.int64), np.array(keys, object), np.array(values, object), n, dropped)
