"""The fast OTLP/protobuf decoder (ptars + numpy) against the reference (upb + a Python loop):
on SDK-shaped and hostile payloads, every column, count and error must be the reference's;
where the fast path cannot vouch for that it must answer None (the reference then decodes)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, TraceState

from collectors.otlp import fast
from collectors.otlp.codec import PayloadError
from collectors.otlp.protobuf import decode_protobuf, decode_protobuf_reference
from collectors.spool.payload import encode_payload


@pytest.fixture(autouse=True)
def _ptars_installed() -> None:
    """ptars is a runtime dependency: missing under CI=true fails the run (outside CI, a
    checkout installed without it skips: the reference decoder serves)."""
    if not fast.available():
        if os.environ.get("CI") == "true":
            pytest.fail("ptars is not installed (a runtime dependency: pip install -e .)")
        pytest.skip("ptars is not installed")


@pytest.fixture(autouse=True)
def _fast_for_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small payloads go to the reference in production (cheaper there); here the fast path
    must take them, to be compared."""
    monkeypatch.setattr(fast, "FAST_MIN_SPANS", 0)


def _table(decoded: Any) -> pa.Table:
    return pa.ipc.open_stream(encode_payload(decoded.batch)).read_all()


def _same(body: bytes, *, must_be_fast: bool = True) -> str:
    """Check the fast decoder against the reference on ``body``; which one decoded it."""
    try:
        ref = decode_protobuf_reference(body)
    except PayloadError as err:
        message = str(err)
        ref = None
    if ref is None:
        assert fast.decode_fast(body) is None
        with pytest.raises(PayloadError) as raised:
            decode_protobuf(body)
        assert str(raised.value) == message
        return "error"
    got = fast.decode_fast(body)
    if got is None:
        assert not must_be_fast, "the fast path left an ordinary request to the reference"
        return "reference"
    assert got.rejected == ref.rejected
    assert got.warnings == ref.warnings
    a, b = ref.batch, got.batch
    assert len(a) == len(b)
    assert _table(ref).equals(_table(got))  # every column, the links and the raw attributes
    for name in ("trace_hi", "trace_lo", "span_id", "parent_id", "start_ns", "end_ns", "kind", "status",
                 "sampling_th", "exceptions", "link_trace_hi", "link_trace_lo", "link_span_id"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    for name in ("service", "name", "destination", "messaging_system", "peer_service", "db_system", "tail_policy",
                 "instance"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist(), name
    assert a.attributes is not None and b.attributes is not None
    for x, y in zip(a.attributes.sparse(), b.attributes.sparse(), strict=True):
        assert x.tolist() == y.tolist()
    return "fast"


# --- SDK-shaped requests ------------------------------------------------------------------


def _sdk_request() -> bytes:
    exporter = InMemorySpanExporter()
    tracers = []
    for i, svc in enumerate(("orders", "billing")):
        p = TracerProvider(resource=Resource.create({"service.name": svc, "service.instance.id": f"{svc}-{i}",
                                                     "k8s.pod.name": f"{svc}-7f9c", "host.cpus": 4}))
        p.add_span_processor(SimpleSpanProcessor(exporter))
        tracers.append(p.get_tracer("opentelemetry.instrumentation.kafka", "0.46b0"))
    orders, billing = tracers
    with orders.start_as_current_span("GET /orders/{id}", kind=SpanKind.SERVER, attributes={
            "http.request.method": "GET", "http.route": "/orders/{id}", "http.response.status_code": 200,
            "peer.service": "edge", "sampled": True, "ratio": 0.25, "tags": ["a", "b"], "codes": [1, 2]}) as root:
        with orders.start_as_current_span("ticks publish", kind=SpanKind.PRODUCER, attributes={
                "messaging.system": "kafka", "messaging.destination.name": "ticks.1"}) as producer:
            producer.add_event("sent", {"size": 3})
        with orders.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT,
                                          attributes={"db.system": "postgresql", "db.statement": "x" * 2000}) as db:
            db.record_exception(TimeoutError("timed out"))
            db.set_status(Status(StatusCode.ERROR, "timeout"))
    ctx = producer.get_span_context()
    state = TraceState([("ot", "th:8"), ("vendor", "x")])
    with billing.start_as_current_span("ticks process", kind=SpanKind.CONSUMER, links=[Link(ctx), Link(
            root.get_span_context())], attributes={"messaging.system": "kafka", "messaging.destination.name": "ticks.1",
                                                   "messaging.kafka.message.offset": 7}) as consumer:
        del consumer
    with billing.start_as_current_span("noisy", attributes={"name": "é\u2603" * 600}):
        pass
    spans = list(exporter.get_finished_spans())
    req = encode_spans(spans)
    # a trace state and a span that starts before it ends (rejected) on the wire, as some SDKs send
    s0 = req.resource_spans[0].scope_spans[0].spans[0]
    s0.trace_state = str(state.to_header())
    bad = req.resource_spans[0].scope_spans[0].spans.add()
    bad.CopyFrom(s0)
    bad.span_id = b"\x09" * 8
    bad.end_time_unix_nano = bad.start_time_unix_nano - 1
    dup = req.resource_spans[0].scope_spans[0].spans.add()
    dup.CopyFrom(s0)
    return bytes(req.SerializeToString())


SDK = _sdk_request()


def test_sdk_request_decodes_fast_and_identically() -> None:
    assert _same(SDK) == "fast"
    decoded = decode_protobuf(SDK)
    assert decoded.rejected  # the end-before-start span and the duplicate, counted alike
    assert sorted(set(decoded.batch.messaging_system.tolist()) - {None}) == ["kafka"]


def test_small_requests_go_to_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast, "FAST_MIN_SPANS", 1000)
    assert fast.decode_fast(SDK) is None
    assert _table(decode_protobuf(SDK)).equals(_table(decode_protobuf_reference(SDK)))


def test_benchmark_shaped_requests_decode_fast() -> None:
    from benchmarks.otlp_load import build_sdk_requests

    for body, _ in build_sdk_requests(400, per_request=200):
        assert _same(body) == "fast"


def test_the_fast_schema_declares_every_otlp_span_field() -> None:
    """The byte accounting (wire_size.canonical) needs every field a span may carry: a field
    OTLP adds later would send every span to the reference (correct, but slow)."""
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    from collectors.otlp.wire_size import SPAN_SCHEMA

    real = {"Span": trace_pb2.Span, "Event": trace_pb2.Span.Event, "Link": trace_pb2.Span.Link,
            "Status": trace_pb2.Status, "KeyValue": common_pb2.KeyValue, "AnyValue": common_pb2.AnyValue}
    for message, cls in real.items():
        declared = {name: number for name, number, *_ in SPAN_SCHEMA[message]}
        assert declared == {f.name: f.number for f in cls.DESCRIPTOR.fields}, message


# --- hostile payloads ---------------------------------------------------------------------


def _v(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _f(num: int, wire: int, payload: bytes) -> bytes:
    return _v(num << 3 | wire) + payload


def _len(num: int, data: bytes) -> bytes:
    return _f(num, 2, _v(len(data)) + data)


def _kv(key: bytes, value: bytes) -> bytes:
    return _len(9, _len(1, key) + _len(2, value))


def _span(trace: bytes = b"\x01" * 16, span: bytes = b"\x02" * 8, start: int = 5, end: int = 9) -> bytes:
    """A span as encoders write it: a zero time is left out (proto3)."""
    return (_len(1, trace) + _len(2, span) + (_f(7, 1, start.to_bytes(8, "little")) if start else b"")
            + (_f(8, 1, end.to_bytes(8, "little")) if end else b""))


def _request(*spans: bytes, resource: bytes = b"", scope: bytes = b"", field: int = 2) -> bytes:
    scope_spans = (_len(1, scope) if scope else b"") + b"".join(_len(2, s) for s in spans)
    return _len(1, (_len(1, resource) if resource else b"") + _len(field, scope_spans))


def _nest(value: bytes, depth: int) -> bytes:
    """An AnyValue nested ``depth`` arrays deep."""
    for _ in range(depth):
        value = _len(5, _len(1, value))
    return value


SERVICE = _len(1, _len(1, b"service.name") + _len(2, _len(1, b"svc")))
BASE = _span()
MS = b"messaging.system"
#: name -> (body, whether the fast path must decode it: canonical encodings, every byte a field
#: it reads; the others are left to the reference, or decoded alike)
HOSTILE = {
    "plain": (_request(BASE), True),
    "status twice, merged": (_request(BASE + _len(15, _f(3, 0, _v(2))) + _len(15, b"")), False),
    "trace id twice, last wins": (_request(BASE + _len(1, b"\x03" * 16)), False),
    "trace id as a varint": (_request(_f(1, 0, _v(5)) + BASE[18:]), False),
    "kind as bytes": (_request(BASE + _len(6, b"abc")), False),
    "kind -1 and huge": (_request(BASE + _f(6, 0, _v(2**64 - 1)), _span(span=b"\x04" * 8) + _f(6, 0, _v(1 << 40 | 3))),
                         False),
    "unknown fields and groups": (_request(BASE + _len(99, b"zz") + _f(50, 3, b"") + _f(51, 0, _v(1)) + _f(50, 4, b"")),
                                  False),
    "overlong varint": (_request(BASE + _f(6, 0, b"\x82\x80\x80\x00")), False),
    "truncated span": (_request(BASE[:-3]), True),
    "field number 0": (_request(BASE + b"\x00\x01"), True),
    "stray end group": (_request(BASE + _f(60, 4, b"")), True),
    "start as bytes": (_request(BASE + _len(7, (7).to_bytes(8, "little"))), False),
    "kept key twice, last wins": (_request(BASE + _kv(MS, _len(1, b"a")) + _kv(MS, _len(1, b"b"))), True),
    "kept key, value merged": (_request(BASE + _len(9, _len(1, MS) + _len(2, _len(1, b"a")) + _len(2, b""))), False),
    "kept key, int value": (_request(BASE + _kv(MS, _f(3, 0, _v(5)))), True),
    "kept key, empty string": (_request(BASE + _kv(MS, _len(1, b""))), True),
    "kept key, no value": (_request(BASE + _len(9, _len(1, MS))), True),
    "kept key with key_strindex": (_request(BASE + _len(9, _len(1, MS) + _len(2, _len(1, b"a")) + _f(3, 0, _v(3)))),
                                   False),
    "kept key, string then int": (_request(BASE + _kv(MS, _len(1, b"a") + _f(3, 0, _v(5)))), False),
    "kept key, bad utf-8 and long": (_request(BASE + _kv(MS, _len(1, b"\xff" + b"x" * 1500))), True),
    "key not utf-8": (_request(BASE + _kv(b"\xff\xfe", _len(1, b"a"))), True),
    "key utf-8": (_request(BASE + _kv("clé".encode(), _len(1, b"a"))), True),
    "array value": (_request(BASE + _kv(b"tags", _len(5, _len(1, _len(1, b"a"))))), True),
    "corrupt array value": (_request(BASE + _kv(b"tags", _len(5, b"\x0a\x05ab"))), True),
    "deep array value": (_request(BASE + _kv(b"k", _nest(_len(1, b"a"), 120))), True),
    "deep groups": (_request(BASE + _f(50, 3, b"") * 150 + _f(50, 4, b"") * 150), False),
    "groups that do not match": (_request(BASE + _f(50, 3, b"") + _f(51, 4, b"")), False),
    "a group in an event": (_request(BASE + _len(11, _f(50, 3, b"") + _f(51, 4, b""))), False),
    "a group in a value": (_request(BASE + _kv(MS, _len(1, b"a") + _f(50, 3, b"") + _f(51, 4, b""))), False),
    "corrupt any value": (_request(BASE + _kv(b"k", b"\x0a\x09ab")), True),
    "ids of wrong lengths": (_request(_span(trace=b"\x01" * 15), _span(span=b"\x02" * 9),
                                      BASE + _len(4, b"\x05" * 3), _span(trace=bytes(16)), _span(span=bytes(8))), True),
    "links, good and bad": (_request(BASE + _len(13, _len(1, b"\x05" * 16) + _len(2, b"\x06" * 8)) + _len(13, b"")
                                     + _len(13, _len(1, b"\x05" * 3) + _len(2, b"\x06" * 8)),
                                     _span(span=b"\x07" * 8) + _len(13, _len(1, b"\x05" * 16))), True),
    "link fields merged": (_request(BASE + _len(13, _len(1, b"\x05" * 16) + _len(2, b"\x06" * 8) + _len(1, b""))),
                           False),
    "events": (_request(BASE + _len(11, _len(2, b"exception")) * 3 + _len(11, _len(2, b"other") + _f(1, 1, bytes(
        [1] * 8)) + _len(3, _len(1, b"k") + _len(2, _len(1, b"v"))))), True),
    "event with an unknown field": (_request(BASE + _len(11, _len(2, b"other") + _len(99, b"x"))), False),
    "explicit zeros": (_request(BASE + _f(6, 0, b"\x00") + _f(16, 5, bytes(4))), False),
    "times out of range": (_request(_span(start=2**63 + 5, end=2**64 - 1), _span(span=b"\x08" * 8, start=0)), True),
    "trace states and flags": (_request(*(_span(span=bytes([i + 1]) * 8) + _len(3, s) + (
        _f(16, 5, fl.to_bytes(4, "little")) if fl else b"")
                                          for i, (s, fl) in enumerate(((b"ot=th:8", 0x101), (b"ot=th:XYZ", 1),
                                                                       (b"ot=rv:00;th:0", 0x100), (b"\xff", 0),
                                                                       (b"a=b, ot=th:c", 3))))), True),
    "duplicate spans": (_request(BASE, BASE, _span(span=b"\x03" * 8)), True),
    "names": (_request(BASE + _len(5, b"\xff\xfe"), _span(span=b"\x03" * 8) + _len(5, b"n" * 1100)), True),
    "resource and scope": (_request(BASE, resource=SERVICE + _len(1, _len(1, b"service.instance.id") + _len(
        2, _len(1, b"i-1"))), scope=_len(3, _len(1, b"tailsampling.policy") + _len(2, _len(1, b"slow"))))
                           , True),
    "resource key not utf-8": (_request(BASE, resource=_len(1, _len(1, b"\xff") + _len(2, b""))), True),
    "old field 1000": (_request(BASE, field=1000), True),
    "no spans": (_request(), True),
    "empty body": (b"", True),
    "garbage": (b"\xff\xff not protobuf", True),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_payloads_decode_as_the_reference_does(name: str) -> None:
    body, fast_expected = HOSTILE[name]
    got = _same(body, must_be_fast=fast_expected)  # fast (or the reference's error) when expected
    if not fast_expected:
        assert got in ("reference", "error")


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    body = bytearray(draw(st.sampled_from([HOSTILE["events"][0], HOSTILE["links, good and bad"][0],
                                           HOSTILE["trace states and flags"][0], HOSTILE["resource and scope"][0],
                                           HOSTILE["kept key twice, last wins"][0]])))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body) - 1))
        action = draw(st.sampled_from(["set", "delete", "insert"]))
        if action == "set":
            body[at] = draw(st.integers(0, 255))
        elif action == "delete":
            del body[at:at + draw(st.integers(1, 4))]
        else:
            body[at:at] = draw(st.binary(min_size=1, max_size=6))
        if not body:
            break
    return bytes(body)


@settings(max_examples=150, deadline=None)
@given(_mutated())
def test_mutated_payloads_decode_as_the_reference_does(body: bytes) -> None:
    _same(body, must_be_fast=False)
