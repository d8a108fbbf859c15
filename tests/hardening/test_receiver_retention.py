"""The receiver never acknowledges a span that retention will delete (issue 25, "acknowledged,
then deleted"): a span that starts before the retention's cutoff, or far ahead of the clock,
is refused in ``partial_success`` over OTLP/HTTP (protobuf and JSON answers) and OTLP/gRPC,
never written, and a compaction then keeps every span that was acknowledged."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collectors.spool.decode_pool import OLDER_THAN_RETENTION, TOO_FAR_AHEAD, decode_request
from collectors.spool.limits import accepted_starts
from collectors.spool.receiver import Receiver
from collectors.spool.store import Spool, SpoolLimits, read_spool

DAY_NS = 86_400 * 10**9


def _request(starts: list[int], trace: int) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "svc"
    spans = rs.scope_spans.add().spans
    for i, start in enumerate(starts):
        spans.add(trace_id=trace.to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name="op", kind=2,
                  start_time_unix_nano=start, end_time_unix_nano=start + 1000)
    return req


def _post(port: int, body: bytes, content_type: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.fixture(params=[0, 1], ids=["in-process", "decode-worker"])
def receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Receiver]:
    """A receiver with the default 7-day retention, compaction only when the test asks."""
    spool = Spool(tmp_path / "spool", SpoolLimits(compact_interval=3600), compact=False)
    rx = Receiver(spool, http="127.0.0.1:0", grpc="127.0.0.1:0", decode_workers=request.param)
    rx.start()
    yield rx
    rx.stop()
    spool.close()


def _mixed(trace: int) -> ExportTraceServiceRequest:
    now = time.time_ns()
    # 3 from 30 days ago, 2 just now, 1 two days ahead (a clock that wrong is refused)
    return _request([now - 30 * DAY_NS, now - 30 * DAY_NS + 1, now - 8 * DAY_NS, now, now + 10,
                     now + 2 * DAY_NS], trace)


def _kept_after_compaction(rx: Receiver) -> list[int]:
    rx.spool.rotate()
    rx.spool.compact()
    rx.spool.apply_retention()
    return sorted(read_spool(rx.spool.path).span_id.tolist())


def test_spans_older_than_the_retention_are_refused_over_http_protobuf(receiver: Receiver) -> None:
    status, body = _post(receiver.http_port or 0, _mixed(1).SerializeToString(), "application/x-protobuf")
    assert status == 200
    answer = ExportTraceServiceResponse.FromString(body)
    assert answer.partial_success.rejected_spans == 4
    assert f"{OLDER_THAN_RETENTION}: 3" in answer.partial_success.error_message
    assert f"{TOO_FAR_AHEAD}: 1" in answer.partial_success.error_message
    assert _kept_after_compaction(receiver) == [4, 5]  # everything acknowledged, nothing else


def test_spans_older_than_the_retention_are_refused_over_http_json(receiver: Receiver) -> None:
    from google.protobuf import json_format

    doc = json_format.MessageToJson(_mixed(2))
    status, body = _post(receiver.http_port or 0, doc.encode(), "application/json")
    assert status == 200
    answer = json.loads(body)
    assert answer["partialSuccess"]["rejectedSpans"] == "4"
    assert OLDER_THAN_RETENTION in answer["partialSuccess"]["errorMessage"]
    assert _kept_after_compaction(receiver) == [4, 5]


def test_spans_older_than_the_retention_are_refused_over_grpc(receiver: Receiver) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{receiver.grpc_port}") as channel:
        answer = trace_service_pb2_grpc.TraceServiceStub(channel).Export(_mixed(3), timeout=30)
    assert answer.partial_success.rejected_spans == 4
    assert OLDER_THAN_RETENTION in answer.partial_success.error_message
    assert _kept_after_compaction(receiver) == [4, 5]


def test_an_export_of_only_old_spans_writes_nothing(receiver: Receiver) -> None:
    old = time.time_ns() - 30 * DAY_NS
    status, body = _post(receiver.http_port or 0, _request([old, old + 1], 4).SerializeToString(),
                         "application/x-protobuf")
    assert status == 200 and ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans == 2
    assert receiver.spool.stats().records == 0


def test_the_accepted_range_leaves_room_for_the_wait_before_compaction() -> None:
    limits = SpoolLimits(retention_days=1.0, segment_age=60, compact_interval=30, max_ahead=3600)
    now = 10**18
    lo, hi = accepted_starts(limits, now)
    assert lo == now - DAY_NS + 90 * 10**9 and hi == now + 3600 * 10**9
    assert accepted_starts(SpoolLimits(retention_days=None, max_ahead=None), now) == (None, None)
    # what the receiver would keep is what a compaction 90 s later keeps
    rows, rejected, _, _ = decode_request(_request([lo - 1, lo, hi, hi + 1], 5).SerializeToString(), "protobuf",
                                          (lo, hi))
    assert rows == 2 and rejected == {OLDER_THAN_RETENTION: 1, TOO_FAR_AHEAD: 1}


def test_without_retention_old_spans_are_kept(tmp_path: Path) -> None:
    with Spool(tmp_path, SpoolLimits(retention_days=None, compact_interval=3600), compact=False) as spool, \
            Receiver(spool, http="127.0.0.1:0", grpc=None, decode_workers=0) as rx:
        old = time.time_ns() - 300 * DAY_NS
        status, body = _post(rx.http_port or 0, _request([old], 6).SerializeToString(), "application/x-protobuf")
        assert status == 200 and not ExportTraceServiceResponse.FromString(body).HasField("partial_success")
        assert len(read_spool(tmp_path)) == 1
