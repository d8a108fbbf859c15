"""OTLP/JSON that is valid JSON but no export: refused (400 with a reason), never acknowledged
as an empty export or answered 500 (issue 25)."""

from __future__ import annotations

import json

import pytest

from collectors.otlp.codec import PayloadError
from collectors.otlp.json import decode_json

SPAN = {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": "a",
        "startTimeUnixNano": "1", "endTimeUnixNano": "2"}


def _export(name: str = "a") -> dict[str, object]:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [{**SPAN, "name": name}]}]}]}


@pytest.mark.parametrize(("body", "said"), [
    (b'{"resourceSpans": {}}', "resourceSpans: expected a list, got dict"),
    (b'{"resourceSpans": {"a": 1}}', "resourceSpans: expected a list, got dict"),
    (b'{"resourceSpans": "x"}', "resourceSpans: expected a list, got str"),
    (b"[]", "one JSON object"),
    (json.dumps([_export()]).encode(), "one JSON object"),
    (b'"resourceSpans"', "one JSON object"),
])
def test_an_export_of_the_wrong_shape_is_refused(body: bytes, said: str) -> None:
    with pytest.raises(PayloadError, match=said):
        decode_json(body, request=True)


def test_files_still_accept_a_list_of_documents() -> None:
    second = json.dumps(_export()).replace("0102030405060708\"", "0102030405060709\"")
    assert len(decode_json(f"[{json.dumps(_export())}, {second}]".encode()).batch) == 2


@pytest.mark.parametrize("escaped", ["a\\ud800b", "\\udfff", "x\\udc00\\ud800"])
def test_a_lone_surrogate_in_a_span_name_is_refused(escaped: str) -> None:
    body = json.dumps(_export("NAME")).replace("NAME", escaped).encode()
    with pytest.raises(PayloadError, match="lone UTF-16 surrogate"):
        decode_json(body, request=True)


def test_a_surrogate_pair_is_text() -> None:
    body = json.dumps(_export("NAME")).replace("NAME", "order \\ud83d\\ude00").encode()
    assert decode_json(body, request=True).batch.name[0] == "order \U0001f600"
