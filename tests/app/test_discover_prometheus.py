"""``discover --prometheus`` against a real Prometheus holding what a real one holds: Flower's
per-task histograms, an app's wait+process pair, service-graph series, latmap's own live
series, Prometheus/Go/promhttp series and a byte histogram; then the unedited draft maps and
says it is a draft."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from mapper.cli import main

pytestmark = pytest.mark.prometheus


def _histogram(name: str, labels: dict[str, str], n: int, end: float, bounds: tuple[str, ...] = ("0.01", "0.1"),
               ) -> list[str]:
    text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    out = []
    for i, t in enumerate((end - 300, end)):
        c = n * i
        for le, share in zip((*bounds, "+Inf"), (0.5, 0.9, 1.0), strict=True):
            out.append(f'{name}_bucket{{{text}{"," if text else ""}le="{le}"}} {round(c * share)} {t:.3f}\n')
        out.append(f"{name}_count{{{text}}} {c} {t:.3f}\n{name}_sum{{{text}}} {c * 0.02} {t:.3f}\n")
    return out


def _lines(end: float) -> list[str]:
    fams: list[tuple[str, list[tuple[dict[str, str], int]]]] = [
        ("flower_task_runtime_seconds", [({"job": "flower", "task": t, "worker": "w1"}, n)
                                         for t, n in (("tasks.add", 300), ("tasks.mul", 200), ("tasks.slow", 50))]),
        ("notify_queue_wait_seconds", [({"job": "app", "service": "notifier"}, 100)]),
        ("notify_send_seconds", [({"job": "app", "service": "notifier"}, 100)]),
        ("md_tick_process_seconds", [({"job": "app", "service": "market-data"}, 900)]),
        ("traces_service_graph_request_server_seconds", [
            ({"client": c, "server": s, "connection_type": ""}, n)
            for c, s, n in (("gateway", "market-data", 900), ("market-data", "notifier", 100),
                            ("notifier", "sms-provider", 40))]),
        ("latmap_stage_wait_seconds", [({"job": "latmap", "stream": "s", "stage": "risk"}, 80)]),
        ("latmap_stage_process_seconds", [({"job": "latmap", "stream": "s", "stage": "risk"}, 80)]),
        ("latmap_lead_time_seconds", [({"job": "latmap", "stream": "s"}, 80)]),
        ("prometheus_http_request_duration_seconds", [({"job": "prometheus", "handler": "/api/v1/query"}, 10)]),
        ("go_sched_latencies_seconds", [({"job": "app"}, 10)]),
        ("promhttp_metric_handler_duration_seconds", [({"job": "app"}, 10)]),
        ("http_request_duration_seconds", [({"job": "app", "handler": "/metrics"}, 10)]),
        ("http_response_size_bytes", [({"job": "app"}, 10)]),
    ]
    lines = []
    for name, rows in fams:
        lines.append(f"# TYPE {name} histogram\n")
        for labels, n in rows:
            lines += _histogram(name, labels, n, end)
    return [*lines, "# EOF\n"]


def test_discover_drafts_like_someone_who_knows_the_exporters(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from mapper.demo.localprom import backfill, running_prometheus
    from tests.servers import require_binary

    require_binary("prometheus")
    require_binary("promtool")
    end = float(int(time.time()) // 60 * 60 - 600)
    backfill(_lines(end), tmp_path / "data")
    draft = tmp_path / "stream.yaml"
    out = tmp_path / "out"
    with running_prometheus(tmp_path / "data") as url:
        assert main(["discover", "--prometheus", url, "--window", "1h", "--write", str(draft)]) == 0
        capsys.readouterr()
        code = main(["map", "-c", str(draft), "--window", "1h", "--format", "json", "--out", str(out)])
        printed = capsys.readouterr()
    text = draft.read_text()
    doc = yaml.safe_load(text)
    assert doc["draft"] is True
    stages = {s["name"]: s for s in doc["stages"]}
    assert list(stages) == ["gateway", "market-data", "notifier", "sms-provider", "flower-tasks.add",
                            "flower-tasks.mul", "flower-tasks.slow", "risk"], text
    for t in ("tasks.add", "tasks.mul", "tasks.slow"):
        assert stages[f"flower-{t}"]["process"] == {"source": "prom", "histogram": "flower_task_runtime_seconds",
                                                  "unit": "s", "selector": {"task": t}}
    assert stages["notifier"]["wait"]["histogram"] == "notify_queue_wait_seconds"
    assert stages["notifier"]["process"]["histogram"] == "notify_send_seconds"
    assert "wait" not in stages["market-data"] and stages["market-data"]["process"]["histogram"] == \
        "md_tick_process_seconds"
    assert stages["sms-provider"]["process"]["selector"] == {"client": "notifier", "server": "sms-provider"}
    assert "wait" not in stages["gateway"] and "process" not in stages["gateway"]
    assert stages["risk"]["wait"]["histogram"] == "latmap_stage_wait_seconds"
    assert stages["risk"]["process"]["selector"] == {"stage": "risk"}
    used = {m["histogram"] for s in doc["stages"] for p in ("wait", "process") if (m := s.get(p))}
    for gone in ("latmap_lead_time_seconds", "prometheus_http_request_duration_seconds", "go_sched_latencies_seconds",
                 "promhttp_metric_handler_duration_seconds", "http_request_duration_seconds",
                 "http_response_size_bytes"):
        assert gone not in used and f"# left out: {gone}" in text, gone
    assert code == 0, printed.err
    report = json.loads((out / "report.json").read_text())
    drafts = [c for c in report["checks"] if c["code"] == "spec-draft"]
    assert len(drafts) == 1 and drafts[0]["level"] == "warning" and f"{draft}:" in drafts[0]["message"]
    flower = next(s for s in report["stages"] if s["name"] == "flower-tasks.add")
    assert flower["process"]["count"] == 300
