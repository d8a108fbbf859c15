"""Decoding OTLP/protobuf traces: :func:`decode_protobuf`.

Speed: the protobuf body is parsed by upb into a *lean* copy of the OTLP schema that declares
only the fields latmap keeps (:func:`_lean_traces_data`). Skipped fields (event attributes,
the scope's name ...) stay unparsed bytes (events are read for their names only: the
``exceptions`` column), and the attribute lists are
declared as ``map<string, AnyValue>``, which has the same wire layout as ``repeated KeyValue``,
so looking up the four keys of :data:`~mapper.core.spans.ATTRIBUTE_COLUMNS` is a hash lookup in C
rather than a Python loop over every attribute (the scope's ``tailsampling.policy`` likewise,
once per scope). The span's ``trace_state`` and ``flags`` are copied as they are; the sampling
threshold is parsed once per distinct trace state, after the loop. String values are declared ``bytes`` so that
one attribute with invalid UTF-8 does not fail a whole request (the Collector does not check
either); kept strings are decoded with replacement characters. Ids, timestamps and enums are
validated on numpy arrays after the one Python loop over spans
(:meth:`collectors.otlp.columns.RawColumns.finish`).

Every span attribute is kept without a Python step per attribute: the body is parsed a second
time with a schema whose spans are plain ``bytes`` (:data:`_RAW_SCHEMA`), and each span's bytes
are the raw attributes :mod:`collectors.otlp.attributes` parses when a reader asks. Resource
attributes (one set per resource) are rendered as text here.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError

from collectors.otlp.attributes import resource_texts
from collectors.otlp.codec import Decoded, PayloadError, gc_paused
from collectors.otlp.columns import ATTR_KEYS, TAIL_POLICY_KEY, RawColumns, resolve_service_name
from collectors.otlp.lean import Schema, T, lean_messages

__all__ = ["decode_protobuf", "decode_protobuf_reference"]


_LEAN_PACKAGE = "latmap.otlp_lean"
_ANY_VALUE = (("string_value", 1, T.TYPE_BYTES, None), ("bool_value", 2, T.TYPE_BOOL, None),
              ("int_value", 3, T.TYPE_INT64, None), ("double_value", 4, T.TYPE_DOUBLE, None),
              ("array_value", 5, T.TYPE_MESSAGE, "ArrayValue"), ("kvlist_value", 6, T.TYPE_MESSAGE, "KeyValueList"),
              ("bytes_value", 7, T.TYPE_BYTES, None))

#: The lean schema: message -> (field, number, type, message type). Numbers are OTLP's
#: (opentelemetry/proto/trace/v1/trace.proto); tests check them against opentelemetry-proto.
#: ``attributes`` are maps (same wire layout as ``repeated KeyValue``); strings are bytes.
_LEAN_SCHEMA: Schema = {
    "AnyValue": _ANY_VALUE,
    "ArrayValue": (("values", 1, T.TYPE_MESSAGE, "AnyValue"),),
    "KeyValue": (("key", 1, T.TYPE_BYTES, None), ("value", 2, T.TYPE_MESSAGE, "AnyValue")),
    "KeyValueList": (("values", 1, T.TYPE_MESSAGE, "KeyValue"),),
    "Resource": (("attributes", 1, T.TYPE_MESSAGE, "map"),),
    "Status": (("code", 3, T.TYPE_INT32, None),),
    "Link": (("trace_id", 1, T.TYPE_BYTES, None), ("span_id", 2, T.TYPE_BYTES, None)),
    "Event": (("name", 2, T.TYPE_BYTES, None),),
    "InstrumentationScope": (("attributes", 3, T.TYPE_MESSAGE, "map"),),
    "Span": (
        ("trace_id", 1, T.TYPE_BYTES, None),
        ("span_id", 2, T.TYPE_BYTES, None),
        ("trace_state", 3, T.TYPE_BYTES, None),
        ("parent_span_id", 4, T.TYPE_BYTES, None),
        ("name", 5, T.TYPE_BYTES, None),
        ("kind", 6, T.TYPE_INT32, None),
        ("start_time_unix_nano", 7, T.TYPE_FIXED64, None),
        ("end_time_unix_nano", 8, T.TYPE_FIXED64, None),
        ("attributes", 9, T.TYPE_MESSAGE, "map"),
        ("events", 11, T.TYPE_MESSAGE, "Event"),
        ("links", 13, T.TYPE_MESSAGE, "Link"),
        ("status", 15, T.TYPE_MESSAGE, "Status"),
        ("flags", 16, T.TYPE_FIXED32, None),
    ),
    "ScopeSpans": (("scope", 1, T.TYPE_MESSAGE, "InstrumentationScope"), ("spans", 2, T.TYPE_MESSAGE, "Span")),
    # 1000: instrumentation_library_spans of OTLP 0.15-0.19 (before that it was field 2,
    # which is scope_spans now with the same layout).
    "ResourceSpans": (
        ("resource", 1, T.TYPE_MESSAGE, "Resource"),
        ("scope_spans", 2, T.TYPE_MESSAGE, "ScopeSpans"),
        ("instrumentation_library_spans", 1000, T.TYPE_MESSAGE, "ScopeSpans"),
    ),
    # Also the layout of ExportTraceServiceRequest (field 1: resource_spans).
    "TracesData": (("resource_spans", 1, T.TYPE_MESSAGE, "ResourceSpans"),),
}
_REPEATED = {("Span", "links"), ("Span", "events"), ("ScopeSpans", "spans"), ("ResourceSpans", "scope_spans"),
             ("ResourceSpans", "instrumentation_library_spans"), ("TracesData", "resource_spans"),
             ("ArrayValue", "values"), ("KeyValueList", "values")}
#: The same request with each span left as its bytes: what the span attributes are kept as
#: (:mod:`collectors.otlp.attributes` parses them when asked), a list upb fills in C.
_RAW_SCHEMA: Schema = {
    "ScopeSpans": (("spans", 2, T.TYPE_BYTES, None),),
    "ResourceSpans": (("scope_spans", 2, T.TYPE_MESSAGE, "ScopeSpans"),
                      ("instrumentation_library_spans", 1000, T.TYPE_MESSAGE, "ScopeSpans")),
    "TracesData": (("resource_spans", 1, T.TYPE_MESSAGE, "ResourceSpans"),),
}


def _lean_traces_data() -> Any:
    """The message class of the lean schema's TracesData, in a private descriptor pool."""
    return lean_messages(_LEAN_PACKAGE, _LEAN_SCHEMA, _REPEATED)["TracesData"]


_LeanTracesData = _lean_traces_data()
_RawTracesData = lean_messages("latmap.otlp_raw", _RAW_SCHEMA, {
    ("ScopeSpans", "spans"), ("ResourceSpans", "scope_spans"), ("ResourceSpans", "instrumentation_library_spans"),
    ("TracesData", "resource_spans")})["TracesData"]


def decode_protobuf(body: bytes) -> Decoded:
    """Decode an OTLP/protobuf ``ExportTraceServiceRequest`` (or ``TracesData``: same layout).

    Raises :class:`PayloadError` ("invalid protobuf: ...") when the bytes do not parse. The
    spans are converted without a Python step per span (:mod:`collectors.otlp.fast`) when that
    path can vouch for giving exactly what :func:`decode_protobuf_reference` gives; otherwise
    (ptars missing, or a request it leaves to the reference) by the reference.
    """
    from collectors.otlp.fast import decode_fast  # imports this module: not at the top

    decoded = decode_fast(body)
    return decoded if decoded is not None else decode_protobuf_reference(body)


def decode_protobuf_reference(body: bytes) -> Decoded:
    """The reference decoder: upb parses the lean schema, one Python loop copies each span.

    Peak memory is about six times the body (the parsed message, then the lists and columns),
    so the caller's body-size limit is what bounds it.
    """
    raw = RawColumns(text_ids=False)
    with gc_paused():
        try:
            data = _LeanTracesData.FromString(body)
        except DecodeError as err:
            raise invalid_protobuf(err) from err
        _copy_protobuf(data, raw)
        del data  # the parsed message is the biggest thing alive: free it before building columns
        spans = raw.raw_attributes
        for resource_spans in _RawTracesData.FromString(body).resource_spans:
            for scope_spans in resource_spans.scope_spans or resource_spans.instrumentation_library_spans:
                spans.extend(scope_spans.spans)
        return raw.finish()


def invalid_protobuf(err: DecodeError) -> PayloadError:
    """The one-line 400 message of a body upb cannot parse."""
    detail = str(err).rsplit(": ", 1)[-1].lower()  # upb: "Error parsing message with type 'T': why"
    return PayloadError(f"invalid protobuf: {detail} (expected an OTLP ExportTraceServiceRequest)")


def resource_service(resource_spans: Any, raw: RawColumns) -> tuple[str, bool]:
    """Append a resource's attributes (as text) to ``raw.resources``; its service and whether
    that was defaulted."""
    attributes = resource_spans.resource.attributes
    raw.resources.append(resource_texts(attributes.items(), from_json=False))
    service = attributes.get("service.name")
    executable = attributes.get("process.executable.name")
    return resolve_service_name(
        service.string_value.decode("utf-8", "replace") if service is not None else None,
        executable.string_value.decode("utf-8", "replace") if executable is not None else None,
    )


def scope_policy(scope_spans: Any) -> bytes | None:
    """The scope's ``tailsampling.policy`` (None: absent)."""
    policy = scope_spans.scope.attributes.get(TAIL_POLICY_KEY) if scope_spans.HasField("scope") else None
    return None if policy is None else policy.string_value


def _copy_protobuf(data: Any, raw: RawColumns) -> None:
    """The one loop over spans: copy the kept fields of each into the lists of ``raw``."""
    trace, span, parent = raw.trace.append, raw.span.append, raw.parent.append
    link_trace, link_span = raw.link_trace.append, raw.link_span.append
    links_row, links_trace, links_span = raw.links_row.append, raw.links_trace.append, raw.links_span.append
    start, end, name = raw.start.append, raw.end.append, raw.name.append
    kind, status = raw.kind.append, raw.status.append
    trace_state, flags = raw.trace_state.append, raw.flags.append
    a0, a1, a2, a3 = (values.append for values in raw.attrs)
    k0, k1, k2, k3 = ATTR_KEYS
    zero8, zero16 = bytes(8), bytes(16)
    services, policies = raw.services, raw.policies
    exceptions = raw.exceptions.append
    for resource_spans in data.resource_spans:
        service_name, missing = resource_service(resource_spans, raw)
        before = len(raw.trace)
        for scope_spans in resource_spans.scope_spans or resource_spans.instrumentation_library_spans:
            scope_start = len(raw.trace)
            policy = scope_policy(scope_spans)
            for s in scope_spans.spans:
                trace(s.trace_id)
                span(s.span_id)
                parent(s.parent_span_id or zero8)
                start(s.start_time_unix_nano)
                end(s.end_time_unix_nano)
                kind(s.kind)
                status(s.status.code)
                name(s.name)
                trace_state(s.trace_state)
                flags(s.flags)
                events = s.events
                exceptions(sum(e.name == b"exception" for e in events) if events else 0)
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
            policies.append((policy, len(raw.trace) - scope_start))
        services.append((service_name, missing, len(raw.trace) - before))
