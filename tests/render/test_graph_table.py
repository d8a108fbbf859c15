"""Issue 26: `discover --traces` labels each edge's wait (the hand-over) and process time (the
server's spans); it printed the process time alone, unlabelled, where a reader expects the wait."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mapper.analysis.servicegraph import service_graph
from mapper.cli import main
from mapper.core.spans import SpanBatch
from mapper.render.graph import edge_json, edge_table

MS = 1_000_000
PROD, CONS = 4, 5
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _feed_to_worker() -> SpanBatch:
    """Three items: feed publishes (0..10 ms), the worker starts 189 ms after, works 28.8 ms."""
    spans = []
    for i in range(3):
        t = i * 1000 * MS
        spans += [(i + 1, 10 * i + 1, 0, "feed", t, t + 10 * MS, PROD),
                  (i + 1, 10 * i + 2, 10 * i + 1, "worker", t + 199 * MS, t + int(227.8 * MS), CONS)]
    cols = {"trace_hi": [0] * len(spans), "trace_lo": [s[0] for s in spans], "span_id": [s[1] for s in spans],
            "parent_id": [s[2] for s in spans], "service": [s[3] for s in spans],
            "start_ns": [s[4] for s in spans], "end_ns": [s[5] for s in spans], "kind": [s[6] for s in spans]}
    return SpanBatch.from_columns(cols)


def test_each_edge_shows_its_wait_and_process_labelled() -> None:
    (edge,) = service_graph(_feed_to_worker())
    line = edge_table([edge]).splitlines()[1]
    assert line.startswith("  feed -> worker [messaging_system]  n=3  wait p50 189ms")
    assert "  process p50 28.8ms" in line
    doc = edge_json(edge)
    assert doc["wait"]["p50"]["value"] == pytest.approx(0.189)
    assert doc["process"]["p50"]["value"] == pytest.approx(0.0288)
    assert doc["wait"]["count"] == 3 and doc["process"]["count"] == 3


def test_discover_traces_prints_labelled_parts_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    tempo = FIXTURES / "otlp" / "grafana-tempo-datasource" / "mockJsonResponse.json"
    assert main(["discover", "--traces", str(tempo)]) == 0
    out = capsys.readouterr().out
    assert "(wait: hand-over into the server; process: the server's spans)" in out
    assert all(" wait " in ln and " process " in ln for ln in out.splitlines()[1:] if "->" in ln)
    assert main(["discover", "--traces", str(tempo), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out.split("\n# ")[0])
    assert all({"wait", "process"} <= set(e) for e in doc)
