"""The decoders fill ``instance``, ``exceptions`` and every span and resource attribute
(:class:`mapper.core.spans.SpanAttributes`), from spans the real OpenTelemetry SDK made, and
the spool keeps them (read back only when asked; old spools read as unknown)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collectors.otlp.json import decode_json
from collectors.otlp.protobuf import decode_protobuf
from collectors.spool.payload import SCHEMA, arrays
from collectors.spool.reader import SEGMENT_MAGIC, WAL_DIR, record, scan_spool
from collectors.spool.store import Spool, SpoolLimits
from mapper.core.spans import MAX_ATTRIBUTE_CHARS, MAX_ATTRIBUTES, SpanAttributes, SpanBatch


def _sdk_request() -> bytes:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({
        "service.name": "alerting", "service.instance.id": "alerting-2", "host.name": "node-1", "cores": 4}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("evaluate", attributes={
            "n": 3, "ok": True, "ratio": 0.5, "tags": ["a", "b"], "long": "x" * 300,
            "messaging.destination.name": "ticks"}) as span:
        for err in (ValueError("bad"), KeyError("k")):
            span.record_exception(err)
        span.add_event("retry")
    with tracer.start_as_current_span("many", attributes={f"k{i:02d}": i for i in range(MAX_ATTRIBUTES + 6)}):
        pass
    with tracer.start_as_current_span("plain"):
        pass
    return bytes(encode_spans(exporter.get_finished_spans()).SerializeToString())


@pytest.fixture(scope="module")
def body() -> bytes:
    return _sdk_request()


def _by_name(batch: SpanBatch) -> dict[str, int]:
    return {str(n): i for i, n in enumerate(batch.name.tolist())}


def test_protobuf_and_json_decoders_fill_instance_exceptions_and_attributes(body: bytes) -> None:
    pb = decode_protobuf(body).batch
    js = decode_json(json_format.MessageToJson(ExportTraceServiceRequest.FromString(body))).batch
    for batch in (pb, js):
        row = _by_name(batch)
        assert batch.instance.tolist() == ["alerting-2"] * 3
        assert batch.exceptions[row["evaluate"]] == 2 and batch.exceptions[row["plain"]] == 0
        attrs = batch.attributes
        assert attrs is not None and attrs.n == 3
        ev = row["evaluate"]
        got = {k: attrs.column(k, "span")[ev] for k in ("n", "ok", "ratio", "tags", "messaging.destination.name")}
        assert got == {"n": "3", "ok": "true", "ratio": "0.5", "tags": '["a","b"]',
                       "messaging.destination.name": "ticks"}
        assert attrs.column("long", "span")[ev] == "x" * MAX_ATTRIBUTE_CHARS
        assert attrs.column("n", "span")[row["plain"]] is None
        assert attrs.column("cores", "resource").tolist() == ["4"] * 3
        present = attrs.keys()
        assert ("resource", "service.instance.id") in present and ("span", "k00") in present
        assert attrs.dropped[row["many"]] == 6 and attrs.dropped[ev] == 0
        assert attrs.column(f"k{MAX_ATTRIBUTES - 1:02d}", "span")[row["many"]] == str(MAX_ATTRIBUTES - 1)
    assert sorted(pb.attributes.keys()) == sorted(js.attributes.keys())  # type: ignore[union-attr]


def test_take_concat_and_sparse_keep_the_api(body: bytes) -> None:
    attrs = decode_protobuf(body).batch.attributes
    assert attrs is not None
    taken = attrs.take_rows(np.array([2, 0]))  # still raw: parsed only when asked
    assert taken.raw is not None
    built = SpanAttributes.from_sparse(*attrs.sparse(), n=3)  # parsed
    both = SpanAttributes.concat([taken, None, built], [2, 1, 3])
    assert both.n == 6
    assert both.column("n", "span").tolist() == [None, "3", None, "3", None, None]  # SDK order: evaluate first
    assert both.column("service.instance.id", "resource").tolist() == [
        "alerting-2", "alerting-2", None, "alerting-2", "alerting-2", "alerting-2"]
    assert both.keys() == attrs.keys()
    row, scope, key, value = built.sparse()
    assert len(row) == len(attrs) and set(scope.tolist()) == {0, 1}
    assert dict(zip(key[row == 0].tolist(), value[row == 0].tolist(), strict=True))["host.name"] == "node-1"


def test_spool_keeps_them_and_reads_them_only_when_asked(tmp_path: Path, body: bytes) -> None:
    decoded = decode_protobuf(body).batch
    with Spool(tmp_path, SpoolLimits(compact_interval=3600)) as spool:
        spool.append(decoded)
        wal = scan_spool(tmp_path, with_attributes=True).batch
        spool.rotate()
        spool.compact()
    parquet = scan_spool(tmp_path, with_attributes=True).batch
    plain = scan_spool(tmp_path).batch
    assert plain.attributes is None and plain.exceptions.tolist() == parquet.exceptions.tolist()
    for batch in (wal, parquet):
        order = np.argsort(batch.span_id)
        want = np.argsort(decoded.span_id)
        assert batch.instance[order].tolist() == decoded.instance[want].tolist()
        assert batch.exceptions[order].tolist() == decoded.exceptions[want].tolist()
        assert batch.attributes is not None
        present = batch.attributes.keys()
        assert present == decoded.attributes.keys() and len(present) > 70  # type: ignore[union-attr]
        for scope, key in present:
            assert (batch.attributes.column(key, scope)[order].tolist()
                    == decoded.attributes.column(key, scope)[want].tolist())  # type: ignore[union-attr]


def test_an_old_spool_reads_as_unknown(tmp_path: Path) -> None:
    """A segment whose records lack instance, exceptions and the attributes (written before them)."""
    now = time.time_ns()
    batch = SpanBatch.from_columns({"trace_hi": [0], "trace_lo": [1], "span_id": [1], "start_ns": [now],
                                    "end_ns": [now + 5], "service": ["svc"], "name": ["op"]})
    old = pa.schema([f for f in SCHEMA if f.name not in ("instance", "exceptions")])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, old) as writer:
        cols = dict(zip(SCHEMA.names, arrays(batch), strict=True))
        writer.write_batch(pa.RecordBatch.from_arrays([cols[f.name] for f in old], schema=old))
    (tmp_path / WAL_DIR).mkdir()
    (tmp_path / WAL_DIR / "1-1.wal").write_bytes(SEGMENT_MAGIC + record(sink.getvalue()))
    read = scan_spool(tmp_path, with_attributes=True).batch
    assert len(read) == 1 and read.instance.tolist() == [None] and read.exceptions.tolist() == [-1]
    assert read.attributes is None
