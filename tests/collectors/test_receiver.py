"""``latmap serve``: the OTLP receiver and its spool, with real exporters, sockets and files.

The OpenTelemetry SDK's own OTLP exporters (HTTP and gRPC) send to a receiver on loopback;
raw requests cover each answer of the OTLP specification; a receiver subprocess is killed
with SIGKILL under load to prove that every acknowledged span is on disk.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np
import pyarrow.dataset as ds
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind

from collectors.spool.receiver import BodyTooLargeError, Receiver, inflate_gzip
from collectors.spool.store import (
    SEGMENT_MAGIC,
    Spool,
    SpoolLimits,
    encode_payload,
    read_segment,
    read_spool,
    scan_spool,
)
from mapper.cli import main
from mapper.core import spans as S
from mapper.demo.localprom import free_port
from tests.paths import ROOT

TOKEN = "t0k3n-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


# --- helpers ------------------------------------------------------------------------------


def post(port: int, body: bytes, headers: dict[str, str], path: str = "/v1/traces",
         method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def otlp_request(n: int, *, service: str | None = "svc", trace: int = 1, first_span: int = 1,
                 bad_ids: int = 0, start_ns: int | None = None) -> bytes:
    """An ExportTraceServiceRequest of ``n`` good spans plus ``bad_ids`` with 3-byte trace ids."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    if service is not None:
        attr = rs.resource.attributes.add()
        attr.key, attr.value.string_value = "service.name", service
    spans = rs.scope_spans.add().spans
    t0 = start_ns if start_ns is not None else time.time_ns()
    for i in range(n):
        spans.add(trace_id=trace.to_bytes(16, "big"), span_id=(first_span + i).to_bytes(8, "big"), name=f"op{i % 3}",
                  kind=2, start_time_unix_nano=t0 + i, end_time_unix_nano=t0 + i + 1000)
    for i in range(bad_ids):
        spans.add(trace_id=b"\x01\x02\x03", span_id=(10**6 + i).to_bytes(8, "big"), name="bad",
                  start_time_unix_nano=t0, end_time_unix_nano=t0 + 1)
    return req.SerializeToString()


def rows_of(batch: S.SpanBatch, trace: int) -> S.SpanBatch:
    return batch.take(np.flatnonzero((batch.trace_hi == 0) & (batch.trace_lo == trace)))


def status_message(body: bytes) -> str:
    return str(status_pb2.Status.FromString(body).message)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    """One receiver for the module: HTTP and gRPC, a token, and two decode worker processes."""
    spool = Spool(tmp_path_factory.mktemp("spool"), SpoolLimits(compact_interval=3600))
    receiver = Receiver(spool, http="127.0.0.1:0", grpc="127.0.0.1:0", token=TOKEN, decode_workers=2)
    receiver.start()
    yield receiver
    receiver.stop()
    spool.close()


@pytest.fixture
def small(tmp_path: Path) -> Iterator[tuple[Receiver, Spool]]:
    """A receiver with tight limits (1 MiB bodies, 200 KiB of disk), no token, decoding in-process."""
    spool = Spool(tmp_path / "spool", SpoolLimits(max_disk_bytes=200_000, compact_interval=3600))
    receiver = Receiver(spool, http="127.0.0.1:0", grpc="127.0.0.1:0", max_body_bytes=1 << 20, decode_workers=0)
    receiver.start()
    yield receiver, spool
    receiver.stop()
    spool.close()


# --- the SDK's exporters ------------------------------------------------------------------


def _emit(provider: TracerProvider) -> None:
    """A server span calling out, publishing to a topic, and a consumer linked to it."""
    tracer = provider.get_tracer("latmap.tests")
    with tracer.start_as_current_span("GET /alerts", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("SELECT alerts", kind=SpanKind.CLIENT,
                                          attributes={"db.system": "postgresql", "peer.service": "db"}):
            time.sleep(0.002)
        with tracer.start_as_current_span("alerts publish", kind=SpanKind.PRODUCER,
                                          attributes={"messaging.system": "kafka",
                                                      "messaging.destination.name": "alerts"}) as producer:
            ctx = producer.get_span_context()
    consumer = tracer.start_span("alerts process", kind=SpanKind.CONSUMER, links=[Link(ctx)],
                                 attributes={"messaging.destination.name": "alerts"})
    consumer.end()


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_sdk_exporter_spans_land_in_spool_with_their_values(served: Receiver, transport: str) -> None:
    memory = InMemorySpanExporter()
    if transport == "http":
        exporter = HttpSpanExporter(endpoint=f"http://127.0.0.1:{served.http_port}/v1/traces", headers=AUTH)
    else:
        exporter = GrpcSpanExporter(endpoint=f"127.0.0.1:{served.grpc_port}", insecure=True,
                                    headers={"authorization": f"Bearer {TOKEN}"})
    service = f"alerting-{transport}"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _emit(provider)
    provider.shutdown()

    sent = memory.get_finished_spans()
    batch = read_spool(served.spool.path)
    got = batch.take(np.flatnonzero(batch.service == service))
    assert len(got) == len(sent) == 4
    by_id = {int(got.span_id[i]): i for i in range(len(got))}
    for span in sent:
        i = by_id[span.context.span_id]
        hi, lo = divmod(span.context.trace_id, 1 << 64)
        assert (int(got.trace_hi[i]), int(got.trace_lo[i])) == (hi, lo)
        assert got.name[i] == span.name
        assert int(got.parent_id[i]) == (span.parent.span_id if span.parent else 0)
        assert int(got.start_ns[i]) == span.start_time and int(got.end_ns[i]) == span.end_time
        assert int(got.kind[i]) == span.kind.value + 1  # the SDK's enum starts at INTERNAL=0
    names = {str(got.name[i]): i for i in range(len(got))}
    db, consumer = names["SELECT alerts"], names["alerts process"]
    assert got.end_ns[db] - got.start_ns[db] >= 2_000_000
    assert (got.db_system[db], got.peer_service[db]) == ("postgresql", "db")
    producer = names["alerts publish"]
    assert got.messaging_system[producer] == "kafka" and got.destination[consumer] == "alerts"
    assert got.parent_id[consumer] == 0 and got.link_span_id[consumer] == got.span_id[producer]


# --- OTLP/HTTP answers --------------------------------------------------------------------


def test_json_body_is_accepted_and_answered_in_json(served: Receiver) -> None:
    now = time.time_ns()
    doc = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
        "scopeSpans": [{"spans": [
            {"traceId": "0" * 30 + "2a", "spanId": "00000000000000a1", "name": "root", "kind": 2,
             "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 5000)},
            {"traceId": "0" * 30 + "2a", "spanId": "00000000000000a2", "parentSpanId": "00000000000000a1",
             "name": "child", "kind": 3, "startTimeUnixNano": str(now + 10), "endTimeUnixNano": str(now + 20),
             "unknownFieldIsIgnored": True},
        ]}],
    }]}
    status, headers, body = post(served.http_port or 0, json.dumps(doc).encode(),
                                 {"Content-Type": "application/json", **AUTH})
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {}
    got = rows_of(read_spool(served.spool.path), 0x2A)
    assert sorted(got.name) == ["child", "root"] and set(got.service) == {"json-svc"}


def test_gzip_body_is_accepted(served: Receiver) -> None:
    body = gzip.compress(otlp_request(50, trace=0x6A))
    status, _, _ = post(served.http_port or 0, body,
                        {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip", **AUTH})
    assert status == 200
    assert len(rows_of(read_spool(served.spool.path), 0x6A)) == 50


def test_gzip_bomb_is_refused_with_413_without_inflating_it(small: tuple[Receiver, Spool]) -> None:
    receiver, _ = small
    bomb = gzip.compress(b"\0" * (256 << 20), compresslevel=9)  # 256 MiB in ~250 KiB
    assert len(bomb) < 1 << 20
    started = time.perf_counter()
    status, _, body = post(receiver.http_port or 0, bomb,
                                 {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
    assert status == 413 and "inflates past" in status_message(body)
    assert time.perf_counter() - started < 2  # inflating 256 MiB would take longer
    with pytest.raises(BodyTooLargeError):
        inflate_gzip(bomb, 1 << 20)
    # Several gzip members are one body; the limit counts them together.
    assert inflate_gzip(gzip.compress(b"ab") + gzip.compress(b"cd"), 4) == b"abcd"
    with pytest.raises(BodyTooLargeError):
        inflate_gzip(gzip.compress(b"ab") + gzip.compress(b"cd"), 3)


def test_body_over_the_limit_is_413(small: tuple[Receiver, Spool]) -> None:
    receiver, _ = small
    status, _, body = post(receiver.http_port or 0, b"\0" * ((1 << 20) + 1),
                           {"Content-Type": "application/x-protobuf"})
    assert status == 413 and "limit" in status_message(body)


def test_other_content_type_or_encoding_is_415(served: Receiver) -> None:
    status, _, body = post(served.http_port or 0, b"hello", {"Content-Type": "text/plain", **AUTH})
    assert status == 415 and "application/x-protobuf" in status_message(body)
    status, _, body = post(served.http_port or 0, b"x", {"Content-Type": "application/x-protobuf",
                                                          "Content-Encoding": "br", **AUTH})
    assert status == 415 and "gzip" in status_message(body)


def test_malformed_protobuf_is_400_with_a_status_message(served: Receiver) -> None:
    status, headers, body = post(served.http_port or 0, b"\x0a\xff\xff\xff\x0fgarbage",
                                 {"Content-Type": "application/x-protobuf", **AUTH})
    assert status == 400 and headers["content-type"] == "application/x-protobuf"
    assert "invalid protobuf" in status_message(body)
    status, headers, body = post(served.http_port or 0, b"{not json", {"Content-Type": "application/json", **AUTH})
    assert status == 400 and "invalid JSON" in json.loads(body)["message"]
    status, _, body = post(served.http_port or 0, b"\x1f\x8b\x08garbage",
                           {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip", **AUTH})
    assert status == 400 and "gzip" in status_message(body)


def test_partial_success_counts_the_rejected_spans(served: Receiver) -> None:
    status, _, body = post(served.http_port or 0, otlp_request(3, trace=0x7B, bad_ids=2),
                           {"Content-Type": "application/x-protobuf", **AUTH})
    assert status == 200
    resp = ExportTraceServiceResponse.FromString(body)
    assert resp.partial_success.rejected_spans == 2
    assert "bad trace id length: 2" in resp.partial_success.error_message
    assert len(rows_of(read_spool(served.spool.path), 0x7B)) == 3
    # A full success leaves partial_success unset.
    status, _, body = post(served.http_port or 0, otlp_request(1, trace=0x7C),
                           {"Content-Type": "application/x-protobuf", **AUTH})
    assert status == 200 and not ExportTraceServiceResponse.FromString(body).HasField("partial_success")


def test_token_is_required_on_http_and_grpc(served: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    body = otlp_request(1, trace=0x99)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        status, got, reply = post(served.http_port or 0, body, {"Content-Type": "application/x-protobuf", **headers})
        assert status == 401 and got["www-authenticate"] == "Bearer"
        assert "bearer token" in status_message(reply)
    assert len(rows_of(read_spool(served.spool.path), 0x99)) == 0
    request = ExportTraceServiceRequest.FromString(body)
    with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Export(request, metadata=[("authorization", "Bearer wrong")], timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stub.Export(request, metadata=[("authorization", f"bearer {TOKEN}")], timeout=10)
    assert len(rows_of(read_spool(served.spool.path), 0x99)) == 1
    assert TOKEN not in caplog.text


def test_other_paths_and_methods_are_404_and_405(served: Receiver) -> None:
    port = served.http_port or 0
    assert post(port, b"", {**AUTH, "Content-Type": "application/x-protobuf"}, path="/v1/metrics")[0] == 404
    status, headers, _ = post(port, b"", {}, path="/v1/traces", method="GET")
    assert status == 405 and headers["allow"] == "POST"
    # The refused body is read and dropped: the next request on the connection is understood.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("PUT", "/v1/traces", body=b"POST /v1/traces HTTP/1.1\r\n\r\n")
    resp = conn.getresponse()
    assert resp.status == 405 and resp.read()
    conn.request("GET", "/metrics")
    assert conn.getresponse().status == 200
    conn.close()


def test_metrics_expose_spans_requests_latency_and_spool(served: Receiver) -> None:
    post(served.http_port or 0, otlp_request(7, trace=0x33, bad_ids=1, service=None),
         {"Content-Type": "application/x-protobuf", **AUTH})
    status, _, body = post(served.http_port or 0, b"", {}, path="/metrics", method="GET")
    text = body.decode()
    assert status == 200
    for needle in ('latmap_receiver_spans_accepted_total{transport="http"}',
                   'latmap_receiver_spans_rejected_total{reason="bad trace id length"}',
                   'latmap_receiver_spans_repaired_total{reason="missing service.name"} 7.0',
                   'latmap_receiver_requests_total{code="200",transport="http"}',
                   'latmap_receiver_request_duration_seconds_bucket', "latmap_spool_bytes ", "latmap_spool_segments "):
        assert needle in text
    spool_bytes = next(line for line in text.splitlines() if line.startswith("latmap_spool_bytes "))
    assert float(spool_bytes.split()[1]) > 0


def test_metrics_is_public_by_choice_and_asks_the_token_with_metrics_token(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", SpoolLimits(compact_interval=3600))
    guarded = Receiver(spool, http="127.0.0.1:0", grpc=None, token=TOKEN, decode_workers=0, metrics_public=False)
    with guarded:
        port = guarded.http_port or 0
        assert post(port, b"", {}, path="/metrics", method="GET")[0] == 401
        assert post(port, b"", {"Authorization": "Bearer nope"}, path="/metrics", method="GET")[0] == 401
        status, _, body = post(port, b"", AUTH, path="/metrics", method="GET")
        assert status == 200 and b"latmap_spool_bytes" in body
    spool.close()


def test_serve_metrics_token_needs_a_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--spool", str(tmp_path / "s"), "--metrics-token"]) == 2
    assert capsys.readouterr().err == "latmap: error: --metrics-token needs --token-env VAR or --token-file FILE\n"


def test_full_spool_answers_503_and_grpc_resource_exhausted_with_retry_info(small: tuple[Receiver, Spool]) -> None:
    receiver, spool = small
    body = otlp_request(1000, trace=0x55)
    answers = [post(receiver.http_port or 0, body, {"Content-Type": "application/x-protobuf"}) for _ in range(5)]
    statuses = [a[0] for a in answers]
    assert statuses[0] == 200 and statuses[-1] == 503
    refused = answers[-1]
    assert int(refused[1]["retry-after"]) > 0 and "full" in status_message(refused[2])
    with grpc.insecure_channel(f"127.0.0.1:{receiver.grpc_port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Export(ExportTraceServiceRequest.FromString(body), timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dict(err.value.trailing_metadata())["grpc-status-details-bin"]
    info = error_details_pb2.RetryInfo()
    assert status_pb2.Status.FromString(details).details[0].Unpack(info) and info.retry_delay.seconds > 0
    assert len(read_spool(spool.path)) == 1000 * statuses.count(200)


def test_writer_queue_full_answers_429_with_retry_after(tmp_path: Path) -> None:
    # One byte of queue: a request that arrives while another waits for its fsync is refused.
    spool = Spool(tmp_path / "spool", SpoolLimits(max_pending_bytes=1, compact_interval=3600))
    receiver = Receiver(spool, http="127.0.0.1:0", grpc=None, decode_workers=0)
    receiver.start()
    seen: dict[int, int] = {}
    acked: list[int] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 15

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", receiver.http_port or 0, timeout=30)
        for i in range(10_000):
            if 429 in seen or time.monotonic() > deadline:
                break
            trace = k * 100_000 + i + 1
            conn.request("POST", "/v1/traces", body=otlp_request(2, trace=trace),
                         headers={"Content-Type": "application/x-protobuf"})
            resp = conn.getresponse()
            resp.read()
            with lock:
                seen[resp.status] = seen.get(resp.status, 0) + 1
                if resp.status == 200:
                    acked.append(trace)
                if resp.status == 429:
                    assert resp.getheader("Retry-After") == "1"
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        receiver.stop()
        spool.close()
    assert 429 in seen and set(seen) <= {200, 429}
    assert set(read_spool(spool.path).trace_lo.tolist()) == set(acked)


def test_a_dead_decode_worker_costs_one_503_and_is_replaced(tmp_path: Path) -> None:
    with Spool(tmp_path, SpoolLimits(compact_interval=3600)) as spool, \
            Receiver(spool, http="127.0.0.1:0", grpc=None, decode_workers=1) as receiver:
        headers = {"Content-Type": "application/x-protobuf"}
        assert post(receiver.http_port or 0, otlp_request(5, trace=1), headers)[0] == 200
        (pid,) = receiver.worker_pids
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and "State:\tZ" not in Path(f"/proc/{pid}/status").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        status, got, body = post(receiver.http_port or 0, otlp_request(5, trace=2), headers)
        assert status == 503 and got["retry-after"] and "decode worker" in status_message(body)
        assert post(receiver.http_port or 0, otlp_request(5, trace=3), headers)[0] == 200
        assert receiver.worker_pids != [pid]
    assert set(read_spool(tmp_path).trace_lo.tolist()) == {1, 3}


# --- durability ---------------------------------------------------------------------------


def test_every_acknowledged_span_survives_sigkill_under_load(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mapper", "serve", "--spool", str(spool_dir), "--http", f"127.0.0.1:{port}",
         "--grpc", "off", "--decode-workers", "2"],
        cwd=ROOT, env=env, start_new_session=True, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if post(port, b"", {}, path="/metrics", method="GET")[0] == 200:
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "receiver did not start"
                time.sleep(0.05)

        acked: list[tuple[int, int]] = []  # (trace, first span id) of every 200
        lock = threading.Lock()
        stop = threading.Event()

        def client(k: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            for i in range(1000):
                trace = k * 10_000 + i + 1
                body = otlp_request(300, trace=trace, first_span=trace * 1000)
                try:
                    conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"})
                    resp = conn.getresponse()
                    resp.read()
                except (OSError, http.client.HTTPException):
                    return  # the receiver died: this request was never acknowledged
                if resp.status == 200:
                    with lock:
                        acked.append((trace, trace * 1000))
                if stop.is_set():
                    return

        threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        while len(acked) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)  # the receiver and its decode workers, mid-load
        stop.set()
        for t in threads:
            t.join(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()
    assert len(acked) >= 60

    read = scan_spool(spool_dir)
    keys = set(zip(read.batch.trace_lo.tolist(), read.batch.span_id.tolist(), strict=True))
    missing = [(t, s) for t, s in acked if any((t, s + j) not in keys for j in range(300))]
    assert not missing, f"{len(missing)} acknowledged requests lost"
    assert read.duplicates == 0
    # A new writer takes over the directory and compacts what the dead one left.
    with Spool(spool_dir, SpoolLimits(compact_interval=3600)) as spool:
        assert spool.compact() >= 1
    after = read_spool(spool_dir)
    assert set(zip(after.trace_lo.tolist(), after.span_id.tolist(), strict=True)) == keys
    assert not list((spool_dir / "_wal").glob("*.wal"))


def test_sigterm_shuts_down_cleanly_and_releases_the_spool(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mapper", "serve", "--spool", str(tmp_path), "--http", "127.0.0.1:0",
         "--grpc", "127.0.0.1:0", "--decode-workers", "0"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the announcement, once listening
        assert "OTLP/HTTP port" in line, line
        port = int(line.split("OTLP/HTTP port ")[1].split(",")[0])
        assert post(port, otlp_request(25, trace=0x5E), {"Content-Type": "application/x-protobuf"})[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    read = scan_spool(tmp_path)
    assert len(read.batch) == 25 and read.torn_records == 0
    with Spool(tmp_path):  # the lock was released
        pass


def _batch(n: int, trace: int, start_ns: int) -> S.SpanBatch:
    return S.SpanBatch.from_columns({
        "trace_hi": np.zeros(n), "trace_lo": np.full(n, trace), "span_id": np.arange(1, n + 1),
        "start_ns": start_ns + np.arange(n) * 1000, "end_ns": start_ns + np.arange(n) * 1000 + 500,
        "service": ["svc"] * n, "name": ["op"] * n,
    })


def test_torn_or_corrupt_record_is_skipped_alone(tmp_path: Path) -> None:
    now = time.time_ns()
    with Spool(tmp_path, SpoolLimits(compact_interval=3600)) as spool:
        for trace in (1, 2, 3, 4):
            spool.append(_batch(10, trace, now))
    (segment,) = (tmp_path / "_wal").glob("*.wal")
    data = segment.read_bytes()
    assert data.startswith(SEGMENT_MAGIC)
    record = len(_record_bytes(_batch(10, 1, now)))
    assert len(data) == len(SEGMENT_MAGIC) + 4 * record

    # A crash mid-write: the last record is cut short.
    segment.write_bytes(data[:-7])
    table, torn = read_segment(segment)
    assert torn == 1 and sorted(set(table.column("trace_lo").to_pylist())) == [1, 2, 3]
    # Only a few header bytes made it.
    segment.write_bytes(data[:len(SEGMENT_MAGIC) + 3 * record + 5])
    assert read_segment(segment)[1] == 1 and read_segment(segment)[0].num_rows == 30
    # A flipped bit inside the second record: that record alone is skipped.
    damaged = bytearray(data)
    damaged[len(SEGMENT_MAGIC) + record + 100] ^= 0x40
    segment.write_bytes(bytes(damaged))
    table, torn = read_segment(segment)
    assert torn == 1 and sorted(set(table.column("trace_lo").to_pylist())) == [1, 3, 4]
    read = scan_spool(tmp_path)
    assert read.torn_records == 1 and len(read.batch) == 30


def _record_bytes(batch: S.SpanBatch) -> bytes:
    from collectors.spool.reader import record as _record

    return _record(encode_payload(batch))


def test_compaction_writes_hive_partitions_by_span_start_hour(tmp_path: Path) -> None:
    hour = 3_600_000_000_000
    base = (time.time_ns() // (24 * hour) - 1) * 24 * hour  # yesterday 00:00 UTC
    starts = {1: base + 23 * hour + 5, 2: base + 24 * hour + 7, 3: base + 24 * hour + 9}  # 23:00, next day 00:00
    with Spool(tmp_path, SpoolLimits(compact_interval=3600)) as spool:
        for trace, start in starts.items():
            spool.append(_batch(5, trace, start))
        spool.rotate()
        assert spool.compact() == 1
        assert spool.stats().segments == 0
    day0 = datetime.fromtimestamp(base / 1e9, UTC).strftime("%Y-%m-%d")
    day1 = datetime.fromtimestamp((base + 24 * hour) / 1e9, UTC).strftime("%Y-%m-%d")
    files = sorted(str(p.relative_to(tmp_path).parent) for p in tmp_path.rglob("*.parquet"))
    assert files == [f"date={day0}/hour=23", f"date={day1}/hour=00"]
    assert not list(tmp_path.rglob(".*.tmp")) and not list((tmp_path / "_wal").glob("*.wal"))

    table = ds.dataset(tmp_path, partitioning="hive").to_table()
    assert table.num_rows == 15
    rows = sorted(zip(table.column("trace_lo").to_pylist(), table.column("date").to_pylist(),
                      table.column("hour").to_pylist(), strict=True))
    assert {r for r in rows if r[0] == 1} == {(1, day0, 23)}
    assert {r for r in rows if r[0] != 1} == {(2, day1, 0), (3, day1, 0)}
    assert table.schema.field("span_id").type == S.parquet_schema().field("span_id").type

    # Reading prunes by time; both ends inclusive.
    assert set(read_spool(tmp_path, start_ns=base + 24 * hour).trace_lo.tolist()) == {2, 3}
    assert set(read_spool(tmp_path, end_ns=starts[1]).trace_lo.tolist()) == {1}
    assert len(read_spool(tmp_path, start_ns=starts[3], end_ns=starts[3])) == 1


def test_segments_and_parquet_overlap_is_deduplicated(tmp_path: Path) -> None:
    """A crash between renaming the Parquet files and removing the segment leaves both."""
    now = time.time_ns()
    with Spool(tmp_path, SpoolLimits(compact_interval=3600)) as spool:
        spool.append(_batch(20, 9, now))
        spool.rotate()
        (segment,) = (tmp_path / "_wal").glob("*.wal")
        kept = segment.read_bytes()
        spool.compact()
        segment.write_bytes(kept)  # the segment is back, as if unlink had not happened
    read = scan_spool(tmp_path)
    assert len(read.batch) == 20 and read.duplicates == 20
    with Spool(tmp_path, SpoolLimits(compact_interval=3600)) as spool:
        spool.compact()  # overwrites the same Parquet file: still one copy
    assert scan_spool(tmp_path).duplicates == 0 and len(read_spool(tmp_path)) == 20


def test_retention_drops_old_partitions_and_old_spans(tmp_path: Path) -> None:
    day = 86_400_000_000_000
    now = time.time_ns()
    with Spool(tmp_path, SpoolLimits(compact_interval=3600, retention_days=2)) as spool:
        spool.append(_batch(5, 1, now - 5 * day))  # older than the retention: never written to Parquet
        spool.append(_batch(5, 2, now - day))
        spool.rotate()
        spool.compact()
        assert set(read_spool(tmp_path).trace_lo.tolist()) == {2}
        assert spool.apply_retention(now_ns=now + 2 * day) == 1
        assert len(read_spool(tmp_path)) == 0 and not list(tmp_path.glob("date=*"))
        assert spool.stats().disk_bytes == 0


def test_second_writer_on_one_spool_is_refused(tmp_path: Path) -> None:
    from collectors.spool.store import SpoolError

    with Spool(tmp_path), pytest.raises(SpoolError, match="another process"):
        Spool(tmp_path)


def test_main_reports_a_missing_token_variable_in_one_line(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "--spool", str(tmp_path), "--token-env", "LATMAP_TEST_NO_SUCH_VAR", "--grpc", "off"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["latmap: error: --token-env: environment variable LATMAP_TEST_NO_SUCH_VAR is not set"]


def test_spool_round_trip_keeps_every_column(tmp_path: Path) -> None:
    batch = S.SpanBatch.from_columns({
        "trace_hi": [2**64 - 1], "trace_lo": [5], "span_id": [2**63 + 1], "parent_id": [7],
        "link_trace_hi": [1], "link_trace_lo": [2], "link_span_id": [3], "start_ns": [time.time_ns()],
        "end_ns": [time.time_ns() + 9], "kind": [S.KIND_PRODUCER], "status": [2], "service": ["s"],
        "name": ["n"], "destination": ["topic"], "messaging_system": ["kafka"], "peer_service": [None],
        "db_system": [None],
    })
    with Spool(tmp_path) as spool:
        spool.append(batch)
    got = read_spool(tmp_path)
    for name, col in batch.columns().items():
        assert got.columns()[name].tolist() == col.tolist(), name
