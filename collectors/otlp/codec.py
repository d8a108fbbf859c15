"""Decoding OTLP traces (protobuf, JSON, and the files tools write) into :class:`SpanBatch` columns.

Pure functions: :func:`decode_protobuf` (here) and :func:`collectors.otlp.json.decode_json` take
a request body and return a :class:`Decoded`; :func:`collectors.otlp.files.read_trace_files` is
the only reader of files. This module also holds what the three share: the columns being
filled (:class:`RawColumns`), the reasons a span is set aside, and :class:`Decoded`. The OTLP
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
  code (0 is used), a link with a malformed id (kept with zero ids, so the map counts it;
  the ``link_*`` columns get none), or a string value longer than
  :data:`MAX_VALUE_CHARS` (cut).
* Rows keep the payload's order; within one :class:`Decoded` a (trace id, span id) pair
  appears once (the first copy wins: retried exports resend the same span).

Speed: the protobuf body is parsed by upb into a *lean* copy of the OTLP schema that declares
only the fields latmap keeps (:func:`_lean_traces_data`). Skipped fields (events, most
attribute value types, trace state ...) stay unparsed bytes, and the attribute lists are
declared as ``map<string, AnyValue>``, which has the same wire layout as ``repeated KeyValue``,
so looking up the four keys of :data:`~mapper.core.spans.ATTRIBUTE_COLUMNS` is a hash lookup in C
rather than a Python loop over every attribute. String values are declared ``bytes`` so that
one attribute with invalid UTF-8 does not fail a whole request (the Collector does not check
either); kept strings are decoded with replacement characters. Ids, timestamps and enums are
validated on numpy arrays after the one Python loop over spans.
"""

from __future__ import annotations

import base64
import binascii
import gc
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from mapper.core.errors import LatmapError
from mapper.core.spans import ATTRIBUTE_COLUMNS, SpanBatch, SpanLinks, dedupe, first_rows

log = logging.getLogger(__name__)

__all__ = [
    "BAD_LINK_ID",
    "BAD_PARENT_ID_LENGTH",
    "BAD_SPAN_ID_LENGTH",
    "BAD_TIMESTAMP",
    "BAD_TRACE_ID_LENGTH",
    "DUPLICATE_SPAN",
    "END_BEFORE_START",
    "INVALID_PARENT_ID",
    "INVALID_SPAN_ID",
    "INVALID_TRACE_ID",
    "LONG_VALUE",
    "MAX_VALUE_CHARS",
    "MISSING_SERVICE_NAME",
    "MISSING_TIMESTAMPS",
    "REJECT_REASONS",
    "UNKNOWN_SERVICE",
    "UNKNOWN_SPAN_KIND",
    "UNKNOWN_STATUS_CODE",
    "WARNING_REASONS",
    "Decoded",
    "PayloadError",
    "decode_protobuf",
]


class PayloadError(LatmapError):
    """A body or trace file that cannot be decoded at all; the receiver answers HTTP 400.

    The message is one line: the place (``file:line``, ``file: record N at byte B``, a JSON
    path) and what is wrong (``invalid protobuf: ...``, ``invalid JSON: ...``).
    """


class NotTraces(PayloadError):
    """Content that is something else (metrics, logs, YAML ...): skipped in a directory walk."""


# Reasons a span is set aside (Decoded.rejected), in the order they are tested.
BAD_TRACE_ID_LENGTH = "bad trace id length"
INVALID_TRACE_ID = "invalid trace id"  # all zeros, or JSON text that is neither hex nor base64
BAD_SPAN_ID_LENGTH = "bad span id length"
INVALID_SPAN_ID = "invalid span id"
BAD_PARENT_ID_LENGTH = "bad parent span id length"
INVALID_PARENT_ID = "invalid parent span id"
BAD_TIMESTAMP = "bad timestamp"  # negative, past 2262 (does not fit int64 ns), or not an integer
MISSING_TIMESTAMPS = "missing timestamps"  # start or end is 0 (absent)
END_BEFORE_START = "end before start"
DUPLICATE_SPAN = "duplicate span"
REJECT_REASONS: tuple[str, ...] = (
    BAD_TRACE_ID_LENGTH, INVALID_TRACE_ID, BAD_SPAN_ID_LENGTH, INVALID_SPAN_ID, BAD_PARENT_ID_LENGTH,
    INVALID_PARENT_ID, BAD_TIMESTAMP, MISSING_TIMESTAMPS, END_BEFORE_START, DUPLICATE_SPAN,
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
ATTR_INDEX = {key: i for i, key in enumerate(_ATTR_KEYS)}
_HEX = re.compile(r"[0-9a-fA-F]*")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"


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


class RawColumns:
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
        # every link, flat: the linking span's index, the linked trace and span ids
        self.links_row: list[int] = []
        self.links_trace: list[Any] = []
        self.links_span: list[Any] = []
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
        all_links = self._links(ids, n)
        start, start_bad = _timestamps(self.start, text=self.text_ids)
        end, end_bad = _timestamps(self.end, text=self.text_ids)
        for converted in (self.trace, self.span, self.parent, self.link_trace, self.link_span, self.start, self.end,
                          self.links_row, self.links_trace, self.links_span):
            converted.clear()  # single use: free the per-span objects before building more
        trace_hi, trace_lo = trace[:, 0].copy(), trace[:, 1].copy()
        span_id = span[:, 0]

        checks = (
            (BAD_TRACE_ID_LENGTH, trace_len),
            (INVALID_TRACE_ID, trace_bad | ((trace_hi == 0) & (trace_lo == 0))),
            (BAD_SPAN_ID_LENGTH, span_len),
            (INVALID_SPAN_ID, span_bad | (span_id == 0)),
            (BAD_PARENT_ID_LENGTH, parent_len),
            (INVALID_PARENT_ID, parent_bad),
            (BAD_TIMESTAMP, start_bad | end_bad),
            (MISSING_TIMESTAMPS, (start == 0) | (end == 0)),
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
        first = first_rows(trace_hi[keep], trace_lo[keep], span_id[keep])
        if first is not None:
            rejected[DUPLICATE_SPAN] = int(keep.size - first.size)
            keep = keep[first]

        kind, kind_bad = _enum(self.kind, _KIND_NAMES, 5)
        status, status_bad = _enum(self.status, _STATUS_NAMES, 2)
        link_bad = lt_len | lt_bad | ls_len | ls_bad
        link_trace[link_bad] = 0
        link_span[link_bad] = 0
        # any malformed link of the span (kept in ``all_links`` with zero ids)
        link_bad = link_bad.copy()
        zero = (all_links.span_id == 0) | ((all_links.trace_hi == 0) & (all_links.trace_lo == 0))
        link_bad[all_links.row[zero]] = True
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
            "link_trace_hi": link_trace[:, 0].copy(), "link_trace_lo": link_trace[:, 1].copy(),
            "link_span_id": link_span[:, 0],
            "start_ns": start, "end_ns": end, "kind": kind, "status": status, "service": service, "name": names,
        }
        for col_name, column in zip(ATTRIBUTE_COLUMNS.values(), attrs, strict=True):
            columns[col_name] = column
        if keep.size != n:
            columns = {k: v[keep] for k, v in columns.items()}
            all_links = all_links.take_rows(keep, n)
        return Decoded(SpanBatch(**columns, links=all_links), _counts(rejected), _counts(warnings))

    def _links(self, ids: Any, n: int) -> SpanLinks:
        """Every link; a malformed id (wrong length, not hex) becomes zeros, kept to be counted."""
        trace, t_len, t_bad = ids(self.links_trace, 16)
        span, s_len, s_bad = ids(self.links_span, 8)
        bad = t_len | t_bad | s_len | s_bad | (span[:, 0] == 0) | ((trace[:, 0] == 0) & (trace[:, 1] == 0))
        trace[bad] = 0
        span[bad] = 0
        return SpanLinks(np.asarray(self.links_row, dtype=np.int64).reshape(-1), trace[:, 0].copy(),
                         trace[:, 1].copy(), span[:, 0].copy())

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


def resolve_service_name(found: str | None, executable: str | None) -> tuple[str, bool]:
    """The resource's service, and whether it had to be defaulted (OTel: ``unknown_service[:exe]``)."""
    if found:
        return found, False
    return (f"{UNKNOWN_SERVICE}:{executable}" if executable else UNKNOWN_SERVICE), True


def _ids_from_bytes(raw: list[bytes], nbytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, nbytes/8) uint64 words, wrong-length mask, invalid mask (never set for bytes)."""
    n = len(raw)
    bad_len = np.zeros(n, dtype=bool)
    if n and set(map(len, raw)) != {nbytes}:
        bad_len = np.fromiter(map(len, raw), dtype=np.int64, count=n) != nbytes
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
        if len(joined) == n * nbytes and set(map(len, raw)) == {2 * nbytes}:
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


def _timestamps(raw: list[Any], *, text: bool) -> tuple[np.ndarray, np.ndarray]:
    """int64 nanoseconds (0 where unusable) and the mask of unusable ones (negative, > int64, junk).

    ``text``: values come from JSON (numbers or decimal strings), not protobuf (always int).
    """
    if not raw:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    if not text:  # fixed64: always 0 .. 2**64-1
        unsigned = np.array(raw, dtype=np.uint64)
        bad = unsigned > _INT64_MAX
        unsigned[bad] = 0
        return unsigned.view(np.int64), bad
    try:
        if not set(map(type, raw)) <= {int, str}:
            raise ValueError
        values = list(map(int, raw))
    except (TypeError, ValueError, OverflowError):
        values = [_to_int(v) for v in raw]
    if min(values) < 0 or max(values) > _INT64_MAX:
        values = [v if 0 <= v <= _INT64_MAX else -1 for v in values]
    arr = np.array(values, dtype=np.int64)
    bad = arr < 0
    arr[bad] = 0
    return arr, bad


def _enum_value(value: Any, names: Mapping[str, int]) -> int:
    """An enum from JSON: an int, a decimal string or the value's name; -1 when it is none of them."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if -1 <= value < 2**31 else -1
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
        if raw and set(map(type, raw)) != {int}:
            raise TypeError  # JSON names, strings, nulls, lists ...: one by one
        arr = np.array(raw, dtype=np.int64)
    except (TypeError, OverflowError):
        arr = np.array([_enum_value(v, names) for v in raw], dtype=np.int64)
    unknown = (arr < 0) | (arr > top)
    arr[unknown] = 0
    return arr.astype(np.int8), unknown


def _strings(raw: list[Any], *, text: bool, empty_is_none: bool) -> tuple[np.ndarray, np.ndarray]:
    """An object column of str (None where absent), and the mask of values cut to MAX_VALUE_CHARS."""
    n = len(raw)
    empty = None if empty_is_none else ""
    long = np.zeros(n, dtype=bool)
    distinct = None if text else set(raw)
    if distinct is not None and len(distinct) * 4 < n:
        # Names and attribute values repeat a lot: decode each distinct value once (which also
        # makes the repeats one object) and look for long ones among the distinct values only.
        decoded: dict[Any, Any] = {b: b.decode("utf-8", "replace") if b else empty for b in distinct}
        decoded[None] = None
        too_long = {b for b, v in decoded.items() if v is not None and len(v) > MAX_VALUE_CHARS}
        for b in too_long:
            decoded[b] = decoded[b][:MAX_VALUE_CHARS]
        values: list[Any] = list(map(decoded.__getitem__, raw))
        if too_long:
            long = np.fromiter((b in too_long for b in raw), dtype=bool, count=n)
    else:
        if not text:
            values = [b.decode("utf-8", "replace") if b else empty for b in raw]
        elif empty_is_none:
            values = [v if isinstance(v, str) and v else None for v in raw]
        else:
            values = raw if all(type(v) is str for v in raw) else [v if isinstance(v, str) else "" for v in raw]
        if max(map(len, filter(None, values)), default=0) > MAX_VALUE_CHARS:
            values = list(values)
            for i, v in enumerate(values):
                if v is not None and len(v) > MAX_VALUE_CHARS:
                    values[i] = v[:MAX_VALUE_CHARS]
                    long[i] = True
    column = np.empty(n, dtype=object)
    column[:] = values
    return column, long


# --------------------------------------------------------------------------- protobuf


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a decoder allocates millions of acyclic objects.

    Each allocation burst otherwise triggers collections that scan everything built so far:
    json.loads of a large body runs 4-5x faster without them, the protobuf copy loop about a
    third faster. Reference counting still frees memory; nothing built here has cycles. The
    previous state is restored (concurrent decoders leave it enabled when it was).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def decode_protobuf(body: bytes) -> Decoded:
    """Decode an OTLP/protobuf ``ExportTraceServiceRequest`` (or ``TracesData``: same layout).

    Raises :class:`PayloadError` ("invalid protobuf: ...") when the bytes do not parse. Peak
    memory is about six times the body (the parsed message, then the lists and columns), so
    the caller's body-size limit is what bounds it.
    """
    raw = RawColumns(text_ids=False)
    with gc_paused():
        try:
            data = _LeanTracesData.FromString(body)
        except DecodeError as err:
            detail = str(err).rsplit(": ", 1)[-1].lower()  # upb: "Error parsing message with type 'T': why"
            raise PayloadError(f"invalid protobuf: {detail} (expected an OTLP ExportTraceServiceRequest)") from err
        _copy_protobuf(data, raw)
        del data  # the parsed message is the biggest thing alive: free it before building columns
        return raw.finish()


def _copy_protobuf(data: Any, raw: RawColumns) -> None:
    """The one loop over spans: copy the kept fields of each into the lists of ``raw``."""
    trace, span, parent = raw.trace.append, raw.span.append, raw.parent.append
    link_trace, link_span = raw.link_trace.append, raw.link_span.append
    links_row, links_trace, links_span = raw.links_row.append, raw.links_trace.append, raw.links_span.append
    start, end, name = raw.start.append, raw.end.append, raw.name.append
    kind, status = raw.kind.append, raw.status.append
    a0, a1, a2, a3 = (values.append for values in raw.attrs)
    k0, k1, k2, k3 = _ATTR_KEYS
    zero8, zero16 = bytes(8), bytes(16)
    services = raw.services
    for resource_spans in data.resource_spans:
        attributes = resource_spans.resource.attributes
        service = attributes.get("service.name")
        executable = attributes.get("process.executable.name")
        service_name, missing = resolve_service_name(
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
                    row = len(raw.trace) - 1
                    for link in links:
                        links_row(row)
                        links_trace(link.trace_id or zero16)
                        links_span(link.span_id or zero8)
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
