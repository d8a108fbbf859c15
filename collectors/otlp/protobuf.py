"""Decoding OTLP/protobuf traces: :func:`decode_protobuf`.

Speed: the protobuf body is parsed by upb into a *lean* copy of the OTLP schema that declares
only the fields latmap keeps (:data:`collectors.otlp.schema.LEAN_SCHEMA`). Skipped fields (event attributes,
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

from collectors.otlp.codec import Decoded, gc_paused
from collectors.otlp.columns import ATTR_KEYS, RawColumns
from collectors.otlp.fast import decode_fast
from collectors.otlp.schema import LeanTracesData, RawTracesData, invalid_protobuf, resource_service, scope_policy

__all__ = ["decode_protobuf", "decode_protobuf_reference"]


def decode_protobuf(body: bytes) -> Decoded:
    """Decode an OTLP/protobuf ``ExportTraceServiceRequest`` (or ``TracesData``: same layout).

    Raises :class:`PayloadError` ("invalid protobuf: ...") when the bytes do not parse. The
    spans are converted without a Python step per span (:mod:`collectors.otlp.fast`) when that
    path can vouch for giving exactly what :func:`decode_protobuf_reference` gives; otherwise
    (ptars missing, or a request it leaves to the reference) by the reference.
    """
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
            data = LeanTracesData.FromString(body)
        except DecodeError as err:
            raise invalid_protobuf(err) from err
        _copy_protobuf(data, raw)
        del data  # the parsed message is the biggest thing alive: free it before building columns
        spans = raw.raw_attributes
        for resource_spans in RawTracesData.FromString(body).resource_spans:
            for scope_spans in resource_spans.scope_spans or resource_spans.instrumentation_library_spans:
                spans.extend(scope_spans.spans)
        return raw.finish()


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
