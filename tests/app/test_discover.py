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
    assert [s.name for s in spec.stages] == ["alerting", "notification"]
    assert spec.stage("alerting").process.selector == {"client": "market-data", "server": "alerting"}  # type: ignore[union-attr]


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
    assert [s.name for s in spec.stages] == ["alerting", "notification"]
    assert spec.stage("alerting").process.selector == {"client": "market-data", "server": "alerting"}  # type: ignore[union-attr]
