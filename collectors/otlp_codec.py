"""Decoding OTLP traces (protobuf, JSON, and the files tools write) into :class:`SpanBatch` columns.

Pure functions: :func:`decode_protobuf` and :func:`decode_json` take a request body and
return a :class:`Decoded`; :func:`read_trace_files` is the only reader of files. The OTLP
receiver answers HTTP 400 with a :class:`PayloadError`'s message, and reports
``sum(Decoded.rejected.values())`` as the partial success's ``rejected_spans``.

What the caller can rely on:

* A payload that cannot be parsed at all raises :class:`PayloadError` (one line, naming the
  place: ``file:line``, the record, the JSON path). A span that parses but cannot be used
  (wrong id length, no timestamps, end before start, a duplicate ...) is set aside and counted
  in ``Decoded.rejected`` under one of :data:`REJECT_REASONS`; the first matching reason wins,
  so the counts add up to the number of spans dropped.
* A span that is usable but was repaired is kept and counted in ``Decoded.warnings`` under
  one of :data:`WARNING_REASONS`: no ``service.name`` (the OTel default ``unknown_service``, or
  ``unknown_service:<process.executable.name>``, is used, as SDKs do), an unknown kind or status
  code (0 is used), an unusable first link (none is used), or a string value longer than
  :data:`MAX_VALUE_CHARS` (cut).
* Rows keep the payload's order; within one :class:`Decoded` a (trace id, span id) pair
  appears once (the first copy wins: retried exports resend the same span).

Speed: the protobuf body is parsed by upb into a *lean* copy of the OTLP schema that declares
only the fields latmap keeps (:func:`_lean_traces_data`). Skipped fields (events, most
attribute value types, trace state ...) stay unparsed bytes, and the attribute lists are
declared as ``map<string, AnyValue>``, which has the same wire layout as ``repeated KeyValue``,
so looking up the four keys of :data:`~collectors.spans.ATTRIBUTE_COLUMNS` is a hash lookup in C
rather than a Python loop over every attribute. String values are declared ``bytes`` so that
one attribute with invalid UTF-8 does not fail a whole request (the Collector does not check
either); kept strings are decoded with replacement characters. Ids, timestamps and enums are
validated on numpy arrays after the one Python loop over spans.
"""

from __future__ import annotations

import base64
import binascii
import gc
import gzip
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from collectors.spans import ATTRIBUTE_COLUMNS, SpanBatch
from mapper.errors import LatmapError, SourceError

__all__ = [
    "MAX_VALUE_CHARS",
    "REJECT_REASONS",
    "UNKNOWN_SERVICE",
    "WARNING_REASONS",
    "Decoded",
    "PayloadError",
    "decode_json",
    "decode_protobuf",
    "dedupe",
    "read_trace_files",
]


class PayloadError(LatmapError):
    """A body or trace file that cannot be decoded at all; the receiver answers HTTP 400.

    The message is one line: the place (``file:line``, ``file: record N at byte B``, a JSON
    path) and what is wrong (``invalid protobuf: ...``, ``invalid JSON: ...``).
    """


# Reasons a span is set aside (Decoded.rejected), in the order they are tested.
BAD_TRACE_ID_LENGTH = "bad trace id length"
INVALID_TRACE_ID = "invalid trace id"  # all zeros, or JSON text that is neither hex nor base64
BAD_SPAN_ID_LENGTH = "bad span id length"
INVALID_SPAN_ID = "invalid span id"
BAD_PARENT_ID_LENGTH = "bad parent span id length"
INVALID_PARENT_ID = "invalid parent span id"
MISSING_TIMESTAMPS = "missing timestamps"  # start or end is 0 (absent)
BAD_TIMESTAMP = "bad timestamp"  # negative, past 2262 (does not fit int64 ns), or not an integer
END_BEFORE_START = "end before start"
DUPLICATE_SPAN = "duplicate span"
REJECT_REASONS: tuple[str, ...] = (
    BAD_TRACE_ID_LENGTH, INVALID_TRACE_ID, BAD_SPAN_ID_LENGTH, INVALID_SPAN_ID, BAD_PARENT_ID_LENGTH,
    INVALID_PARENT_ID, MISSING_TIMESTAMPS, BAD_TIMESTAMP, END_BEFORE_START, DUPLICATE_SPAN,
)

# Reasons a span was kept but repaired (Decoded.warnings).
MISSING_SERVICE_NAME = "missing service.name"
UNKNOWN_SPAN_KIND = "unknown span kind"
UNKNOWN_STATUS_CODE = "unknown status code"
BAD_LINK_ID = "bad link id"
LONG_VALUE = "long value truncated"
WARNING_REASONS: tuple[str, ...] = (
    MISSING_SERVICE_NAME, UNKNOWN_SPAN_KIND, UNKNOWN_STATUS_CODE, BAD_LINK_ID, LONG_VALUE,
)

#: The service of spans whose resource has no ``service.name`` (OTel resource semantic conventions).
UNKNOWN_SERVICE = "unknown_service"
#: Longest kept span name, service or attribute value, in characters; longer ones are cut.
MAX_VALUE_CHARS = 1024

_INT64_MAX = 2**63 - 1
_KIND_NAMES = {f"SPAN_KIND_{n}": i for i, n in
               enumerate(("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"))}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_ATTR_KEYS = tuple(ATTRIBUTE_COLUMNS)
_ATTR_INDEX = {key: i for i, key in enumerate(_ATTR_KEYS)}
_HEX = re.compile(r"[0-9a-fA-F]*")
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Decoded:
    """The spans of one payload (or file chunk), with what was set aside and what was repaired.

    ``rejected``: reason -> spans dropped (sums to the OTLP ``rejected_spans``).
    ``warnings``: reason -> spans kept after a repair (not errors; worth showing).
    """

    batch: SpanBatch
    rejected: Mapping[str, int]
    warnings: Mapping[str, int] = field(default_factory=dict)

    @property
    def rejected_spans(self) -> int:
        return sum(self.rejected.values())

    @staticmethod
    def merge(parts: Iterable[Decoded]) -> Decoded:
        """One Decoded from several: batches concatenated and de-duplicated, counts added."""
        parts = list(parts)
        if len(parts) == 1:
            return parts[0]
        rejected: Counter[str] = Counter()
        warnings: Counter[str] = Counter()
        for part in parts:
            rejected.update(part.rejected)
            warnings.update(part.warnings)
        batch, duplicates = dedupe(SpanBatch.concat([p.batch for p in parts]))
        rejected[DUPLICATE_SPAN] += duplicates
        return Decoded(batch, _counts(rejected), _counts(warnings))


def _counts(counter: Mapping[str, int]) -> dict[str, int]:
    return {k: int(v) for k, v in sorted(counter.items()) if v}


# --------------------------------------------------------------------------- dedupe


def _first_rows(hi: np.ndarray, lo: np.ndarray, span: np.ndarray) -> np.ndarray | None:
    """Indices (ascending) of the first row of each (hi, lo, span) key; None if all are unique."""
    n = hi.size
    if n < 2:
        return None
    order = np.lexsort((span, lo, hi))  # stable: within a key, rows stay in input order
    h, lo_, s = hi[order], lo[order], span[order]
    first = np.ones(n, dtype=bool)
    first[1:] = (h[1:] != h[:-1]) | (lo_[1:] != lo_[:-1]) | (s[1:] != s[:-1])
    if first.all():
        return None
    return np.sort(order[first])


def dedupe(batch: SpanBatch) -> tuple[SpanBatch, int]:
    """``batch`` without repeated (trace id, span id) rows, and how many were removed.

    The first copy of a span is kept and the order of the rows is kept. Use it across batches
    (``dedupe(SpanBatch.concat(...))``) when retried exports may land in different requests.
    """
    keep = _first_rows(batch.trace_hi, batch.trace_lo, batch.span_id)
    if keep is None:
        return batch, 0
    return batch.take(keep), len(batch) - int(keep.size)


# --------------------------------------------------------------------------- lean schema

_OPT = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
_REP = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
_T = descriptor_pb2.FieldDescriptorProto
_LEAN_PACKAGE = "latmap.otlp_lean"

#: The lean schema: message -> (field, number, type, message type). Numbers are OTLP's
#: (opentelemetry/proto/trace/v1/trace.proto); tests check them against opentelemetry-proto.
#: ``attributes`` are maps (same wire layout as ``repeated KeyValue``); strings are bytes.
_LEAN_SCHEMA: dict[str, tuple[tuple[str, int, int, str | None], ...]] = {
    "AnyValue": (("string_value", 1, _T.TYPE_BYTES, None),),
    "Resource": (("attributes", 1, _T.TYPE_MESSAGE, "map"),),
    "Status": (("code", 3, _T.TYPE_INT32, None),),
    "Link": (("trace_id", 1, _T.TYPE_BYTES, None), ("span_id", 2, _T.TYPE_BYTES, None)),
    "Span": (
        ("trace_id", 1, _T.TYPE_BYTES, None),
        ("span_id", 2, _T.TYPE_BYTES, None),
        ("parent_span_id", 4, _T.TYPE_BYTES, None),
        ("name", 5, _T.TYPE_BYTES, None),
        ("kind", 6, _T.TYPE_INT32, None),
        ("start_time_unix_nano", 7, _T.TYPE_FIXED64, None),
        ("end_time_unix_nano", 8, _T.TYPE_FIXED64, None),
        ("attributes", 9, _T.TYPE_MESSAGE, "map"),
        ("links", 13, _T.TYPE_MESSAGE, "Link"),
        ("status", 15, _T.TYPE_MESSAGE, "Status"),
    ),
    "ScopeSpans": (("spans", 2, _T.TYPE_MESSAGE, "Span"),),
    # 1000: instrumentation_library_spans of OTLP 0.15-0.19 (before that it was field 2,
    # which is scope_spans now with the same layout).
    "ResourceSpans": (
        ("resource", 1, _T.TYPE_MESSAGE, "Resource"),
        ("scope_spans", 2, _T.TYPE_MESSAGE, "ScopeSpans"),
        ("instrumentation_library_spans", 1000, _T.TYPE_MESSAGE, "ScopeSpans"),
    ),
    # Also the layout of ExportTraceServiceRequest (field 1: resource_spans).
    "TracesData": (("resource_spans", 1, _T.TYPE_MESSAGE, "ResourceSpans"),),
}
_REPEATED = {("Span", "links"), ("ScopeSpans", "spans"), ("ResourceSpans", "scope_spans"),
             ("ResourceSpans", "instrumentation_library_spans"), ("TracesData", "resource_spans")}


def _lean_traces_data() -> Any:
    """The message class of the lean schema's TracesData, in a private descriptor pool."""
    fdp = descriptor_pb2.FileDescriptorProto(name="latmap_otlp_lean.proto", package=_LEAN_PACKAGE, syntax="proto3")
    for msg_name, fields in _LEAN_SCHEMA.items():
        msg = fdp.message_type.add(name=msg_name)
        for name, number, ftype, target in fields:
            if target == "map":
                entry = msg.nested_type.add(name="AttributesEntry")
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, type=_T.TYPE_STRING, label=_OPT)
                entry.field.add(name="value", number=2, type=_T.TYPE_MESSAGE, label=_OPT,
                                type_name=f".{_LEAN_PACKAGE}.AnyValue")
                msg.field.add(name=name, number=number, type=ftype, label=_REP,
                              type_name=f".{_LEAN_PACKAGE}.{msg_name}.AttributesEntry")
                continue
            label = _REP if (msg_name, name) in _REPEATED else _OPT
            f = msg.field.add(name=name, number=number, type=ftype, label=label)
            if target:
                f.type_name = f".{_LEAN_PACKAGE}.{target}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_LEAN_PACKAGE}.TracesData"))


_LeanTracesData = _lean_traces_data()


# --------------------------------------------------------------------------- raw columns


class _Raw:
    """Per-span values as Python lists, filled by one decoder loop, turned into arrays once.

    Ids are ``bytes`` (protobuf) or text (JSON); a missing parent or link is all zeros.
    Strings are ``bytes`` (protobuf) or ``str`` (JSON); an absent attribute is None.
    """

    def __init__(self, text_ids: bool) -> None:
        self.text_ids = text_ids
        self.trace: list[Any] = []
        self.span: list[Any] = []
        self.parent: list[Any] = []
        self.link_trace: list[Any] = []
        self.link_span: list[Any] = []
        self.start: list[Any] = []
        self.end: list[Any] = []
        self.kind: list[Any] = []
        self.status: list[Any] = []
        self.name: list[Any] = []
        self.attrs: tuple[list[Any], ...] = tuple([] for _ in _ATTR_KEYS)
        self.services: list[tuple[str, bool, int]] = []  # (service, name was missing, spans)

    def finish(self) -> Decoded:
        n = len(self.trace)
        ids = _ids_from_text if self.text_ids else _ids_from_bytes
        trace, trace_len, trace_bad = ids(self.trace, 16)
        span, span_len, span_bad = ids(self.span, 8)
        parent, parent_len, parent_bad = ids(self.parent, 8)
        link_trace, lt_len, lt_bad = ids(self.link_trace, 16)
        link_span, ls_len, ls_bad = ids(self.link_span, 8)
        start, start_bad = _timestamps(self.start)
        end, end_bad = _timestamps(self.end)
        trace_hi, trace_lo = trace[:, 0], trace[:, 1]
        span_id = span[:, 0]

        checks = (
            (BAD_TRACE_ID_LENGTH, trace_len),
            (INVALID_TRACE_ID, trace_bad | ((trace_hi == 0) & (trace_lo == 0))),
            (BAD_SPAN_ID_LENGTH, span_len),
            (INVALID_SPAN_ID, span_bad | (span_id == 0)),
            (BAD_PARENT_ID_LENGTH, parent_len),
            (INVALID_PARENT_ID, parent_bad),
            (MISSING_TIMESTAMPS, (start == 0) | (end == 0)),
            (BAD_TIMESTAMP, start_bad | end_bad),
            (END_BEFORE_START, end < start),
        )
        dropped = np.zeros(n, dtype=bool)
        rejected: dict[str, int] = {}
        for reason, mask in checks:
            new = mask & ~dropped
            if new.any():
                rejected[reason] = int(new.sum())
                dropped |= new
        keep = np.flatnonzero(~dropped)
        first = _first_rows(trace_hi[keep], trace_lo[keep], span_id[keep])
        if first is not None:
            rejected[DUPLICATE_SPAN] = int(keep.size - first.size)
            keep = keep[first]

        kind, kind_bad = _enum(self.kind, _KIND_NAMES, 5)
        status, status_bad = _enum(self.status, _STATUS_NAMES, 2)
        link_bad = lt_len | lt_bad | ls_len | ls_bad
        link_trace[link_bad] = 0
        link_span[link_bad] = 0
        names, long_mask = _strings(self.name, text=self.text_ids, empty_is_none=False)
        attrs = []
        for values in self.attrs:
            column, long_attr = _strings(values, text=self.text_ids, empty_is_none=True)
            attrs.append(column)
            long_mask |= long_attr
        service, service_missing, long_service = self._service_column(n)
        long_mask |= long_service
        warned = {MISSING_SERVICE_NAME: service_missing, UNKNOWN_SPAN_KIND: kind_bad,
                  UNKNOWN_STATUS_CODE: status_bad, BAD_LINK_ID: link_bad, LONG_VALUE: long_mask}
        warnings = {reason: int(mask[keep].sum()) for reason, mask in warned.items()}

        columns = {
            "trace_hi": trace_hi, "trace_lo": trace_lo, "span_id": span_id, "parent_id": parent[:, 0],
            "link_trace_hi": link_trace[:, 0], "link_trace_lo": link_trace[:, 1], "link_span_id": link_span[:, 0],
            "start_ns": start, "end_ns": end, "kind": kind, "status": status, "service": service, "name": names,
        }
        for col_name, column in zip(ATTRIBUTE_COLUMNS.values(), attrs, strict=True):
            columns[col_name] = column
        if keep.size != n:
            columns = {k: v[keep] for k, v in columns.items()}
        return Decoded(SpanBatch(**columns), _counts(rejected), _counts(warnings))

    def _service_column(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        counts = np.array([c for _, _, c in self.services], dtype=np.int64)
        names = np.empty(len(self.services), dtype=object)
        names[:] = [_cut(s) for s, _, _ in self.services]
        missing = np.array([m for _, m, _ in self.services], dtype=bool)
        long = np.array([len(s) > MAX_VALUE_CHARS for s, _, _ in self.services], dtype=bool)
        column = np.repeat(names, counts) if n else np.empty(0, dtype=object)
        return column, np.repeat(missing, counts), np.repeat(long, counts)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS]


def _service_name(found: str | None, executable: str | None) -> tuple[str, bool]:
    """The resource's service, and whether it had to be defaulted (OTel: ``unknown_service[:exe]``)."""
    if found:
        return found, False
    return (f"{UNKNOWN_SERVICE}:{executable}" if executable else UNKNOWN_SERVICE), True


def _ids_from_bytes(raw: list[bytes], nbytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, nbytes/8) uint64 words, wrong-length mask, invalid mask (never set for bytes)."""
    n = len(raw)
    lengths = np.fromiter(map(len, raw), dtype=np.int64, count=n)
    bad_len = lengths != nbytes
    if bad_len.any():
        zero = bytes(nbytes)
        raw = [r if len(r) == nbytes else zero for r in raw]
    words = np.frombuffer(b"".join(raw), dtype=">u8").reshape(n, nbytes // 8).astype(np.uint64)
    return words, bad_len, np.zeros(n, dtype=bool)


def _id_text_bytes(text: Any) -> bytes | None:
    """An id written as text: hex (any case) when it is all hex digits, else base64; None if neither."""
    if not isinstance(text, str):
        return None
    if len(text) % 2 == 0 and _HEX.fullmatch(text):
        return bytes.fromhex(text)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _ids_from_text(raw: list[Any], nbytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`_ids_from_bytes` for JSON ids (hex per the spec; base64 as Tempo wrote them)."""
    n = len(raw)
    try:
        # The common case, every id is hex of the right length: one fromhex for the column.
        # fromhex skips whitespace, so a length mismatch sends us to the careful path.
        joined = bytes.fromhex("".join(raw))
        if len(joined) == n * nbytes and all(len(t) == 2 * nbytes for t in raw):
            words = np.frombuffer(joined, dtype=">u8").reshape(n, nbytes // 8).astype(np.uint64)
            return words, np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    except (TypeError, ValueError):
        pass
    bad_len = np.zeros(n, dtype=bool)
    invalid = np.zeros(n, dtype=bool)
    zero = bytes(nbytes)
    out = []
    for i, text in enumerate(raw):
        value = _id_text_bytes(text)
        if value is None:
            invalid[i] = True
        elif len(value) != nbytes:
            bad_len[i] = True
        else:
            out.append(value)
            continue
        out.append(zero)
    words = np.frombuffer(b"".join(out), dtype=">u8").reshape(n, nbytes // 8).astype(np.uint64)
    return words, bad_len, invalid


def _to_int(value: Any) -> int:
    """A JSON int64 (number or decimal string) as int; -1 when it is not an integer."""
    if isinstance(value, bool):
        return -1
    if isinstance(value, float):
        return int(value) if value.is_integer() else -1
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _timestamps(raw: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """int64 nanoseconds and a mask of values that are not a usable time (negative, > int64, junk)."""
    if not raw:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    try:
        values = list(map(int, raw))
        if type(raw[0]) is not int and any(isinstance(v, (bool, float)) for v in raw):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        values = [_to_int(v) for v in raw]
    if min(values) < 0 or max(values) > _INT64_MAX:
        values = [v if 0 <= v <= _INT64_MAX else -1 for v in values]
    arr = np.array(values, dtype=np.int64)
    bad = arr < 0
    arr[bad] = 0
    return arr, bad


def _enum_value(value: Any, names: Mapping[str, int]) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value in names:
            return names[value]
        try:
            return int(value)
        except ValueError:
            return -1
    return -1


def _enum(raw: list[Any], names: Mapping[str, int], top: int) -> tuple[np.ndarray, np.ndarray]:
    """int8 enum values (0 where unknown) and the mask of unknown ones."""
    try:
        arr = np.array(raw, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        arr = np.array([_enum_value(v, names) for v in raw], dtype=np.int64)
    unknown = (arr < 0) | (arr > top)
    arr[unknown] = 0
    return arr.astype(np.int8), unknown


def _strings(raw: list[Any], *, text: bool, empty_is_none: bool) -> tuple[np.ndarray, np.ndarray]:
    """An object column of str (None where absent), and the mask of values cut to MAX_VALUE_CHARS."""
    n = len(raw)
    if not text:
        values: list[Any] = [b.decode("utf-8", "replace") if b else (None if empty_is_none else "") for b in raw]
    elif empty_is_none:
        values = [v if isinstance(v, str) and v else None for v in raw]
    else:
        values = raw if all(type(v) is str for v in raw) else [v if isinstance(v, str) else "" for v in raw]
    long = np.zeros(n, dtype=bool)
    if max(map(len, filter(None, values)), default=0) > MAX_VALUE_CHARS:
        for i, v in enumerate(values):
            if v is not None and len(v) > MAX_VALUE_CHARS:
                values[i] = v[:MAX_VALUE_CHARS]
                long[i] = True
    column = np.empty(n, dtype=object)
    column[:] = values
    return column, long


# --------------------------------------------------------------------------- protobuf


def decode_protobuf(body: bytes) -> Decoded:
    """Decode an OTLP/protobuf ``ExportTraceServiceRequest`` (or ``TracesData``: same layout).

    Raises :class:`PayloadError` ("invalid protobuf: ...") when the bytes do not parse.
    """
    try:
        data = _LeanTracesData.FromString(body)
    except DecodeError as err:
        raise PayloadError(f"invalid protobuf: {err}") from err
    raw = _Raw(text_ids=False)
    # The loop allocates a few objects per span and no cycles; the cyclic GC's scans of the
    # growing lists only cost time (about a third of the loop), so it is paused.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _copy_protobuf(data, raw)
    finally:
        if gc_was_enabled:
            gc.enable()
    return raw.finish()


def _copy_protobuf(data: Any, raw: _Raw) -> None:
    """The one loop over spans: copy the kept fields of each into the lists of ``raw``."""
    trace, span, parent = raw.trace.append, raw.span.append, raw.parent.append
    link_trace, link_span = raw.link_trace.append, raw.link_span.append
    start, end, kind, status, name = raw.start.append, raw.end.append, raw.kind.append, raw.status.append, raw.name.append
    a0, a1, a2, a3 = (values.append for values in raw.attrs)
    k0, k1, k2, k3 = _ATTR_KEYS
    zero8, zero16 = bytes(8), bytes(16)
    services = raw.services
    for resource_spans in data.resource_spans:
        attributes = resource_spans.resource.attributes
        service = attributes.get("service.name")
        executable = attributes.get("process.executable.name")
        service_name, missing = _service_name(
            service.string_value.decode("utf-8", "replace") if service is not None else None,
            executable.string_value.decode("utf-8", "replace") if executable is not None else None,
        )
        before = len(raw.trace)
        for scope_spans in resource_spans.scope_spans or resource_spans.instrumentation_library_spans:
            for s in scope_spans.spans:
                trace(s.trace_id)
                span(s.span_id)
                parent(s.parent_span_id or zero8)
                start(s.start_time_unix_nano)
                end(s.end_time_unix_nano)
                kind(s.kind)
                status(s.status.code)
                name(s.name)
                links = s.links
                if links:
                    first = links[0]
                    link_trace(first.trace_id or zero16)
                    link_span(first.span_id or zero8)
                else:
                    link_trace(zero16)
                    link_span(zero8)
                at = s.attributes
                if at:
                    v = at.get(k0)
                    a0(None if v is None else v.string_value)
                    v = at.get(k1)
                    a1(None if v is None else v.string_value)
                    v = at.get(k2)
                    a2(None if v is None else v.string_value)
                    v = at.get(k3)
                    a3(None if v is None else v.string_value)
                else:
                    a0(None)
                    a1(None)
                    a2(None)
                    a3(None)
        services.append((service_name, missing, len(raw.trace) - before))


# --------------------------------------------------------------------------- JSON


def decode_json(body: bytes | str) -> Decoded:
    """Decode OTLP/JSON traces, and the shapes real dumps have.

    Accepted: ``{"resourceSpans": [...]}`` (ExportTraceServiceRequest / TracesData) with ids in
    hex of any case or base64, int64s as numbers or strings, enums as ints or names
    (``"SPAN_KIND_SERVER"``); Tempo's ``{"batches": [...]}`` with ``instrumentationLibrarySpans``;
    Jaeger api_v3's ``{"result": ...}``; ``{"trace": ...}``; a JSON list of such documents.
    Raises :class:`PayloadError` for text that is not JSON ("invalid JSON: ... at line L column C")
    and for JSON of another shape (metrics, logs, an error response).
    """
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as err:
        raise PayloadError(f"invalid JSON: {err.msg} at line {err.lineno} column {err.colno}") from err
    except UnicodeDecodeError as err:
        raise PayloadError(f"invalid JSON: not UTF-8 text (byte {err.start})") from err
    except RecursionError as err:
        raise PayloadError("invalid JSON: nested too deeply") from err
    return _decode_document(doc)


def _resource_spans_of(doc: Any, out: list[Any]) -> None:
    """Append the ResourceSpans objects of one document (any accepted shape) to ``out``."""
    if isinstance(doc, list):
        for item in doc:
            _resource_spans_of(item, out)
        return
    if not isinstance(doc, dict):
        raise PayloadError(f"expected a JSON object with resourceSpans, got {type(doc).__name__}")
    for key in ("resourceSpans", "batches"):
        if key in doc:
            spans = doc[key] or []
            if not isinstance(spans, list):
                raise PayloadError(f"{key}: expected a list, got {type(spans).__name__}")
            out.extend(spans)
            return
    for wrapper in ("result", "trace"):
        if isinstance(doc.get(wrapper), (dict, list)):
            _resource_spans_of(doc[wrapper], out)
            return
    if "error" in doc:
        error = doc["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise PayloadError(f"the document is an error response, not traces: {message}")
    for other in ("resourceMetrics", "resourceLogs", "resourceProfiles"):
        if other in doc:
            raise PayloadError(f"the document holds {other}, not resourceSpans")
    # No known key: an empty request (unknown fields are ignored, as OTLP/JSON requires).


def _decode_document(doc: Any) -> Decoded:
    resource_spans: list[Any] = []
    _resource_spans_of(doc, resource_spans)
    raw = _Raw(text_ids=True)
    i = j = 0
    before = 0
    try:
        for i, rs in enumerate(resource_spans):
            before = len(raw.trace)
            j = -1
            service, missing = _json_service(rs.get("resource"))
            for j, ss in enumerate(rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ()):
                _copy_json_spans(ss.get("spans") or (), raw)
                before = len(raw.trace)
            raw.services.append((service, missing, len(raw.trace) - sum(c for _, _, c in raw.services)))
    except (AttributeError, TypeError, KeyError, IndexError) as err:
        where = f"resourceSpans[{i}]" + (f".scopeSpans[{j}].spans[{len(raw.trace) - before}]" if j >= 0 else "")
        raise PayloadError(f"{where}: not an OTLP object of the expected shape ({err})") from err
    return raw.finish()


def _json_service(resource: Any) -> tuple[str, bool]:
    found = executable = None
    for kv in (resource or {}).get("attributes") or ():
        key = kv.get("key")
        if key in ("service.name", "process.executable.name"):
            value = (kv.get("value") or {}).get("stringValue")
            if isinstance(value, str):
                if key == "service.name":
                    found = value
                else:
                    executable = value
    return _service_name(found, executable)


def _copy_json_spans(spans: Iterable[Any], raw: _Raw) -> None:
    trace, span, parent = raw.trace.append, raw.span.append, raw.parent.append
    link_trace, link_span = raw.link_trace.append, raw.link_span.append
    start, end, kind, status, name = raw.start.append, raw.end.append, raw.kind.append, raw.status.append, raw.name.append
    appends = tuple(values.append for values in raw.attrs)
    index = _ATTR_INDEX
    zero8, zero16 = "0" * 16, "0" * 32
    for sp in spans:
        get = sp.get
        trace(get("traceId") or "")
        span(get("spanId") or "")
        parent(get("parentSpanId") or zero8)
        start(get("startTimeUnixNano", 0))
        end(get("endTimeUnixNano", 0))
        kind(get("kind", 0))
        st = get("status")
        status(st.get("code", 0) if st else 0)
        name(get("name", ""))
        links = get("links")
        if links:
            first = links[0]
            link_trace(first.get("traceId") or zero16)
            link_span(first.get("spanId") or zero8)
        else:
            link_trace(zero16)
            link_span(zero8)
        found: list[Any] = [None, None, None, None]
        for kv in get("attributes") or ():
            col = index.get(kv.get("key"))
            if col is not None:
                found[col] = (kv.get("value") or {}).get("stringValue")
        for append, value in zip(appends, found, strict=True):
            append(value)


# --------------------------------------------------------------------------- files


def read_trace_files(path: str | Path, *, batch_spans: int = 65_536) -> Iterator[Decoded]:
    """Decode a trace file, or every file under a directory (recursively, in sorted order).

    The format is recognised from the content, not the name:

    * JSON lines, one TracesData per line, as the Collector's ``file`` exporter writes;
    * one JSON document (any shape :func:`decode_json` accepts), e.g. a ``.json`` download;
    * one protobuf TracesData / ExportTraceServiceRequest (``.pb``, ``.binpb``);
    * length-prefixed protobuf, the ``file`` exporter's ``format: proto``: each message after
      a 4-byte big-endian length;
    * any of these gzip-compressed. (zstd, the exporter's ``compression: zstd``, is reported.)

    Files are streamed (a JSON-lines file is read line by line); consecutive lines or records
    are merged into one :class:`Decoded` of about ``batch_spans`` spans, de-duplicated. Hidden
    files and directories (``.name``) are skipped. Raises :class:`PayloadError` naming the file
    and line (``spans.jsonl:17: invalid JSON: ...``) or record, and SourceError when a file
    cannot be read.
    """
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*")
                       if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
    elif root.is_file():
        files = [root]
    else:
        raise SourceError(f"{root}: no such file or directory")
    for file in files:
        try:
            with _open_stream(file) as stream:
                yield from _coalesce(_read_stream(stream, str(file)), batch_spans)
        except OSError as err:
            raise SourceError(f"{file}: cannot read: {err.strerror or err}") from err


def _open_stream(file: Path) -> IO[bytes]:
    handle = open(file, "rb")  # noqa: SIM115 - returned to the caller's with-block
    if handle.peek(2)[:2] == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=handle, mode="rb")  # closes only itself; handle is closed by GC
    return handle


def _coalesce(parts: Iterable[Decoded], target: int) -> Iterator[Decoded]:
    pending: list[Decoded] = []
    count = 0
    for part in parts:
        pending.append(part)
        count += len(part.batch)
        if count >= target:
            yield Decoded.merge(pending)
            pending, count = [], 0
    if pending:
        yield Decoded.merge(pending)


def _read_stream(stream: Any, name: str) -> Iterator[Decoded]:
    head = stream.peek(4096)
    if not head:
        return
    if head.startswith(_ZSTD_MAGIC):
        raise PayloadError(f"{name}: zstd-compressed (the file exporter's compression: zstd); decompress it first")
    first = head.lstrip(b" \t\r\n\xef\xbb\xbf")[:1]
    if first in (b"{", b"["):
        yield from _read_json(stream, name)
    elif head[:1] == b"\x0a":  # field 1 (resource_spans), length-delimited: one bare message
        yield _decode_record(stream.read(), name, "")
    else:
        yield from _read_framed(stream, name)


def _decode_record(body: bytes, name: str, where: str) -> Decoded:
    if body[:4] == _ZSTD_MAGIC:
        raise PayloadError(f"{name}{where}: zstd-compressed (the file exporter's compression: zstd); "
                           "decompress it first")
    try:
        if body.lstrip()[:1] in (b"{", b"["):
            return decode_json(body)
        return decode_protobuf(body)
    except PayloadError as err:
        raise PayloadError(f"{name}{where}: {err}") from err


def _read_framed(stream: Any, name: str) -> Iterator[Decoded]:
    offset = 0
    record = 0
    while prefix := stream.read(4):
        record += 1
        where = f": record {record} at byte {offset}"
        if len(prefix) < 4:
            raise PayloadError(f"{name}{where}: truncated length prefix ({len(prefix)} of 4 bytes)")
        size = int.from_bytes(prefix, "big")
        body = _read_exact(stream, size)
        if len(body) < size:
            raise PayloadError(f"{name}{where}: truncated record ({len(body)} of {size} bytes)")
        yield _decode_record(body, name, where)
        offset += 4 + size


def _read_exact(stream: Any, size: int) -> bytes:
    """Up to ``size`` bytes, read in pieces so that a corrupt length does not allocate gigabytes."""
    chunks = []
    left = size
    while left > 0:
        chunk = stream.read(min(left, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_json(stream: Any, name: str) -> Iterator[Decoded]:
    lines = iter(stream)
    lineno = 0
    first = b""
    for first in lines:
        lineno += 1
        if first.strip():
            break
    text = first.strip().lstrip(b"\xef\xbb\xbf")
    if (text[:1], text[-1:]) in ((b"{", b"}"), (b"[", b"]")):
        # JSON lines: each line a whole document.
        yield _json_line(text, name, lineno)
        for line in lines:
            lineno += 1
            if line.strip():
                yield _json_line(line, name, lineno)
        return
    # One document spread over lines: it has to be read whole.
    body = first + b"".join(lines)
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as err:
        raise PayloadError(f"{name}:{lineno + err.lineno - 1}: invalid JSON: {err.msg} at column {err.colno}") from err
    except (UnicodeDecodeError, RecursionError) as err:
        raise PayloadError(f"{name}: invalid JSON: {err}") from err
    try:
        yield _decode_document(doc)
    except PayloadError as err:
        raise PayloadError(f"{name}: {err}") from err


def _json_line(line: bytes, name: str, lineno: int) -> Decoded:
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as err:
        raise PayloadError(f"{name}:{lineno}: invalid JSON: {err.msg} at column {err.colno}") from err
    except (UnicodeDecodeError, RecursionError) as err:
        raise PayloadError(f"{name}:{lineno}: invalid JSON: {err}") from err
    try:
        return _decode_document(doc)
    except PayloadError as err:
        raise PayloadError(f"{name}:{lineno}: {err}") from err
