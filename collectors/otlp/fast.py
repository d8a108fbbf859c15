"""Decoding OTLP/protobuf traces without a Python step per span: :func:`decode_fast`.

Why: the reference decoder (:func:`collectors.otlp.protobuf.decode_protobuf_reference`) lets
upb parse the request, then copies every span's fields in one Python loop; that loop is most
of a receiver's CPU (about 5 us a span against upb's 1 us), which kept ingest near a tenth of
what parsing alone allows. Here no Python runs per span:

1. upb parses a *skeleton* of the request: resources and scopes as the reference reads them,
   each span left as its bytes (a list upb fills in C; the same bytes are the span's raw
   attributes, :mod:`collectors.otlp.attributes`).
2. ptars (Rust, protobuf to Arrow) parses those span bytes into Arrow columns with the lean
   span schema below: ids, times, enums, names, attribute keys and values, event names, links.
3. numpy and Arrow compute turn them into the very arrays :meth:`RawColumns.converted` makes
   from the reference's lists, and :meth:`RawColumns.assemble` applies the same checks.

Truth: the columns must be the reference's, bit for bit (``tests/collectors/test_otlp_fast.py``
compares both on SDK-shaped and hostile payloads). Where ptars' reading could differ from
upb's, this path does not guess: :func:`decode_fast` answers None and the caller runs the
reference. That is: ptars not installed or failing on the bytes (a corrupt span; the
reference then raises its own one-line error), a kept attribute whose ``AnyValue`` sets more
than one member of its oneof (upb keeps the last on the wire; Arrow cannot say which), a span
attribute key that is not UTF-8 (upb refuses the request: map keys are proto3 strings), a
span attribute entry with a ``key_strindex`` (upb leaves such a map entry out of the map), and
array or map attribute values that upb would refuse (too deep, corrupt), which are checked by
letting upb parse them at the depth they have in the request.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import DecodeError

from collectors.otlp.codec import MAX_VALUE_CHARS, Decoded, gc_paused
from collectors.otlp.columns import ATTR_KEYS, Converted, IdColumn, Masked, RawColumns, threshold_of
from collectors.otlp.lean import T, lean_messages
from collectors.otlp.schema import LEAN_REPEATED, LEAN_SCHEMA, LeanTracesData, resource_service, scope_policy
from collectors.otlp.wire_size import NUMPY_TYPES, REPEATED, SPAN_SCHEMA, canonical
from mapper.core.spans import TH_NOT_SAMPLED, TH_UNKNOWN, SpanLinks

try:  # a compiled wheel: where it cannot be installed, the reference decodes everything
    import ptars
except ImportError:  # pragma: no cover (a dependency; the tests run with it)
    ptars = None  # type: ignore[assignment]

__all__ = ["available", "decode_fast"]

_INT64_MAX = 2**63 - 1
#: Largest body the Arrow binary arrays (int32 offsets) can hold in one chunk.
_MAX_BODY = 2**31 - 1
#: The request with each span left as bytes; resources and scopes as the reference reads them.
_SKELETON = dict(LEAN_SCHEMA, ScopeSpans=(("scope", 1, T.TYPE_MESSAGE, "InstrumentationScope"),
                                           ("spans", 2, T.TYPE_BYTES, None)))
_SkeletonTracesData = lean_messages("latmap.otlp_skeleton", _SKELETON, set(LEAN_REPEATED))["TracesData"]
#: The span as ptars reads it: every OTLP field (so that :func:`wire_size.canonical` can
#: account for every byte), attributes as a repeated KeyValue (keys as bytes: checked for UTF-8
#: below), nested array and map values as bytes (upb checks them: :func:`_nested_values_parse`).
_ANY = SPAN_SCHEMA["AnyValue"]
_SpanMessage = lean_messages("latmap.otlp_fast", SPAN_SCHEMA, REPEATED)["Span"]
#: Requests with fewer spans go to the reference: ptars and the column checks cost about a
#: millisecond a request whatever its size, so below this the reference's Python loop is
#: cheaper (benchmarks/otlp_decode.py; measured crossover 500-1,000 spans on 2 shared cores).
FAST_MIN_SPANS = 1000
#: Fewer bytes than a usable span takes (two ids, two times, framing): a body below
#: FAST_MIN_SPANS of these cannot hold FAST_MIN_SPANS usable spans, so it is not even skimmed.
_MIN_SPAN_BYTES = 48
#: The kept attribute keys as an Arrow array (made on first use: pa.array imports pandas).
_KEY_SET: Any = None
_handler: Any = None
#: pyo3 reports a Rust panic as PanicException, a BaseException: caught too, never let through.
_PTARS_ERRORS: tuple[type[BaseException], ...] = (Exception,)


def available() -> bool:
    """Whether the fast path can run here (ptars imports)."""
    return ptars is not None


def _span_handler() -> Any:
    global _handler, _PTARS_ERRORS, _KEY_SET
    if _handler is None:
        assert ptars is not None
        _KEY_SET = pa.array([key.encode() for key in ATTR_KEYS], pa.binary())
        pool = ptars.HandlerPool([_SpanMessage.DESCRIPTOR.file])
        _handler = pool.get_for_message(_SpanMessage.DESCRIPTOR)
        try:
            from pyo3_runtime import PanicException  # type: ignore[import-not-found]

            _PTARS_ERRORS = (Exception, PanicException)
        except ImportError:  # pragma: no cover
            pass
    return _handler


def decode_fast(body: bytes) -> Decoded | None:
    """The reference decoder's :class:`Decoded` for ``body``, or None when this path cannot
    vouch for it (see the module's docstring): the caller then runs the reference."""
    if ptars is None or len(body) > _MAX_BODY or len(body) < FAST_MIN_SPANS * _MIN_SPAN_BYTES:
        return None
    raw = RawColumns(text_ids=False)
    with gc_paused():
        try:
            data = _SkeletonTracesData.FromString(body)
        except DecodeError:
            return None  # the reference raises its own message
        if sum(len(scope_spans.spans) for resource_spans in data.resource_spans for scope_spans in
               resource_spans.scope_spans or resource_spans.instrumentation_library_spans) < FAST_MIN_SPANS:
            return None
        spans = raw.raw_attributes
        for resource_spans in data.resource_spans:
            service_name, missing = resource_service(resource_spans, raw)
            before = len(spans)
            for scope_spans in resource_spans.scope_spans or resource_spans.instrumentation_library_spans:
                scope_start = len(spans)
                policy = scope_policy(scope_spans)
                spans.extend(scope_spans.spans)
                raw.policies.append((policy, len(spans) - scope_start))
            raw.services.append((service_name, missing, len(spans) - before))
        del data
        span_bytes = pa.array(spans, pa.binary())
        try:
            batch = _span_handler().array_to_record_batch(span_bytes)
        except _PTARS_ERRORS:
            return None
        if not canonical(batch, span_bytes):
            return None  # something ptars skipped or resolved: upb decides
        converted = _converted(batch)
        if converted is None:
            return None
        return raw.assemble(converted)


def _converted(batch: pa.RecordBatch) -> Converted | None:
    """The arrays :meth:`RawColumns.converted` would make of the same spans; None: leave it
    to the reference."""
    n = batch.num_rows
    attrs = _attribute_columns(batch.column("attributes"), n)
    if attrs is None:
        return None
    links = batch.column("links")
    link_rows, link_items = _rows(links, n), links.flatten()
    trace, span = _ids(link_items.field("trace_id"), 16), _ids(link_items.field("span_id"), 8)
    bad = trace[1] | span[1] | (span[0][:, 0] == 0) | ((trace[0][:, 0] == 0) & (trace[0][:, 1] == 0))
    trace[0][bad] = 0
    span[0][bad] = 0
    all_links = SpanLinks(link_rows, trace[0][:, 0].copy(), trace[0][:, 1].copy(), span[0][:, 0].copy())
    first = _first_of(link_rows, n)  # each span's first link, -1: none
    link_trace = _first_link(_ids(link_items.field("trace_id"), 16, empty_ok=True), first)
    link_span = _first_link(_ids(link_items.field("span_id"), 8, empty_ok=True), first)
    events = batch.column("events")
    exception = pc.equal(events.flatten().field("name"), pa.scalar(b"exception", pa.binary()))
    event_rows = _rows(events, n)
    exceptions = np.bincount(event_rows[exception.to_numpy(zero_copy_only=False)], minlength=n).astype(np.int64)
    status_column = batch.column("status")
    code = status_column.field("code")
    status = np.where(_valid(status_column) & _valid(code), _raw(code), 0)
    return Converted(
        _ids(batch.column("trace_id"), 16), _ids(batch.column("span_id"), 8),
        _ids(batch.column("parent_span_id"), 8, empty_ok=True), link_trace, link_span,
        all_links, _timestamps(batch.column("start_time_unix_nano")), _timestamps(batch.column("end_time_unix_nano")),
        _enum(batch.column("kind"), 5), _enum(status, 2), _strings(batch.column("name"), empty_is_none=False),
        attrs, _thresholds(batch.column("trace_state"), batch.column("flags")), exceptions)


def _first_link(ids: IdColumn, first: np.ndarray) -> IdColumn:
    """Per span, its first link's id column entries (zeros and no flags for a span without)."""
    has = first >= 0
    at = first[has]
    out = []
    for column in ids:
        per_span = np.zeros((first.size, *column.shape[1:]), dtype=column.dtype)
        per_span[has] = column[at]
        out.append(per_span)
    return out[0], out[1], out[2]


def _offsets(lists: pa.ListArray) -> np.ndarray:
    return np.asarray(lists.offsets.to_numpy(), dtype=np.int64)


def _rows(lists: pa.ListArray, n: int) -> np.ndarray:
    """The span row of each flattened list item."""
    return np.repeat(np.arange(n, dtype=np.int64), np.diff(_offsets(lists)))


def _first_of(rows: np.ndarray, n: int) -> np.ndarray:
    """Per span, the index of its first item in ``rows`` (sorted), -1 where it has none."""
    first = np.full(n, -1, dtype=np.int64)
    if rows.size:
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        first[rows[starts]] = starts
    return first


def _binary_parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A binary array's offsets (n + 1, int64) and its data bytes (uint8), zero-copy."""
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + n + 1].astype(np.int64)
    data = arr.buffers()[2]
    return offsets, (np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8))


def _ids(arr: pa.Array, nbytes: int, empty_ok: bool = False) -> IdColumn:
    """(n, nbytes/8) uint64 words, wrong-length mask, invalid mask (never set for bytes); an
    empty id is all zeros when ``empty_ok`` (the reference's ``or zero``). Ids are never null
    (ptars gives absent bytes as empty)."""
    n = len(arr)
    offsets, data = _binary_parts(arr)
    lengths = np.diff(offsets)
    good = lengths == nbytes
    bad_len = ~good & (lengths != 0) if empty_ok else ~good
    if good.all():
        raw = data[offsets[0]:offsets[0] + n * nbytes].reshape(n, nbytes)
    else:
        raw = np.zeros((n, nbytes), dtype=np.uint8)
        raw[good] = data[offsets[:-1][good, None] + np.arange(nbytes)]
    words = np.ascontiguousarray(raw).view(">u8").reshape(n, nbytes // 8).astype(np.uint64)
    return words, bad_len, np.zeros(n, dtype=bool)


def _timestamps(arr: pa.Array) -> Masked:
    unsigned = arr.to_numpy(zero_copy_only=False).astype(np.uint64)
    bad = unsigned > _INT64_MAX
    unsigned[bad] = 0
    return unsigned.view(np.int64), bad


def _enum(arr: pa.Array | np.ndarray, top: int) -> Masked:
    values = np.array(arr if isinstance(arr, np.ndarray) else arr.to_numpy(zero_copy_only=False), dtype=np.int64)
    unknown = (values < 0) | (values > top)
    values[unknown] = 0
    return values.astype(np.int8), unknown


def _strings(arr: pa.Array, *, empty_is_none: bool) -> Masked:
    """An object column of str (None where absent: null, or empty with ``empty_is_none``) and
    the mask of values cut to MAX_VALUE_CHARS; each distinct value decoded once."""
    encoded = pc.dictionary_encode(arr)
    empty = None if empty_is_none else ""
    decoded = [b.decode("utf-8", "replace") if b else empty for b in encoded.dictionary.to_pylist()]
    long = np.array([v is not None and len(v) > MAX_VALUE_CHARS for v in decoded] + [False], dtype=bool)
    values = np.empty(len(decoded) + 1, dtype=object)
    values[:-1] = [v[:MAX_VALUE_CHARS] if v is not None else None for v in decoded]
    index = _filled(encoded.indices, len(decoded))
    return values[index], long[index]


def _raw(arr: pa.Array) -> np.ndarray:
    """A fixed-width array's values, zero-copy (a null's slot holds anything: mask it)."""
    return np.frombuffer(arr.buffers()[1], dtype=NUMPY_TYPES[arr.type])[arr.offset:arr.offset + len(arr)]


def _filled(arr: pa.Array, fill: int) -> np.ndarray:
    """An integer array as int64, ``fill`` where null (no compute call)."""
    return np.where(_valid(arr), _raw(arr), fill).astype(np.int64)


def _valid(arr: pa.Array) -> np.ndarray:
    """An array's validity as a bool mask, from its bitmap (no compute call)."""
    n = len(arr)
    bitmap = arr.buffers()[0]
    if arr.null_count == 0 or bitmap is None:
        return np.ones(n, dtype=bool)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[arr.offset:arr.offset + n].astype(bool)


def _attribute_columns(attributes: pa.ListArray, n: int) -> tuple[Masked, ...] | None:
    """The :data:`ATTR_KEYS` columns (map semantics: the last entry of a key wins; a value
    that is not a string is absent); None when the reference must decide (see the module)."""
    items = attributes.flatten()
    keys, values = items.field("key"), items.field("value")
    offsets, data = _binary_parts(keys)
    if data[offsets[0]:offsets[-1]].max(initial=0) >= 0x80:
        try:
            keys.cast(pa.string())  # upb refuses a request whose span attribute key is not UTF-8
        except pa.ArrowInvalid:
            return None
    if _filled(items.field("key_strindex"), 0).any():
        return None  # upb leaves an entry with a field its map entry lacks out of the map: the kept key is lost
    present = _valid(values)  # an entry without a value: an empty AnyValue
    members = [_valid(values.field(i)) & present for i in range(len(_ANY))]
    if (members[4].any() or members[5].any()) and not _nested_values_parse(values, members[4], members[5]):
        return None
    which = _filled(pc.index_in(keys, value_set=_KEY_SET), -1)
    hit = np.flatnonzero(which >= 0)
    if not hit.size:
        return tuple((np.full(n, None, dtype=object), np.zeros(n, dtype=bool)) for _ in ATTR_KEYS)
    key_of = which[hit].astype(np.int64)
    rows = _rows(attributes, n)[hit]
    code = rows * len(ATTR_KEYS) + key_of
    if np.bincount(code).max() > 1:  # a key repeated in a span: the last entry wins
        order = np.lexsort((np.arange(hit.size), code))
        keep = np.r_[code[order][1:] != code[order][:-1], True]
        hit, rows, key_of = hit[order][keep], rows[order][keep], key_of[order][keep]
    is_string = members[0][hit]
    if (is_string & np.logical_or.reduce(members[1:])[hit]).any():
        return None  # string and another member: upb kept whichever came last on the wire
    text, long = _strings(values.field(0).take(pa.array(hit, mask=~is_string)), empty_is_none=True)
    out = []
    for k in range(len(ATTR_KEYS)):
        at = key_of == k
        column, cut = np.full(n, None, dtype=object), np.zeros(n, dtype=bool)
        column[rows[at]] = text[at]
        cut[rows[at]] = long[at]
        out.append((column, cut))
    return tuple(out)


def _nested_values_parse(values: pa.StructArray, arrays: np.ndarray, maps: np.ndarray) -> bool:
    """Whether upb accepts every array and map attribute value at the depth it has in the
    request (span attributes sit five messages deep): one synthetic request holding each
    distinct one, parsed with the reference's schema."""
    nested = []
    for number, mask in ((5, arrays), (6, maps)):
        member = values.field(number - 1).filter(pa.array(mask))
        nested += [_field(number, b) for b in pc.unique(member).to_pylist()]
    span = b"".join(_field(9, _field(2, value)) for value in nested)
    request = _field(1, _field(2, _field(2, span)))
    try:
        LeanTracesData.FromString(request)
    except DecodeError:
        return False
    return True


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited protobuf field."""
    head, size = bytearray(), len(data)
    key = number << 3 | 2
    for value in (key, size):
        while value >= 0x80:
            head.append((value & 0x7F) | 0x80)
            value >>= 7
        head.append(value)
    return bytes(head) + data


def _thresholds(states: pa.Array, flags: pa.Array) -> Masked:
    """:func:`collectors.otlp.columns._thresholds` over Arrow: each distinct trace state parsed once."""
    fl = flags.to_numpy(zero_copy_only=False).astype(np.int64)
    offsets, _ = _binary_parts(states)
    if offsets[0] == offsets[-1]:  # no trace state at all (the usual case)
        column, bad = np.full(len(states), TH_UNKNOWN, dtype=np.int64), np.zeros(len(states), dtype=bool)
        column[(fl > 0) & ((fl & 1) == 0)] = TH_NOT_SAMPLED
        return column, bad
    encoded = pc.dictionary_encode(states)
    parsed = []
    for state in encoded.dictionary.to_pylist():
        text = state.decode("utf-8", "replace")
        parsed.append(threshold_of(text) if "ot=" in text else TH_UNKNOWN)
    bad_of = np.array([th is None for th in parsed] + [False], dtype=bool)
    value_of = np.array([TH_UNKNOWN if th is None else th for th in parsed] + [TH_UNKNOWN], dtype=np.int64)
    index = _filled(encoded.indices, len(parsed))
    column, bad = value_of[index], bad_of[index]
    column[(fl > 0) & ((fl & 1) == 0)] = TH_NOT_SAMPLED
    return column, bad
