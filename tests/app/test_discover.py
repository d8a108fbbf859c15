"""``latmap discover`` against the test Prometheus: families, labels, a starter spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from mapper.app.discover import Discovery, starter_spec
from mapper.cli import main
from mapper.core.spec import loads_spec

pytestmark = pytest.mark.prometheus


def test_discover_lists_families_and_writes_a_loadable_spec(prom_url: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "stream.yaml"
    assert main(["discover", "--prometheus", prom_url, "--window", "3650d", "--write", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "alert_queue_wait_seconds" in printed and "notify_send_seconds" in printed
    spec = loads_spec(out.read_text(), str(out))
    alerting = spec.stage("alerting")
    assert alerting.wait is not None and alerting.wait.name == "alert_queue_wait_seconds"
    assert alerting.process is not None and alerting.process.name == "alert_eval_seconds"
    assert main(["discover", "--prometheus", prom_url, "--write", str(out)]) == 2
    assert "exists; use --force" in capsys.readouterr().err


def test_service_graph_edges_become_the_chain() -> None:
    found = Discovery((), (("gateway", "alerting", 10.0), ("alerting", "notification", 5.0),
                           ("market-data", "alerting", 100.0)))
    spec = loads_spec(starter_spec(found, "http://127.0.0.1:9090"))
    assert [s.name for s in spec.stages] == ["gateway", "market-data", "alerting", "notification"]
    assert spec.stage("gateway").process is None and spec.stage("market-data").process is None
    assert spec.stage("alerting").process.selector == {"client": "market-data", "server": "alerting"}  # type: ignore[union-attr]
    assert spec.draft


def test_discover_builds_the_chain_from_real_service_graph_metrics(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The OTel Collector's servicegraph connector metrics, backfilled into a real Prometheus."""
    import time

    from mapper.demo.localprom import backfill, running_prometheus
    from tests.servers import require_binary

    require_binary("prometheus")
    end = float(int(time.time()) // 60 * 60 - 600)
    lines = ["# TYPE traces_service_graph_request_server_seconds histogram\n"]
    for client, server, n in (("market-data", "alerting", 900), ("alerting", "notification", 40),
                              ("gateway", "alerting", 100)):
        labels = f'client="{client}",server="{server}",connection_type=""'
        for i, t in enumerate((end - 300, end)):
            c = n * i
            for le, share in (("0.01", 0.5), ("0.1", 0.9), ("+Inf", 1.0)):
                lines.append(f'traces_service_graph_request_server_seconds_bucket{{{labels},le="{le}"}} '
                             f"{round(c * share)} {t:.3f}\n")
            lines.append(f"traces_service_graph_request_server_seconds_count{{{labels}}} {c} {t:.3f}\n")
            lines.append(f"traces_service_graph_request_server_seconds_sum{{{labels}}} {c * 0.02} {t:.3f}\n")
    lines.append("# EOF\n")
    data_dir = tmp_path / "data"
    backfill(lines, data_dir)
    out = tmp_path / "stream.yaml"
    with running_prometheus(data_dir) as url:
        assert main(["discover", "--prometheus", url, "--window", "1h", "--write", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "market-data -> alerting  (" in printed and "alerting -> notification  (" in printed
    spec = loads_spec(out.read_text())
    assert [s.name for s in spec.stages] == ["gateway", "market-data", "alerting", "notification"]
    assert spec.stage("alerting").process.selector == {"client": "market-data", "server": "alerting"}  # type: ignore[union-attr]


def test_discover_drafts_time_histograms_only_and_the_draft_maps_unedited(tmp_path: Path) -> None:
    """A real Prometheus scraping a prometheus-client exporter with time, byte and sample
    histograms: only the time ones are proposed, with their unit, and the draft maps as is."""
    import time

    import numpy as np
    import yaml
    from prometheus_client import CollectorRegistry, Histogram, start_http_server

    from mapper.demo.localprom import free_port, running_prometheus
    from tests.servers import require_binary

    require_binary("prometheus")
    reg = CollectorRegistry()
    hs = {
        "checkout_seconds": Histogram("checkout_seconds", "Checkout.", registry=reg),
        "checkout_queue_wait_milliseconds": Histogram(
            "checkout_queue_wait_milliseconds", "Queue wait.", registry=reg,
            buckets=(1, 5, 10, 50, 100, 500, 1000)),
        "checkout_response_size_bytes": Histogram("checkout_response_size_bytes", "Size.", registry=reg,
                                                  buckets=(100, 1000, 10000)),
        "checkout_batch_samples": Histogram("checkout_batch_samples", "Samples.", registry=reg,
                                            buckets=(1, 10, 100)),
    }
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=reg)
    rng = np.random.default_rng(3)
    for v in rng.exponential(0.05, 500):
        hs["checkout_seconds"].observe(v)
        hs["checkout_queue_wait_milliseconds"].observe(v * 400)
        hs["checkout_response_size_bytes"].observe(v * 1e5)
        hs["checkout_batch_samples"].observe(v * 100)
    config = (f"global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: shop\n"
              f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n")
    draft = tmp_path / "stream.yaml"
    try:
        with running_prometheus(config=config) as url:
            import requests

            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                r = requests.get(f"{url}/api/v1/query", params={"query": "count_over_time(up[1m])"}, timeout=5).json()
                meta = requests.get(f"{url}/api/v1/metadata", timeout=5).json()["data"]
                if r["data"]["result"] and float(r["data"]["result"][0]["value"][1]) >= 3 and meta:
                    break
                time.sleep(0.5)
            assert main(["discover", "--prometheus", url, "--window", "10m", "--write", str(draft)]) == 0
            text = draft.read_text()
            out = tmp_path / "out"
            code = main(["map", "-c", str(draft), "--window", "10m", "--format", "json", "--out", str(out)])
    finally:
        server.shutdown()
    assert code == 0, text
    doc = yaml.safe_load(text)
    parts = {(s["name"], part): m for s in doc["stages"] for part in ("wait", "process") if (m := s.get(part))}
    names = {m["histogram"] for m in parts.values()}
    assert names == {"checkout_seconds", "checkout_queue_wait_milliseconds"}, text
    assert parts[("shop", "wait")] == {"source": "prom", "histogram": "checkout_queue_wait_milliseconds", "unit": "ms"}
    assert parts[("shop", "process")]["unit"] == "s"
    assert '# guess: wait (name has "queue")' in text and "# guess: process" in text
    assert "checkout_response_size_bytes" in text.split("# left out", 1)[1]
    import json as _json

    report = _json.loads((out / "report.json").read_text())
    shop = next(s for s in report["stages"] if s["name"] == "shop")
    assert shop["wait"]["count"] == 500 and shop["process"]["count"] == 500
