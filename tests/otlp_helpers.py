"""Builders of OTLP/JSON payloads and the fixture folder, shared by the OTLP tests."""

from __future__ import annotations

from typing import Any

import numpy as np
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2

from mapper.core.spans import SpanBatch
from tests import paths

T0 = 1_700_000_000_000_000_000  # unix ns
FIXTURES = paths.FIXTURES / "otlp"


def rows(batch: SpanBatch) -> list[dict[str, Any]]:
    """The batch as one dict per span (numpy scalars made Python values), for exact asserts."""
    cols = batch.columns()
    return [{k: v[i].item() if isinstance(v[i], np.generic) else v[i] for k, v in cols.items()}
            for i in range(len(batch))]


def span_json(trace: Any = "0" * 31 + "1", span: Any = "00000000000000a1", **extra: Any) -> dict[str, Any]:
    doc = {"traceId": trace, "spanId": span, "name": "op", "kind": 2,
           "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 1000)}
    doc.update(extra)
    return doc


def request_json(*spans: Any, service: str | None = "svc", resource: Any = None) -> dict[str, Any]:
    if resource is None:
        attrs = [] if service is None else [{"key": "service.name", "value": {"stringValue": service}}]
        resource = {"attributes": attrs}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {}, "spans": list(spans)}]}]}


def add_span(scope: Any, trace: int, span: int, parent: int = 0, start: int = T0, duration: int = 1000,
             **attrs: Any) -> trace_pb2.Span:
    s = scope.spans.add()
    s.trace_id = trace.to_bytes(16, "big")
    s.span_id = span.to_bytes(8, "big")
    if parent:
        s.parent_span_id = parent.to_bytes(8, "big")
    s.name = f"op-{span}"
    s.kind = trace_pb2.Span.SPAN_KIND_SERVER
    s.start_time_unix_nano = start
    s.end_time_unix_nano = start + duration
    for key, value in attrs.items():
        kv = s.attributes.add()
        kv.key = key.replace("_", ".")
        if isinstance(value, int):
            kv.value.int_value = value
        else:
            kv.value.string_value = value
    return s


def one_scope(service: str | None = "svc") -> tuple[ExportTraceServiceRequest, Any]:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    if service is not None:
        kv = rs.resource.attributes.add()
        kv.key = "service.name"
        kv.value.string_value = service
    return req, rs.scope_spans.add()
