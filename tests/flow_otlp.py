"""A span batch written as a real OTLP/protobuf file (an ``ExportTraceServiceRequest``): one
resource per (service, ``service.instance.id``), span status, an ``exception`` event per
errored span and the span links, so that a map reads it through latmap's own decoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from mapper.core.spans import SpanBatch


def write_otlp(batch: SpanBatch, path: Path) -> Path:
    """Write ``batch`` to ``path`` as one OTLP protobuf request; returns ``path``."""
    req = ExportTraceServiceRequest()
    cols = batch.columns()
    keys = list(zip(cols["service"].tolist(), cols["instance"].tolist(), strict=True))
    scopes = {}
    for key in dict.fromkeys(keys):
        rs = req.resource_spans.add()
        for k, v in (("service.name", key[0]), ("service.instance.id", key[1])):
            if v is not None:
                kv = rs.resource.attributes.add()
                kv.key, kv.value.string_value = k, v
        scopes[key] = rs.scope_spans.add()
    lt_hi, lt_lo, l_span = cols["link_trace_hi"], cols["link_trace_lo"], cols["link_span_id"]
    for i, key in enumerate(keys):
        s = scopes[key].spans.add()
        s.trace_id = _id16(cols["trace_hi"][i], cols["trace_lo"][i])
        s.span_id = int(cols["span_id"][i]).to_bytes(8, "big")
        if cols["parent_id"][i]:
            s.parent_span_id = int(cols["parent_id"][i]).to_bytes(8, "big")
        s.name = str(cols["name"][i])
        s.kind = int(cols["kind"][i])
        s.start_time_unix_nano = int(cols["start_ns"][i])
        s.end_time_unix_nano = int(cols["end_ns"][i])
        if cols["status"][i]:
            s.status.code = int(cols["status"][i])
        for _ in range(max(int(cols["exceptions"][i]), 0)):
            s.events.add(name="exception", time_unix_nano=int(cols["start_ns"][i]))
        if l_span[i]:
            link = s.links.add()
            link.trace_id = _id16(lt_hi[i], lt_lo[i])
            link.span_id = int(l_span[i]).to_bytes(8, "big")
    path.write_bytes(req.SerializeToString())
    return path


def _id16(hi: np.integer, lo: np.integer) -> bytes:
    return (int(hi) % 2**64).to_bytes(8, "big") + (int(lo) % 2**64).to_bytes(8, "big")
