"""From spans to the value stream: exact per-hop numbers from known synthetic traces, and the
service graph of the OpenTelemetry Collector's own test traces.

Spans are made by the real OpenTelemetry SDK (explicit start/end times) and encoded with the
SDK's own OTLP encoder into protobuf files, which the ``traces`` source reads.
Fixtures: tests/fixtures/otlp (Apache-2.0; see tests/fixtures/PROVENANCE.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind

from mapper.analysis.traces import StageMatch, build_trace_table
from mapper.app.pipeline import trace_graph
from mapper.cli import main
from mapper.core.spans import SpanBatch
from tests.servers import FIXTURES

MS = 1_000_000
T0 = 1_790_000_000 * 1_000_000_000  # 2026-09-21, well inside any test window
N = 400


SERVICES = ("gateway", "pricing", "alerting", "notifier")


def _providers(exporter: InMemorySpanExporter) -> dict[str, trace.Tracer]:
    tracers = {}
    for svc in SERVICES:
        p = TracerProvider(resource=Resource.create({"service.name": svc}))
        p.add_span_processor(SimpleSpanProcessor(exporter))
        tracers[svc] = p.get_tracer("test")
    return tracers


def known_traces(tmp_path: Path) -> Path:
    """The known traces, encoded by the SDK's OTLP encoder into a protobuf file."""
    exporter = InMemorySpanExporter()
    make_known_spans(_providers(exporter))
    path = tmp_path / "spans.binpb"
    path.write_bytes(encode_spans(exporter.get_finished_spans()).SerializeToString())
    return path


def make_known_spans(t: dict[str, trace.Tracer]) -> None:
    """N traces: gateway -> pricing (sync call), pricing -> alerting (async via a topic,
    by parent), alerting -> notifier (async, by link only). Item i's latencies:
    gateway process 1 ms + call overhead; pricing process 2 ms + i us; queue wait 5 ms + 10*i us;
    alerting process 3 ms (with a nested internal span); notifier wait 7 ms; process 4 ms."""
    for i in range(N):
        s0 = T0 + i * 100 * MS
        gw = t["gateway"].start_span("GET /quote", kind=SpanKind.SERVER, start_time=s0)
        call = t["gateway"].start_span("call pricing", trace.set_span_in_context(gw), SpanKind.CLIENT,
                                       start_time=s0 + 1 * MS)
        srv = t["pricing"].start_span("price", trace.set_span_in_context(call), SpanKind.SERVER,
                                      start_time=s0 + 1 * MS + 100_000)
        p_end = s0 + 1 * MS + 100_000 + 2 * MS + i * 1000
        pub = t["pricing"].start_span("quotes publish", trace.set_span_in_context(srv), SpanKind.PRODUCER,
                                      start_time=p_end - 200_000, attributes={"messaging.destination.name": "quotes"})
        pub.end(p_end)
        srv.end(p_end)
        call.end(p_end + 100_000)
        gw.end(p_end + 200_000)
        c0 = p_end + 5 * MS + i * 10_000
        con = t["alerting"].start_span("quotes process", trace.set_span_in_context(pub), SpanKind.CONSUMER,
                                       start_time=c0, attributes={"messaging.destination.name": "quotes"})
        t["alerting"].start_span("rules", trace.set_span_in_context(con), SpanKind.INTERNAL,
                                 start_time=c0 + MS).end(c0 + 2 * MS)
        enq = t["alerting"].start_span("alerts publish", trace.set_span_in_context(con), SpanKind.PRODUCER,
                                       start_time=c0 + 2 * MS + 500_000)
        enq.end(c0 + 3 * MS)
        con.end(c0 + 3 * MS)
        n0 = c0 + 3 * MS + 7 * MS
        t["notifier"].start_span("send", kind=SpanKind.CONSUMER, start_time=n0,
                                 links=[Link(enq.get_span_context())],
                                 context=trace.set_span_in_context(trace.NonRecordingSpan(enq.get_span_context()))
                                 ).end(n0 + 4 * MS)


SPEC = """\
name: quotes
sources:
  spans: {{kind: traces, path: "{path}"}}
stages:
  - {{name: gateway, owner: edge, traces: {{source: spans, service: gateway}}}}
  - {{name: pricing, owner: pricing-team, traces: {{source: spans, service: pricing}}}}
  - {{name: alerting, owner: alerts-team, traces: {{source: spans, service: alerting}}}}
  - {{name: notifier, owner: notify-team, traces: {{source: spans, service: notifier}}}}
objectives: {{end_to_end: {{p99: 50ms}}}}
"""


def received_traces(tmp: Path, make: Callable[[dict[str, trace.Tracer]], None] = make_known_spans,
                    services: Sequence[str] = SERVICES,
                    grpc_services: Sequence[str] = ("alerting", "notifier")) -> Path:
    """The spans ``make`` writes (default: the known traces) sent by the real SDK exporters to
    latmap's receiver: ``grpc_services`` over OTLP/gRPC, the others over OTLP/HTTP; returns the spool."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from collectors.spool.receiver import Receiver
    from collectors.spool.store import Spool, SpoolLimits

    spool_dir = tmp / "spool"
    # T0 is a fixed date, older than a default retention: kept (the receiver refuses what it would drop)
    with Spool(str(spool_dir), SpoolLimits(retention_days=None)) as spool, \
            Receiver(spool, http="127.0.0.1:0", grpc="127.0.0.1:0", decode_workers=0) as rx:
        providers = {}
        for svc in services:
            exporter = (HttpExporter(endpoint=f"http://127.0.0.1:{rx.http_port}/v1/traces")
                        if svc not in grpc_services
                        else GrpcExporter(endpoint=f"127.0.0.1:{rx.grpc_port}", insecure=True))
            p = TracerProvider(resource=Resource.create({"service.name": svc}))
            p.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=20_000, max_export_batch_size=500))
            providers[svc] = p
        make({s: p.get_tracer("test") for s, p in providers.items()})
        for p in providers.values():
            assert p.force_flush(30_000)
            p.shutdown()
    return spool_dir


@pytest.fixture(scope="module", params=["file", "receiver"])
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("traces")
    spans = known_traces(tmp) if request.param == "file" else received_traces(tmp)
    spec = tmp / "stream.yaml"
    spec.write_text(SPEC.format(path=spans))
    assert main(["map", "-c", str(spec), "--until", "2026-09-22T00:00:00Z", "--window", "2d",
                 "--out", str(tmp / "out")]) == 0
    return json.loads((tmp / "out" / "report.json").read_text())


def _stage(report: dict, name: str) -> dict:
    return next(s for s in report["stages"] if s["name"] == name)


def test_process_time_is_self_time(report: dict) -> None:
    i = np.arange(N)
    pricing = _stage(report, "pricing")["process"]
    assert pricing["count"] == N
    assert pricing["mean"] == pytest.approx(np.mean(2e-3 + i * 1e-6), rel=1e-9)
    # alerting: its consumer span (3 ms), the nested internal span not counted twice.
    assert _stage(report, "alerting")["process"]["p50"]["value"] == pytest.approx(3e-3)
    # gateway: its spans minus the synchronous call into pricing (downstream).
    gw = _stage(report, "gateway")["process"]
    assert gw["mean"] == pytest.approx(1e-3 + 0.1e-3 + 0.1e-3 + 0.1e-3, rel=1e-9)


def test_waits_by_parent_link_and_call(report: dict) -> None:
    i = np.arange(N)
    sync = _stage(report, "pricing")["wait"]
    assert sync["p50"]["value"] == pytest.approx(0.1e-3)  # client start -> server start
    queue = _stage(report, "alerting")["wait"]
    exact = 5e-3 + i * 1e-5
    assert queue["mean"] == pytest.approx(exact.mean(), rel=1e-9)
    for key, q in (("p50", 0.5), ("p99", 0.99)):
        est = queue[key]
        assert est["low"] <= np.quantile(exact, q) <= est["high"]
        assert est["value"] == pytest.approx(np.quantile(exact, q))
    assert _stage(report, "notifier")["wait"]["p50"]["value"] == pytest.approx(7e-3)  # by link


def test_lead_time_is_per_trace(report: dict) -> None:
    i = np.arange(N)
    lead = 1.1e-3 + 2e-3 + i * 1e-6 + 5e-3 + i * 1e-5 + 3e-3 + 7e-3 + 4e-3
    e2e = report["end_to_end"]
    assert e2e["count"] == N
    assert e2e["method"].startswith("samples")
    assert e2e["p50"]["value"] == pytest.approx(np.quantile(lead, 0.5))
    assert e2e["p99.99"]["value"] is None and "too few samples" in e2e["p99.99"]["note"]
    assert report["objectives"][0]["status"] == "met"
    fe = report["flow_efficiency"]
    assert fe["lead_seconds"] == pytest.approx(lead.mean(), rel=1e-9)


def test_incomplete_traces_and_negative_waits_are_counted() -> None:
    cols = {"trace_hi": [0] * 5, "trace_lo": [1, 1, 2, 3, 3], "span_id": [1, 2, 3, 4, 5],
            "parent_id": [0, 0, 0, 0, 0], "service": ["a", "b", "a", "a", "b"],
            "start_ns": [0, 20, 0, 0, 5], "end_ns": [10, 30, 10, 10, 8], "kind": [2] * 5}
    table = build_trace_table(SpanBatch.from_columns(cols), [StageMatch("a", "a"), StageMatch("b", "b")],
                              {"a": None, "b": "a"})
    assert table.traces == 3
    assert table.completeness("b") == pytest.approx(2 / 3)
    assert table.negative_waits("b") == 1
    assert sorted(table.lead.tolist()) == pytest.approx([10e-9, 30e-9])


@pytest.mark.parametrize(("fixture", "edges"), [
    ("messaging-system-trace.json", [("foo-server", "bar-requester", "")]),
    ("virtual-node-label-trace.json", [("foo-server", "unknown", "virtual_node"),
                                       ("user", "bar-requester", "virtual_node")]),
    ("extra-dimensions-queue-db-trace.json", [("foo-server", "bar-requester", "")]),
])
def test_service_graph_matches_the_collectors_expectations(fixture: str, edges: list) -> None:
    """The edges the Collector's servicegraph connector tests expect for the same traces
    (testdata/*-expected-metrics.yaml in opentelemetry-collector-contrib)."""
    got = trace_graph(str(FIXTURES / "otlp" / "collector-contrib-servicegraph" / fixture))
    assert [(e.client, e.server, e.connection_type) for e in got] == edges
    assert all(e.count == 1 for e in got)


def test_discover_traces_writes_a_starter_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "stream.yaml"
    tempo = FIXTURES / "otlp" / "grafana-tempo-datasource" / "mockJsonResponse.json"
    assert main(["discover", "--traces", str(tempo), "--write", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lb -> app" in printed and "app -> db" in printed
    from mapper.core.spec import load_spec

    spec = load_spec(out)
    assert [s.name for s in spec.stages] == ["lb", "app", "db"]


def test_deps_shows_suppliers_and_consumers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spans = known_traces(tmp_path)
    spec = tmp_path / "stream.yaml"
    spec.write_text(SPEC.format(path=spans))
    assert main(["deps", "alerting", "-c", str(spec), "--until", "2026-09-22T00:00:00Z", "--window", "2d"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "alerting (owner alerts-team)"
    assert lines[1].startswith("  consumes from (p50  p99  p99.99):")
    assert lines[2].startswith("    pricing (pricing-team): ")
    assert lines[3].startswith("  supplies (") and lines[4].startswith("    notifier (notify-team): ")
    assert main(["deps", "nowhere", "-c", str(spec)]) == 2
    assert "'nowhere' is not a stage" in capsys.readouterr().err


def test_self_time_in_two_threads_equals_one() -> None:
    from mapper.analysis.stage_time import self_time, self_time_parallel

    rng = np.random.default_rng(3)
    n = 20_000
    trace = np.sort(rng.integers(0, 3000, n))
    stage = rng.integers(0, 4, n)
    start = rng.integers(0, 10**9, n)
    end = start + rng.integers(0, 10**7, n)
    tmin = np.full(3000, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(tmin, trace, start)
    one = self_time(trace, stage, start, end, 4, 3000, tmin)
    two = self_time_parallel(trace, stage, start, end, 4, 3000, tmin, min_spans=0)
    np.testing.assert_allclose(two, one, rtol=1e-12, atol=0)
