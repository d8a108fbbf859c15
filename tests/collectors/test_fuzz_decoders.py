"""Properties of the decoders of what other programs send (OTLP protobuf and JSON bodies,
Prometheus API answers): any bytes or any JSON give decoded values or the decoder's own
clean error (PayloadError, SourceError), never another exception."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from collectors.otlp.codec import PayloadError
from collectors.otlp.json import decode_document, decode_json
from collectors.otlp.protobuf import decode_protobuf
from collectors.promjson import decode_list, decode_metadata, decode_query
from mapper.core.errors import SourceError
from tests.fuzz import json_values, outcome, scalars
from tests.otlp_helpers import add_span, one_scope, request_json, span_json

URL = "http://prom.test/api/v1/query"


def _valid_protobuf() -> bytes:
    req, scope = one_scope()
    for i in range(3):
        add_span(scope, trace=1, span=10 + i, parent=10 if i else 0)
    return bytes(req.SerializeToString())


VALID = _valid_protobuf()


@st.composite
def mutated_protobuf(draw: st.DrawFn) -> bytes:
    body = bytearray(VALID)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(body) - 1))
        action = draw(st.sampled_from(["set", "delete", "insert"]))
        if action == "set":
            body[at] = draw(st.integers(0, 255))
        elif action == "delete":
            del body[at:at + draw(st.integers(1, 8))]
        else:
            body[at:at] = draw(st.binary(min_size=1, max_size=8))
        if not body:
            break
    return bytes(body)


def _decoded_is_sane(decoded: Any) -> None:
    batch = decoded.batch
    assert len(batch.start_ns) == len(batch.end_ns) == len(batch.span_id)
    assert all(n >= 0 for n in decoded.rejected.values())


@given(st.one_of(st.binary(max_size=300), mutated_protobuf()))
def test_any_bytes_decode_as_otlp_protobuf_or_a_payload_error(body: bytes) -> None:
    decoded, error = outcome(lambda: decode_protobuf(body), PayloadError)
    if error is not None:
        assert "\n" not in error and len(error) < 1000
        return
    _decoded_is_sane(decoded)


@st.composite
def otlp_json_documents(draw: st.DrawFn) -> Any:
    span = span_json(**draw(st.dictionaries(
        st.sampled_from(["traceId", "spanId", "parentSpanId", "name", "kind", "startTimeUnixNano",
                         "endTimeUnixNano", "status", "attributes", "links"]), json_values, max_size=4)))
    doc = request_json(span, service=draw(st.one_of(st.none(), st.text(max_size=10))))
    if draw(st.booleans()):
        place = draw(st.sampled_from(["resourceSpans", "resource", "scopeSpans", "spans"]))
        if place == "resourceSpans":
            doc["resourceSpans"] = draw(json_values)
        elif place == "resource":
            doc["resourceSpans"][0]["resource"] = draw(json_values)
        elif place == "scopeSpans":
            doc["resourceSpans"][0]["scopeSpans"] = draw(json_values)
        else:
            doc["resourceSpans"][0]["scopeSpans"][0]["spans"] = draw(json_values)
    return doc


@given(st.one_of(json_values, otlp_json_documents()))
def test_any_json_decodes_as_otlp_or_a_payload_error(doc: Any) -> None:
    for attempt in (lambda: decode_json(json.dumps(doc)), lambda: decode_document(doc)):
        decoded, error = outcome(attempt, PayloadError)
        if error is not None:
            assert "\n" not in error
            continue
        _decoded_is_sane(decoded)


@given(st.text(max_size=200))
def test_any_text_decodes_as_otlp_json_or_a_payload_error(text: str) -> None:
    decoded, error = outcome(lambda: decode_json(text), PayloadError)
    if error is None:
        _decoded_is_sane(decoded)


@st.composite
def prometheus_answers(draw: st.DrawFn) -> Any:
    rtype = draw(st.one_of(st.sampled_from(["vector", "matrix", "scalar", "string"]), scalars))
    item = {"metric": draw(st.one_of(st.dictionaries(st.sampled_from(["le", "quantile", "job"]), scalars, max_size=3),
                                     json_values)),
            draw(st.sampled_from(["value", "values", "histogram", "histograms"])): draw(json_values)}
    result = draw(st.one_of(st.lists(st.just(item), max_size=3), json_values))
    data = draw(st.one_of(st.just({"resultType": rtype, "result": result}), json_values))
    doc = {"status": draw(st.one_of(st.just("success"), scalars)), "data": data}
    if draw(st.booleans()):
        doc["warnings"] = draw(json_values)
    if draw(st.booleans()):
        doc.update(errorType=draw(scalars), error=draw(json_values))
    return doc


@given(st.one_of(json_values, prometheus_answers()))
def test_any_json_decodes_as_a_prometheus_answer_or_a_source_error(body: Any) -> None:
    for decode in (decode_query, decode_list, decode_metadata):
        result, error = outcome(lambda decode=decode: decode(body, URL), SourceError)  # type: ignore[misc]
        if error is not None:
            assert "\n" not in error and error.startswith("http://prom.test/")
            continue
        if decode is decode_query:
            assert all(s.value is None or isinstance(s.value, float) for s in result.samples)
            assert all(isinstance(w, str) and "\n" not in w for w in result.warnings)
