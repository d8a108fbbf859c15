"""Issue 27 from metrics: a branching stream measured by a real Prometheus (tests/flow_data.py,
backfilled with the session's data) gives items in and out, yield, first-pass yield,
inventory and utilisation within 2% of the truth written; bad input gives a check and no
number."""

from __future__ import annotations

import pytest

from mapper.analysis.flow_model import StageFlow
from mapper.app.pipeline import build_map
from mapper.core.model import Window
from mapper.core.spec import loads_spec
from tests import flow_data

pytestmark = pytest.mark.prometheus

WINDOW = Window(flow_data.START, flow_data.END)

STREAM = """
name: flowprom
sources:
  prom: {{kind: prometheus, url: "{url}", retries: 0}}
stages:
  - name: ingest
    process: {{source: prom, histogram: fp_process_seconds, selector: {{stage: ingest}}}}
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
  - name: sms
    upstream: alerting
    process: {{source: prom, histogram: fp_process_seconds, selector: {{stage: sms}}}}
"""


def _map(url: str, text: str, extra: str = "") -> tuple[dict[str, StageFlow], dict[str, list[str]]]:
    lm = build_map(loads_spec(text.format(url=url) + extra), WINDOW)
    assert lm.flow is not None
    codes: dict[str, list[str]] = {}
    for c in lm.checks:
        codes.setdefault(c.code, []).append(f"{c.stage}: {c.message}")
    return {f.stage: f for f in lm.flow.stages}, codes


def _near(value: float | None, truth: float) -> bool:
    return value is not None and abs(value - truth) <= 0.02 * abs(truth)


@pytest.fixture(scope="module")
def stream(prom_url: str) -> tuple[dict[str, StageFlow], dict[str, list[str]]]:
    return _map(prom_url, STREAM)


def test_a_metered_stream_gives_items_yield_rework_inventory_and_utilisation(
        stream: tuple[dict[str, StageFlow], dict[str, list[str]]]) -> None:
    flows, codes = stream
    t = flow_data.truth()
    ingest, alerting, notify, sms = (flows[n] for n in ("ingest", "alerting", "notify", "sms"))
    assert {f.source for f in flows.values()} == {"prometheus"}
    assert ingest.items_in == t["ingest_in"] and alerting.items_in == t["alerting_in"]  # exact
    assert notify.items_in == t["notify_in"] and sms.items_in == t["sms_in"]
    # ingest hands everything on; alerting branches to notify and sms, the rest stop there.
    assert ingest.yield_ == 1.0 and ingest.stopped == 0
    assert [(h.to, h.items) for h in alerting.handovers] == [("notify", t["notify_in"]), ("sms", t["sms_in"])]
    assert _near(alerting.yield_, (t["notify_in"] + t["sms_in"]) / t["alerting_in"])
    assert alerting.stopped == t["alerting_in"] - t["notify_in"] - t["sms_in"]
    assert notify.yield_ is None and notify.items_out is None  # a last stage hands nothing on
    assert _near(alerting.throughput_in_per_s, t["alerting_in"] / flow_data.WINDOW)
    # first-pass yield from an error counter, and from the process histogram's outcome label
    assert alerting.rework is not None and alerting.rework.failed == t["alerting_errors"]
    assert _near(alerting.rework.first_pass_yield, 1 - t["alerting_errors"] / t["alerting_in"])
    assert notify.rework is not None and notify.rework.failed == t["notify_errors"]
    assert _near(notify.rework.first_pass_yield, 1 - t["notify_errors"] / t["notify_in"])
    assert _near(notify.rework.seconds, t["notify_errors"] * flow_data.PROCESS["notify"])
    assert {"notify", "alerting"} <= {m.split(":")[0] for m in codes["rework"]}  # 96.7%, 97.2% < 99%
    # the queue-depth gauge, summed over partitions: time-average, peak, hour of day, Little
    inv = notify.inventory
    assert inv is not None and _near(inv.mean, t["queue_mean"]) and inv.peak == t["queue_peak"]
    assert _near(inv.little, t["little"]) and "little-disagrees" not in codes
    assert len(inv.hourly) == 24 and sum(h is not None for h in inv.hourly) == 2
    assert inv.provenance is not None and "fp_queue_depth" in inv.provenance
    # utilisation from the process sums and the spec's workers
    u = alerting.utilisation
    assert u is not None and u.workers == 2 and u.workers_source == "spec"
    assert _near(u.value, t["alerting_busy"] / (flow_data.WINDOW * 2))
    assert _near(u.capacity_per_s, 2 / flow_data.PROCESS["alerting"])
    assert notify.utilisation is not None
    assert _near(notify.utilisation.value, t["notify_busy"] / flow_data.WINDOW)


def test_workers_unknown_gives_a_check_and_no_utilisation(
        stream: tuple[dict[str, StageFlow], dict[str, list[str]]]) -> None:
    flows, codes = stream
    u = flows["ingest"].utilisation
    assert u is not None and u.value is None and u.capacity_per_s is None and u.workers is None
    assert u.busy_seconds == pytest.approx(flow_data.truth()["ingest_in"] * flow_data.PROCESS["ingest"])
    assert any(m.startswith("ingest:") for m in codes["workers-unknown"])
    assert not any(m.startswith("alerting:") for m in codes["workers-unknown"])


def _one_stage(url: str, extra: str) -> tuple[StageFlow, dict[str, list[str]]]:
    text = """
name: bad
sources:
  prom: {{kind: prometheus, url: "{url}", retries: 0}}
stages:
  - name: alerting
    process: {{source: prom, histogram: fp_process_seconds, selector: {{stage: alerting}}}}
    workers: 2
"""
    flows, codes = _map(url, text, extra)
    return flows["alerting"], codes


def test_a_missing_gauge_gives_a_check_and_no_inventory(prom_url: str) -> None:
    f, codes = _one_stage(prom_url, "    inventory: {source: prom, gauge: fp_no_such_gauge}\n")
    assert f.inventory is not None and f.inventory.mean is None and f.inventory.peak is None
    assert "fp_no_such_gauge" in codes["inventory-missing"][0]


def test_a_negative_gauge_gives_a_check_and_no_inventory(prom_url: str) -> None:
    lag = "    inventory: {source: prom, gauge: fp_negative_lag, selector: 'group=~\"al.*\"'}\n"
    f, codes = _one_stage(prom_url, lag)
    assert f.inventory is not None and f.inventory.mean is None and f.inventory.peak is None
    assert "-3" in codes["inventory-negative"][0]


def test_a_counter_reset_mid_window_is_counted_through_the_restart(prom_url: str) -> None:
    f, codes = _one_stage(prom_url, "    errors: {source: prom, counter: fp_reset_errors_total}\n")
    assert f.rework is not None and f.rework.failed == flow_data.truth()["reset_increase"]
    assert "counter-reset" in codes


def test_a_counter_born_mid_window_counts_from_zero(prom_url: str) -> None:
    f, codes = _one_stage(prom_url, "    retries: {source: prom, counter: fp_born_errors_total}\n")
    assert f.rework is not None and f.rework.retried == flow_data.truth()["born_increase"]
    assert f.rework.failed is None and "series-born" in codes


def test_a_missing_error_counter_gives_a_check_and_no_first_pass_yield(prom_url: str) -> None:
    f, codes = _one_stage(prom_url, "    errors: {source: prom, counter: fp_no_such_total}\n")
    assert f.rework is not None and f.rework.first_pass_yield is None and f.rework.failed is None
    assert "errors-no-series" in codes
