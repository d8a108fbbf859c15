"""The lean OTLP schemas the protobuf decoders parse with, and what both decoders read the
same way from upb's messages: a resource's service and attributes, a scope's tail-sampling
policy, the one-line error of a body that does not parse.

Shared by the reference decoder (:mod:`collectors.otlp.protobuf`) and the fast one
(:mod:`collectors.otlp.fast`), which must read resources and scopes exactly alike. The lean
schema declares only the fields latmap keeps (see :mod:`collectors.otlp.protobuf`).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError

from collectors.otlp.attributes import resource_texts
from collectors.otlp.codec import PayloadError
from collectors.otlp.columns import TAIL_POLICY_KEY, RawColumns, resolve_service_name
from collectors.otlp.lean import Schema, T, lean_messages

__all__ = ["LEAN_REPEATED", "LEAN_SCHEMA", "LeanTracesData", "RawTracesData", "invalid_protobuf",
           "resource_service", "scope_policy"]


_LEAN_PACKAGE = "latmap.otlp_lean"
_ANY_VALUE = (("string_value", 1, T.TYPE_BYTES, None), ("bool_value", 2, T.TYPE_BOOL, None),
              ("int_value", 3, T.TYPE_INT64, None), ("double_value", 4, T.TYPE_DOUBLE, None),
              ("array_value", 5, T.TYPE_MESSAGE, "ArrayValue"), ("kvlist_value", 6, T.TYPE_MESSAGE, "KeyValueList"),
              ("bytes_value", 7, T.TYPE_BYTES, None))

#: The lean schema: message -> (field, number, type, message type). Numbers are OTLP's
#: (opentelemetry/proto/trace/v1/trace.proto); tests check them against opentelemetry-proto.
#: ``attributes`` are maps (same wire layout as ``repeated KeyValue``); strings are bytes.
LEAN_SCHEMA: Schema = {
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
LEAN_REPEATED = {("Span", "links"), ("Span", "events"), ("ScopeSpans", "spans"), ("ResourceSpans", "scope_spans"),
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
    return lean_messages(_LEAN_PACKAGE, LEAN_SCHEMA, LEAN_REPEATED)["TracesData"]


LeanTracesData = _lean_traces_data()
RawTracesData = lean_messages("latmap.otlp_raw", _RAW_SCHEMA, {
    ("ScopeSpans", "spans"), ("ResourceSpans", "scope_spans"), ("ResourceSpans", "instrumentation_library_spans"),
    ("TracesData", "resource_spans")})["TracesData"]


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
