"""Issue 27's Done-when through the product: ``latmap map`` (the CLI's ``main``) on

* the branching traced chain (tests/analysis/flow_chain.py) written as a real OTLP/protobuf
  file: report.json's ``stages[].flow`` gives items in (exact), yield, first-pass yield,
  inventory mean and peak and utilisation within 2% of the generator's truth, schema-valid;
  ``--flow`` prints the block; headless Chromium shows the report.html's inventory triangles
  and data boxes;
* the Prometheus-measured stream of tests/flow_data.py (a queue-depth gauge, an error counter)
  in the session's real Prometheus: the same report.json fields from metrics.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mapper.cli import main
from tests import flow_data
from tests.analysis.flow_chain import W0, WINDOW, chain, true_peak
from tests.conftest import REPORT_SCHEMA
from tests.flow_otlp import write_otlp
from tests.render.test_flow_render import _Dom
from tests.servers import require_binary

TRACED = """\
name: ticks
sources:
  spans: {{kind: traces, path: "{path}"}}
stages:
  - {{name: market-data, owner: md, traces: {{source: spans, service: market-data}}}}
  - {{name: alerting, owner: al, traces: {{source: spans, service: alerting}}}}
  - {{name: notification, owner: nt, traces: {{source: spans, service: notification}}}}
"""

METERED = """\
name: flowprom
sources:
  prom: {{kind: prometheus, url: "{url}", retries: 0}}
stages:
  - name: alerting
    process: {{source: prom, histogram: fp_process_seconds, selector: {{stage: alerting}}}}
    errors: {{source: prom, counter: fp_alert_errors_total, selector: {{stage: alerting}}}}
    workers: 2
  - name: notify
    upstream: alerting
    wait: {{source: prom, histogram: fp_wait_seconds, selector: {{stage: notify}}}}
    process: {{source: prom, histogram: fp_process_seconds, selector: {{stage: notify}}}}
    errors: {{source: prom, selector: 'outcome="error"'}}
    inventory: {{source: prom, gauge: fp_queue_depth, selector: {{queue: notify}}}}
    workers: 1
"""


def _near(value: float | None, truth: float, rel: float = 0.02) -> bool:
    return value is not None and abs(value - truth) <= rel * abs(truth)


def _map(tmp: Path, spec: str, until: float, window: str) -> tuple[dict[str, Any], str, int]:
    path = tmp / "stream.yaml"
    path.write_text(spec, encoding="utf-8")
    out = tmp / "out"
    code = main(["map", "-c", str(path), "--until", f"{until:.0f}", "--window", window, "--out", str(out),
                 "--no-progress", "--flow"])
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [f"{e.json_path}: {e.message}" for e in REPORT_SCHEMA.iter_errors(doc)] == []
    return doc, (out / "report.html").read_text(encoding="utf-8"), code


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, str, Any]:
    tmp = tmp_path_factory.mktemp("flow-e2e")
    batch, truth = chain(n=3000, seed=13)
    spans = write_otlp(batch, tmp / "spans.binpb")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        doc, html, _ = _map(tmp, TRACED.format(path=spans), W0 + WINDOW, "1h")
    return doc, html, printed.getvalue(), truth


def _flows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s["flow"] for s in doc["stages"]}


def test_latmap_map_on_otlp_files_gives_the_chains_flow_in_report_json(traced) -> None:  # type: ignore[no-untyped-def]
    doc, _, _, truth = traced
    f = _flows(doc)
    md, al, nt = f["market-data"], f["alerting"], f["notification"]
    assert {x["source"] for x in f.values()} == {"traces"}
    assert (md["items_in"], al["items_in"], nt["items_in"]) == (truth.ticks, truth.ticks, truth.alerts)  # exact
    assert doc["flow"] == {"items_completed": truth.alerts}
    assert md["yield"] == 1.0 and al["yield"] == pytest.approx(truth.alerts / truth.ticks)
    share = pytest.approx(truth.alerts / truth.ticks)
    assert al["next"] == [{"stage": "notification", "items": truth.alerts, "share": share}]
    assert al["stopped"] == truth.ticks - truth.alerts and nt["yield"] is None
    assert (al["failed"], al["retried"]) == (truth.failed, truth.failed)  # status ERROR + exception event; redelivery
    assert al["first_pass_yield"] == pytest.approx(1 - truth.failed / truth.ticks)
    assert md["first_pass_yield"] == 1.0 and nt["first_pass_yield"] == 1.0
    inv = nt["inventory"]
    mean = truth.notify_waits.sum() / WINDOW
    assert _near(inv["mean"], mean) and _near(inv["little"], mean)
    assert inv["peak"] == true_peak(truth.notify_arrive, truth.notify_arrive + truth.notify_waits)
    assert _near(al["inventory"]["mean"], truth.alert_wait_s / WINDOW)
    assert md["inventory"] is None
    assert (nt["workers"], nt["workers_source"]) == (1, "service.instance.id")  # from the OTLP resources
    assert _near(nt["utilisation"], truth.notify_busy_s / WINDOW)
    assert _near(nt["capacity_per_s"], truth.alerts / truth.notify_busy_s)
    assert al["workers"] == 2
    codes = {(c["code"], c.get("stage")) for c in doc["checks"]}
    assert ("rework", "alerting") in codes
    assert not {c for c, _ in codes} & {"little-disagrees", "workers-unknown", "incomplete-traces"}


def test_flow_prints_the_flow_block(traced) -> None:  # type: ignore[no-untyped-def]
    doc, _, printed, truth = traced
    block = printed[printed.index("\nflow:\n"):]
    al = _flows(doc)["alerting"]
    assert re.search(rf"alerting\s+{truth.ticks:,}\s+{truth.alerts:,}\s+{100 * al['yield']:.1f}%\s+"
                     rf"{100 * al['first_pass_yield']:.1f}%", block)
    assert f"items completed (reached the stream's end; the lead time is over them): {truth.alerts:,}" in block
    assert f"rework: alerting %C&A {100 * al['first_pass_yield']:.1f}% (failed {truth.failed}" in block


def test_chromium_shows_the_real_reports_inventory_triangles_and_data_boxes(traced, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    chromium = require_binary("chromium")
    doc, html, _, truth = traced
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    dom = subprocess.run([chromium, *flags, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                         check=True, capture_output=True, text=True, timeout=90).stdout
    seen = _Dom()
    seen.feed(dom)
    f = seen.fields
    nt = _flows(doc)["notification"]
    assert f["vsm-inventory", "notification", "inventory-peak"] == f"peak {nt['inventory']['peak']:.0f}"
    assert f["vsm-inventory", "notification", "inventory-mean"].startswith("mean ")
    assert ("vsm-inventory", "market-data", "inventory-mean") not in f  # nothing waits before a first stage
    al = _flows(doc)["alerting"]
    assert f["vsm-databox", "alerting", "ca"] == f"%C&A {100 * al['first_pass_yield']:.1f}%"
    assert f["vsm-databox", "alerting", "yield"] == f"yield {100 * al['yield']:.1f}%"
    assert f["vsm-databox", "notification", "workers"] == "workers 1 (service.instance.id)"
    assert f["vsm-databox", "notification", "utilisation"].startswith(f"utilisation {100 * nt['utilisation']:.1f}%")
    assert seen.rows["alerting"][:3] == ["alerting", f"{truth.ticks:,}", f"{truth.alerts:,}"]


@pytest.mark.prometheus
def test_latmap_map_on_prometheus_gives_the_same_fields_from_metrics(prom_url: str, tmp_path: Path) -> None:
    doc, _, _ = _map(tmp_path, METERED.format(url=prom_url), flow_data.END, "2h")
    t = flow_data.truth()
    f = _flows(doc)
    al, nt = f["alerting"], f["notify"]
    assert {x["source"] for x in f.values()} == {"prometheus"}
    assert (al["items_in"], nt["items_in"]) == (t["alerting_in"], t["notify_in"])  # exact increases
    share = pytest.approx(t["notify_in"] / t["alerting_in"])
    assert al["next"] == [{"stage": "notify", "items": t["notify_in"], "share": share}]
    assert _near(al["yield"], t["notify_in"] / t["alerting_in"]) and al["stopped"] == t["alerting_in"] - t["notify_in"]
    assert al["failed"] == t["alerting_errors"] and nt["failed"] == t["notify_errors"]
    assert _near(al["first_pass_yield"], 1 - t["alerting_errors"] / t["alerting_in"])
    assert _near(nt["first_pass_yield"], 1 - t["notify_errors"] / t["notify_in"])
    inv = nt["inventory"]
    assert _near(inv["mean"], t["queue_mean"]) and inv["peak"] == t["queue_peak"] and _near(inv["little"], t["little"])
    assert "fp_queue_depth" in inv["provenance"] and inv["source"] == "prometheus"
    assert (al["workers"], al["workers_source"]) == (2, "spec")
    assert _near(al["utilisation"], t["alerting_busy"] / (flow_data.WINDOW * 2))
    assert _near(nt["utilisation"], t["notify_busy"] / flow_data.WINDOW)
    assert doc["flow"] == {"items_completed": t["notify_in"]}
