"""The span columns an OTLP decoder fills, and how its values become checked arrays.

A decoder (:mod:`collectors.otlp.protobuf`, :mod:`collectors.otlp.json`) runs one Python loop
over the spans, appending each kept field to the lists of a :class:`RawColumns`; everything
after that is vectorised in :meth:`RawColumns.finish`: ids, timestamps and enums are converted
and validated on numpy arrays, spans that cannot be used are set aside with their reason and
repairs are counted (:mod:`collectors.otlp.codec` says which, and what a caller can rely on).
Ids arrive as bytes (protobuf) or text (JSON: hex per the spec, base64 as Tempo wrote them);
strings as UTF-8 bytes, decoded here with replacement characters, or str.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from collectors.otlp.attributes import parse_raw
from collectors.otlp.codec import (
    BAD_LINK_ID,
    BAD_PARENT_ID_LENGTH,
    BAD_SPAN_ID_LENGTH,
    BAD_TIMESTAMP,
    BAD_TRACE_ID_LENGTH,
    DUPLICATE_SPAN,
    END_BEFORE_START,
    INVALID_PARENT_ID,
    INVALID_SAMPLING_THRESHOLD,
    INVALID_SPAN_ID,
    INVALID_TRACE_ID,
    LONG_VALUE,
    MAX_VALUE_CHARS,
    MISSING_SERVICE_NAME,
    MISSING_TIMESTAMPS,
    UNKNOWN_SERVICE,
    UNKNOWN_SPAN_KIND,
    UNKNOWN_STATUS_CODE,
    Decoded,
    nonzero_counts,
)
from mapper.core.spans import (
    ATTRIBUTE_COLUMNS,
    TH_NOT_SAMPLED,
    TH_UNKNOWN,
    SpanAttributes,
    SpanBatch,
    SpanLinks,
    first_rows,
)

__all__ = ["ATTR_INDEX", "ATTR_KEYS", "TAIL_POLICY_KEY", "Converted", "RawColumns", "resolve_service_name",
           "threshold_of"]

_INT64_MAX = 2**63 - 1
_KIND_NAMES = {f"SPAN_KIND_{n}": i for i, n in
               enumerate(("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"))}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
#: The span attributes kept, in the order of ``RawColumns.attrs``.
ATTR_KEYS = tuple(ATTRIBUTE_COLUMNS)
ATTR_INDEX = {key: i for i, key in enumerate(ATTR_KEYS)}
_HEX = re.compile(r"[0-9a-fA-F]*")
#: The ``ot`` list-member of a W3C tracestate (OWS allowed around members), and its ``th`` sub-key.
_OT_MEMBER = re.compile(r"(?:^|,)[ \t]*ot=([^,]*)")
_TH = re.compile(r"[0-9a-f]{1,14}")
#: The instrumentation-scope attribute the Collector's tail-sampling processor writes on the
#: spans it keeps (feature gate ``processor.tailsamplingprocessor.recordpolicy``).
TAIL_POLICY_KEY = "tailsampling.policy"
#: The resource attribute naming one worker of a service (the ``instance`` column).
INSTANCE_KEY = "service.instance.id"
#: OTLP span flags: the W3C trace flags are the low 8 bits, ``sampled`` is bit 0.
_SAMPLED_FLAG = 0x1
_TH_MALFORMED = -3  # a malformed th while building the column: counted, then made unknown



#: An id column: (n, words) uint64, wrong-length mask, invalid mask.
IdColumn = tuple[np.ndarray, np.ndarray, np.ndarray]
#: A column with the mask of its unusable (or cut) values.
Masked = tuple[np.ndarray, np.ndarray]


class Converted(NamedTuple):
    """A decoder's per-span values as arrays, before the checks (:meth:`RawColumns.assemble`):
    ids as words with their length and validity masks, ``all_links`` with malformed ids
    zeroed, timestamps / enums / thresholds with their bad masks, strings decoded with the
    mask of those cut."""

    trace: IdColumn
    span: IdColumn
    parent: IdColumn
    link_trace: IdColumn
    link_span: IdColumn
    all_links: SpanLinks
    start: Masked
    end: Masked
    kind: Masked
    status: Masked
    names: Masked
    attrs: tuple[Masked, ...]
    thresholds: Masked
    exceptions: np.ndarray


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
        self.attrs: tuple[list[Any], ...] = tuple([] for _ in ATTR_KEYS)
        self.trace_state: list[Any] = []  # bytes (protobuf) or str/None (JSON)
        self.flags: list[Any] = []  # OTLP span flags; 0 when absent
        self.services: list[tuple[str, bool, int]] = []  # (service, name was missing, spans)
        self.policies: list[tuple[Any, int]] = []  # (scope's tailsampling.policy or None, spans)
        self.exceptions: list[int] = []  # events named "exception", per span
        # per resource, as self.services: its attributes as text and how many were left out
        self.resources: list[tuple[dict[str, str], int]] = []
        # per span, its attributes as received (protobuf: the span's bytes; JSON: the list as text)
        self.raw_attributes: list[Any] = []

    def finish(self) -> Decoded:
        """The checked batch: the lists converted to arrays (:meth:`converted`), then :meth:`assemble`."""
        return self.assemble(self.converted())

    def converted(self) -> Converted:
        """The per-span lists as arrays (each list freed once converted)."""
        ids = _ids_from_text if self.text_ids else _ids_from_bytes
        trace = ids(self.trace, 16)
        span = ids(self.span, 8)
        parent = ids(self.parent, 8)
        link_trace = ids(self.link_trace, 16)
        link_span = ids(self.link_span, 8)
        all_links = self._links(ids, len(self.trace))
        start = _timestamps(self.start, text=self.text_ids)
        end = _timestamps(self.end, text=self.text_ids)
        for converted in (self.trace, self.span, self.parent, self.link_trace, self.link_span, self.start, self.end,
                          self.links_row, self.links_trace, self.links_span):
            converted.clear()  # single use: free the per-span objects before building more
        names = _strings(self.name, text=self.text_ids, empty_is_none=False)
        attrs = tuple(_strings(values, text=self.text_ids, empty_is_none=True) for values in self.attrs)
        n = len(names[0])
        return Converted(trace, span, parent, link_trace, link_span, all_links, start, end,
                         _enum(self.kind, _KIND_NAMES, 5), _enum(self.status, _STATUS_NAMES, 2), names, attrs,
                         _thresholds(self.trace_state, self.flags),
                         np.asarray(self.exceptions, dtype=np.int64).reshape(n))

    def assemble(self, c: Converted) -> Decoded:
        """Check the converted columns, set aside the spans that cannot be used, count the
        repairs: one batch. The decoders that fill arrays directly (:mod:`collectors.otlp.fast`)
        call this too, so every decoder applies the very same checks."""
        trace, trace_len, trace_bad = c.trace
        span, span_len, span_bad = c.span
        parent, parent_len, parent_bad = c.parent
        link_trace, lt_len, lt_bad = c.link_trace
        link_span, ls_len, ls_bad = c.link_span
        all_links = c.all_links
        (start, start_bad), (end, end_bad) = c.start, c.end
        n = len(start)
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

        (kind, kind_bad), (status, status_bad) = c.kind, c.status
        link_bad = lt_len | lt_bad | ls_len | ls_bad
        link_trace[link_bad] = 0
        link_span[link_bad] = 0
        # any malformed link of the span (kept in ``all_links`` with zero ids)
        link_bad = link_bad.copy()
        zero = (all_links.span_id == 0) | ((all_links.trace_hi == 0) & (all_links.trace_lo == 0))
        link_bad[all_links.row[zero]] = True
        names, long_mask = c.names
        long_mask = long_mask.copy()
        attrs = []
        for column, long_attr in c.attrs:
            attrs.append(column)
            long_mask |= long_attr
        service, service_missing, long_service = self._service_column(n)
        long_mask |= long_service
        sampling_th, th_bad = c.thresholds
        tail_policy = self._policy_column(n)
        attributes, instance = self._attributes(n)
        warned = {MISSING_SERVICE_NAME: service_missing, UNKNOWN_SPAN_KIND: kind_bad,
                  UNKNOWN_STATUS_CODE: status_bad, BAD_LINK_ID: link_bad, LONG_VALUE: long_mask,
                  INVALID_SAMPLING_THRESHOLD: th_bad}
        warnings = {reason: int(mask[keep].sum()) for reason, mask in warned.items()}

        columns = {
            "trace_hi": trace_hi, "trace_lo": trace_lo, "span_id": span_id, "parent_id": parent[:, 0],
            "link_trace_hi": link_trace[:, 0].copy(), "link_trace_lo": link_trace[:, 1].copy(),
            "link_span_id": link_span[:, 0],
            "start_ns": start, "end_ns": end, "kind": kind, "status": status, "service": service, "name": names,
            "sampling_th": sampling_th, "tail_policy": tail_policy, "instance": instance,
            "exceptions": np.minimum(c.exceptions, np.iinfo(np.int16).max),
        }
        for col_name, column in zip(ATTRIBUTE_COLUMNS.values(), attrs, strict=True):
            columns[col_name] = column
        if keep.size != n:
            columns = {k: v[keep] for k, v in columns.items()}
            all_links = all_links.take_rows(keep, n)
            attributes = attributes.take_rows(keep)
        batch = SpanBatch.from_columns(columns, links=all_links, attributes=attributes)
        return Decoded(batch, nonzero_counts(rejected), nonzero_counts(warnings))

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


    def _attributes(self, n: int) -> tuple[SpanAttributes, np.ndarray]:
        """The batch's attributes (span ones raw, parsed on first use) and the ``instance``
        column (each resource's ``service.instance.id``, None where absent)."""
        counts = np.array([c for _, _, c in self.services], dtype=np.int64)
        index = np.repeat(np.arange(len(self.resources), dtype=np.int32), counts) if n else np.zeros(0, np.int32)
        raw = np.empty(n, dtype=object)
        raw[:] = self.raw_attributes if len(self.raw_attributes) == n else [None] * n
        attributes = SpanAttributes(n, resource=index, resources=[r for r, _ in self.resources],
                                    resource_dropped=[d for _, d in self.resources], raw=raw, parse=parse_raw)
        names = np.array([r.get(INSTANCE_KEY) for r, _ in self.resources] + [None], dtype=object)
        return attributes, names[index] if n else np.empty(0, dtype=object)

    def _policy_column(self, n: int) -> np.ndarray:
        """Per span, its scope's ``tailsampling.policy`` (None: absent), one repeat per scope."""
        if not any(p for p, _ in self.policies):
            return np.full(n, None, dtype=object)
        values = np.empty(len(self.policies), dtype=object)
        values[:] = [(_cut(p.decode("utf-8", "replace")) if isinstance(p, bytes) else _cut(p)) if p else None
                     for p, _ in self.policies]
        return np.repeat(values, np.array([c for _, c in self.policies], dtype=np.int64))


def threshold_of(trace_state: str) -> int | None:
    """The OpenTelemetry rejection threshold in a W3C ``tracestate`` (``ot=th:<hex>``): an int
    in [0, 2**56); :data:`TH_UNKNOWN` when there is no ``th``; None when ``th`` is malformed.

    ``th`` is 1-14 lowercase hex digits with trailing zeros left out, so it is padded to 14
    on the right (``th:8`` is 2**55: probability one half; ``th:0`` is "always sampled").
    """
    member = _OT_MEMBER.search(trace_state)
    if member is None:
        return TH_UNKNOWN
    for sub in member.group(1).strip().split(";"):
        if sub.startswith("th:"):
            digits = sub[3:]
            return int(digits.ljust(14, "0"), 16) if _TH.fullmatch(digits) else None
    return TH_UNKNOWN


def _thresholds(states: list[Any], flags: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """The ``sampling_th`` column and the mask of malformed ``th`` values.

    Trace states repeat (one sampling probability per deployment; explicit randomness ``rv``
    makes one per trace, never one per span): each distinct value is parsed once, and the
    column is a dictionary look-up in C. Spans whose flags are present (non-zero) with the
    W3C ``sampled`` bit clear get :data:`TH_NOT_SAMPLED`.
    """
    n = len(states)
    distinct = set(states)
    parsed: dict[Any, int] = {}
    for state in distinct:
        text = state.decode("utf-8", "replace") if isinstance(state, bytes) else state
        th = threshold_of(text) if isinstance(text, str) and "ot=" in text else TH_UNKNOWN
        parsed[state] = _TH_MALFORMED if th is None else th
    if len(parsed) == 1:
        column = np.full(n, next(iter(parsed.values())), dtype=np.int64)
    else:
        column = np.fromiter(map(parsed.__getitem__, states), dtype=np.int64, count=n)
    bad = column == _TH_MALFORMED
    column[bad] = TH_UNKNOWN
    try:
        fl = np.array(flags, dtype=np.int64).reshape(n)
    except (TypeError, ValueError, OverflowError):  # JSON strings, nulls ...: one by one
        fl = np.array([_to_int(f) for f in flags], dtype=np.int64).reshape(n)
    column[(fl > 0) & ((fl & _SAMPLED_FLAG) == 0)] = TH_NOT_SAMPLED
    return column, bad


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
