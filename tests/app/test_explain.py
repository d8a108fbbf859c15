"""``latmap explain`` end to end: the map's spans from a source (in memory, with their
attributes, until the OTLP decoders fill them; and OTLP files made by the real SDK through
the CLI), the report's ``explanations`` and a pinned report as the baseline."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from collectors.base import SourceBase
from mapper.analysis.latency import LatencyMap
from mapper.app.explain import ExplainRequest, explanations_doc, run_explain
from mapper.app.pipeline import build_map
from mapper.app.request import MapRequest
from mapper.cli import main
from mapper.core.files import dumps, write_atomic
from mapper.core.model import Window
from mapper.core.source import Give
from mapper.core.spans import LoadedSpans, SpanBatch, in_window
from mapper.core.spec import SourceSpec, loads_spec
from mapper.render.explain import html_section
from mapper.render.report import to_json, to_markdown
from tests.explain_data import HOSTS, MS, SLOW_HOST, T0, chain

SPEC = """\
name: chain
sources: {{spans: {{kind: traces, path: "{path}"}}}}
stages:
  - {{name: gateway, owner: edge, traces: {{source: spans, service: gateway}}}}
  - {{name: pricing, owner: quant, upstream: [gateway], traces: {{source: spans, service: pricing}}}}
  - {{name: risk, owner: quant, upstream: [pricing], traces: {{source: spans, service: risk}}}}
"""
UNTIL = (T0 + 3600 * 10**9) / 1e9


class Memory(SourceBase):
    """A traces source over a batch in memory (a real Source: what the decoders will give)."""

    gives: frozenset[Give] = frozenset({"spans"})

    def __init__(self, batch: SpanBatch) -> None:
        self.spec = SourceSpec(name="spans", kind="traces", url="", place="test", path="memory")
        self.batch = batch

    def spans(self, window: Window, services: Sequence[str] = (), attributes: bool = False) -> LoadedSpans:
        return LoadedSpans(in_window(self.batch, window, Counter()), {}, "memory")


def _request(spec_path: Path, batch: SpanBatch, **kw: object) -> ExplainRequest:
    return ExplainRequest(MapRequest(str(spec_path), length=3600.0, until=UNTIL), "risk", "hop",
                          collectors={"spans": Memory(batch)}, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("explain") / "stream.yaml"
    p.write_text(SPEC.format(path="/nonexistent"))
    return p


def test_explain_names_the_slow_host_and_the_map_explains_its_bottleneck(spec_path: Path, tmp_path: Path) -> None:
    result = run_explain(_request(spec_path, chain()))
    (e,) = result.explanations
    top = e.findings[0]
    assert (top.key, top.value, top.significant) == ("host.name", SLOW_HOST, True)
    assert all(f.key == "host.name" for f in e.significant)
    doc = json.loads(json.dumps(explanations_doc(result)))
    assert doc["explanations"][0]["findings"][0]["value"] == SLOW_HOST
    spec = loads_spec(spec_path.read_text())
    lm = build_map(spec, Window(UNTIL - 3600, UNTIL), collectors={"spans": Memory(chain())})
    assert [(x.target, x.part) for x in lm.explanations] == [("risk", "hop"), ("end_to_end", "lead")]
    _report(lm, tmp_path)  # report.json is validated against the schema (conftest)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["explanations"][0]["findings"][0]["value"] == SLOW_HOST
    assert f"host.name={SLOW_HOST} (resource)" in to_markdown(lm).split("## Why the tail is slow")[1]
    assert f"host.name={SLOW_HOST}" in html_section(lm.explanations, lm.spec.links)


def _report(lm: LatencyMap, out: Path) -> Path:
    """report.json alone (report.html's charts take seconds: not what these tests are about)."""
    return write_atomic(out / "report.json", dumps(to_json(lm)))


def test_a_pinned_report_as_baseline_names_the_new_version(spec_path: Path, tmp_path: Path) -> None:
    spec = loads_spec(spec_path.read_text())
    _report(build_map(spec, Window(UNTIL - 3600, UNTIL), collectors={"spans": Memory(chain(seed=2))}), tmp_path)
    result = run_explain(_request(spec_path, chain(seed=3, version_on_slow="1.1"),
                                  baseline=str(tmp_path / "report.json")))
    _now, versus = result.explanations
    assert versus.contrast == "baseline" and versus.versus == f"baseline {tmp_path / 'report.json'}"
    top = versus.findings[0]
    assert (top.key, top.value, top.new, top.significant) == ("service.version", "1.1", True, True)
    assert [f.key for f in versus.significant] == ["service.version"]


def _otlp(tmp: Path, n: int = 1500) -> Path:
    """``n`` items by the real SDK: ``risk`` runs on six hosts (the resource's ``host.name``),
    one ~10x slower; decoys of no effect: the resource's ``cloud.availability_zone`` (two
    zones across the hosts), the span's ``messaging.system`` and ``customer.tier``."""
    exporter = InMemorySpanExporter()
    tracers = {}
    for svc in ("gateway", "pricing"):
        p = TracerProvider(resource=Resource.create({"service.name": svc}))
        p.add_span_processor(SimpleSpanProcessor(exporter))
        tracers[svc] = p.get_tracer("test")
    for host in HOSTS:
        for zone in ("a", "b"):
            p = TracerProvider(resource=Resource.create({"service.name": "risk", "host.name": host,
                                                         "cloud.availability_zone": zone}))
            p.add_span_processor(SimpleSpanProcessor(exporter))
            tracers[f"risk/{host}/{zone}"] = p.get_tracer("test")
    rng = np.random.default_rng(4)
    for i in range(n):
        host, zone = HOSTS[int(rng.integers(0, 6))], "ab"[int(rng.integers(0, 2))]
        t = T0 + i * 10 * MS
        gw = tracers["gateway"].start_span("GET /quote", kind=SpanKind.SERVER, start_time=t)
        gw.end(t + 2 * MS)
        pr = tracers["pricing"].start_span("price", trace.set_span_in_context(gw), SpanKind.CONSUMER,
                                           start_time=t + 3 * MS)
        pr.end(t + 6 * MS)
        slow = 10 if host == SLOW_HOST else 1
        took = int(rng.lognormal(np.log(5), 0.3) * MS * slow)
        tracers[f"risk/{host}/{zone}"].start_span(
            "score", trace.set_span_in_context(pr), SpanKind.CONSUMER, start_time=t + 7 * MS,
            attributes={"messaging.system": ("kafka", "rabbitmq")[int(rng.integers(0, 2))],
                        "customer.tier": ("gold", "silver", "bronze")[int(rng.integers(0, 3))]}
        ).end(t + 7 * MS + took)
    path = tmp / "spans.binpb"
    path.write_bytes(encode_spans(exporter.get_finished_spans()).SerializeToString())
    return path


def test_cli_json_ranks_the_slow_one_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "stream.yaml"
    spec.write_text(SPEC.format(path=_otlp(tmp_path)))
    args = ["explain", "-c", str(spec), "--until", str(UNTIL), "--window", "1h", "--stage", "risk"]
    assert main([*args, "--part", "process", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (e,) = doc["explanations"]
    top = e["findings"][0]
    assert (top["scope"], top["key"], top["value"], top["significant"]) == ("resource", "host.name", SLOW_HOST, True)
    assert [f for f in e["findings"] if f["significant"] and f["key"] != "host.name"] == []
    tested = {f["key"] for f in e["findings"]} | {c["key"] for c in e["counts"]}
    assert {"cloud.availability_zone", "messaging.system", "customer.tier"} <= tested  # the decoys were read
    assert e["kind"] == "attributes" and e["percentile"] == "p99" and e["tail_items"] >= 10
    assert main([*args, "--part", "process"]) == 0
    assert f"host.name={SLOW_HOST} (resource)" in capsys.readouterr().out
    assert main([*args, "--part", "queue"]) == 2
    assert main(["explain", "-c", str(spec), "--stage", "nowhere", "--part", "hop"]) == 2
    assert "--stage: 'nowhere' is not a stage" in capsys.readouterr().err
    assert main([*args, "--part", "hop", "--baseline", str(tmp_path / "missing.json")]) == 2
    assert "baseline not found" in capsys.readouterr().err


FANOUT = """\
name: fanout
sources: {{spans: {{kind: traces, path: "{path}"}}}}
stages:
  - {{name: a, traces: {{source: spans, service: a}}}}
  - {{name: b, upstream: a, traces: {{source: spans, service: b}}}}
  - {{name: c, upstream: a, traces: {{source: spans, service: c}}}}
  - {{name: d, upstream: [b, c], traces: {{source: spans, service: d}}}}
"""


def _fanout_otlp(tmp: Path, n: int = 800) -> Path:
    """``n`` items by the real SDK: a hands each to b (3 ms) and c (20 ms, 5% of items +200 ms)
    in parallel; d starts 1 ms after the later of the two."""
    exporter = InMemorySpanExporter()
    tracers = {}
    for svc in "abcd":
        p = TracerProvider(resource=Resource.create({"service.name": svc}))
        p.add_span_processor(SimpleSpanProcessor(exporter))
        tracers[svc] = p.get_tracer("test")
    rng = np.random.default_rng(9)
    for i in range(n):
        t = T0 + i * 50 * MS
        a = tracers["a"].start_span("hand out", kind=SpanKind.SERVER, start_time=t)
        a.end(t + 2 * MS)
        ctx = trace.set_span_in_context(a)
        b0, c0 = t + int((3 + rng.random()) * MS), t + int((3 + rng.random()) * MS)
        b_end = b0 + int((3 + (rng.random() < 0.02) * 10) * MS)
        c_end = c0 + int((20 + (rng.random() < 0.05) * 200) * MS)
        tracers["b"].start_span("b", ctx, SpanKind.CONSUMER, start_time=b0).end(b_end)
        tracers["c"].start_span("c", ctx, SpanKind.CONSUMER, start_time=c0).end(c_end)
        d0 = max(b_end, c_end) + MS
        tracers["d"].start_span("d", ctx, SpanKind.CONSUMER, start_time=d0).end(d0 + 2 * MS)
    path = tmp / "fanout.binpb"
    path.write_bytes(encode_spans(exporter.get_finished_spans()).SerializeToString())
    return path


def test_cli_a_fan_out_is_attributed_to_the_slow_branch_only(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "stream.yaml"
    spec.write_text(FANOUT.format(path=_fanout_otlp(tmp_path)))
    args = ["-c", str(spec), "--until", str(UNTIL), "--window", "1h"]
    assert main(["explain", *args, "--part", "lead", "--percentile", "95", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [e["kind"] for e in doc["explanations"]] == ["attributes", "critical_path"]
    cp = doc["explanations"][1]
    assert cp["percentile"] == "p95" and cp["tail_items"] >= 40
    on = {(s["stage"], s["part"]): s for s in cp["shares"]}
    assert on[("b", "wait")]["share"] == on[("b", "process")]["share"] == on[("b", "wait")]["on_path"] == 0.0
    assert cp["shares"][0]["stage"] == "c" and on[("c", "process")]["share"] > 0.8
    by = {x["upstream"]: x for x in cp["branches"]}
    assert (by["c"]["share"], by["b"]["decided"]) == (1.0, 0)
    assert cp["paths"][0]["stages"] == ["a", "c", "d"]
    main(["map", *args, "--format", "json", "--no-progress"])
    report = json.loads(capsys.readouterr().out)
    (mapped,) = [e for e in report["explanations"] if e["kind"] == "critical_path"]
    assert {x["upstream"]: x["decided"] for x in mapped["branches"]}["b"] == 0
    assert main(["explain", *args, "--part", "lead"]) == 0
    assert "at d: c arrived last" in capsys.readouterr().out


def test_partitioned_explanations_equal_in_memory(tmp_path: Path) -> None:
    """A spool of the chain whose risk host is in the ``service.instance.id`` column, mapped
    whole and with ``memory_budget: 0`` in 2+ partitions: the same explanations (counts added
    over partitions, the tail from the merged distribution), the slow instance first."""
    from collectors.spool.store import Spool

    batch = chain(1500)
    host = batch.attributes.column("host.name", "resource") if batch.attributes is not None else None
    assert host is not None
    batch = dataclasses.replace(batch, instance=np.asarray(host, dtype=object), attributes=None)
    root = tmp_path / "spool"
    with Spool(root, compact=False) as s:
        s.append(batch)
    maps = {}
    for name, engine in (("memory", "{kind: local}"),
                         ("merged", "{kind: local, partition_spans: 2000, memory_budget: 0}")):
        spec = loads_spec(SPEC.format(path=root) + f"engine: {engine}\n")
        maps[name] = json.loads(dumps(to_json(build_map(spec, Window(UNTIL - 3600, UNTIL)))))
    assert "traces-partitioned" in [c["code"] for c in maps["merged"]["checks"]]

    def strip(report: dict[str, object]) -> list[dict[str, object]]:
        out = []
        for e in report["explanations"]:  # type: ignore[attr-defined]
            e = {k: v for k, v in e.items() if k != "checks"}
            e["findings"] = [{k: v for k, v in f.items() if k != "examples"} for f in e["findings"]]
            e["counts"] = sorted(e["counts"], key=lambda c: (c["stage"], c["scope"], c["key"], c["value"]))
            out.append(e)
        return out

    memory, merged = strip(maps["memory"]), strip(maps["merged"])
    assert merged == memory
    top = memory[0]["findings"][0]  # type: ignore[index]
    assert (top["key"], top["value"], top["significant"]) == ("service.instance.id", SLOW_HOST, True)
