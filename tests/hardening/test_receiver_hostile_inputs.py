"""Hostile exports found no 500 and no traceback (issue 25, probed by hand): each is kept here
as a regression test with the answer it gets (400, 415, or 200 with its spans counted)."""

from __future__ import annotations

import gzip
import http.client
import time
from collections.abc import Iterator

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collectors.spool.receiver import Receiver
from collectors.spool.store import Spool, SpoolLimits

P = {"Content-Type": "application/x-protobuf"}


@pytest.fixture(scope="module", params=[0, 1], ids=["in-process", "decode-worker"])
def receiver(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    spool = Spool(tmp_path_factory.mktemp("spool"), SpoolLimits(compact_interval=3600), compact=False)
    rx = Receiver(spool, http="127.0.0.1:0", grpc=None, decode_workers=request.param)
    rx.start()
    yield rx
    rx.stop()
    spool.close()


def _post(rx: Receiver, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", rx.http_port or 0, timeout=60)
    try:
        conn.request("POST", "/v1/traces", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("body", [b"\x0a" + b"\xff" * 20 + b"\x01", b"\x0a\xff\xff\xff\xff\x0f"],
                         ids=["varint of 20 bytes", "length past the body"])
def test_protobuf_with_huge_varints_is_400(receiver: Receiver, body: bytes) -> None:
    status, answer = _post(receiver, body, P)
    assert status == 400 and b"invalid protobuf" in answer


def test_an_export_whose_spans_all_end_before_they_start_is_refused_span_by_span(receiver: Receiver) -> None:
    now = time.time_ns()
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for i in range(5):
        spans.add(trace_id=b"\x01" * 16, span_id=(i + 1).to_bytes(8, "big"), start_time_unix_nano=now + 10,
                  end_time_unix_nano=now)
    status, answer = _post(receiver, req.SerializeToString(), P)
    assert status == 200
    partial = ExportTraceServiceResponse.FromString(answer).partial_success
    assert partial.rejected_spans == 5 and "end before start: 5" in partial.error_message


def test_non_utf8_bytes_in_protobuf_strings_are_kept_replaced(receiver: Receiver) -> None:
    now = time.time_ns()
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x02" * 16, span_id=b"\x02" * 8, name="AAAA", start_time_unix_nano=now, end_time_unix_nano=now + 1)
    raw = bytearray(req.SerializeToString())
    at = raw.find(b"AAAA")
    raw[at:at + 4] = b"\xff\xfe\xc3\x28"
    status, answer = _post(receiver, bytes(raw), P)
    assert status == 200 and not ExportTraceServiceResponse.FromString(answer).HasField("partial_success")


@pytest.mark.parametrize("coding", ["gzip, gzip", "br", "gzip,identity", "identity, gzip", "deflate"])
def test_content_encodings_other_than_one_gzip_are_415(receiver: Receiver, coding: str) -> None:
    status, _ = _post(receiver, gzip.compress(ExportTraceServiceRequest().SerializeToString()),
                      {**P, "Content-Encoding": coding})
    assert status == 415
