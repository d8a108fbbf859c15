"""A stage's flow keys (issue 27): errors, retries, inventory and workers, what they load
into, and the file:line message for each mistake."""

from __future__ import annotations

import pytest

from mapper.core.errors import SpecError
from mapper.core.spec import loads_spec
from mapper.core.spec.flow import FlowMetric

GOOD = """\
name: flow
sources:
  prom: {kind: prometheus, url: http://127.0.0.1:9090}
  dd: {kind: datadog, site: US1}
stages:
  - name: alerting
    process: {source: prom, histogram: alert_seconds, selector: {service: alerting}, unit: ms}
    errors: {source: prom, counter: alerts_failed_total, selector: {service: alerting}}
    retries: {source: prom, selector: 'outcome="retry"'}
    workers: 4
  - name: notify
    process: {source: prom, histogram: notify_seconds}
    inventory: {source: prom, gauge: kafka_consumergroup_lag, selector: 'consumergroup="notify", topic=~"a|b"'}
"""


def test_flow_keys_load_into_flow_metrics() -> None:
    spec = loads_spec(GOOD, "stream.yaml")
    alerting, notify = spec.stages
    assert alerting.workers == 4 and notify.workers is None
    assert alerting.errors == FlowMetric("prom", "counter", "alerts_failed_total", "stream.yaml:8",
                                         {"service": "alerting"})
    # a selector without a counter narrows the stage's process histogram (its selector and unit kept)
    assert alerting.retries == FlowMetric("prom", "histogram", "alert_seconds", "stream.yaml:9",
                                          {"service": "alerting"}, 'outcome="retry"', 0.001)
    assert alerting.retries.describe() == 'alert_seconds_count{service="alerting",outcome="retry"}'
    assert notify.inventory is not None and notify.inventory.kind == "gauge"
    assert notify.inventory.matchers == 'consumergroup="notify", topic=~"a|b"'


def _error(text: str) -> str:
    with pytest.raises(SpecError) as err:
        loads_spec(text, "stream.yaml")
    return str(err.value)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("workers: 4", "workers: 0", "stream.yaml:10: stages[alerting].workers: must be a whole number from 1"),
    ("workers: 4", "workers: 2.5", "must be a whole number"),
    ("counter: alerts_failed_total", "counter: alerts-failed", "not a Prometheus metric name: 'alerts-failed'"),
    ("selector: 'outcome=\"retry\"'", "selector: 'outcome=\"retry\"} or vector(1)'", "not PromQL label matchers"),
    ("selector: 'outcome=\"retry\"'", "selector: 'le=\"0.1\"'", "latmap reads the `le` label itself"),
    ("selector: 'outcome=\"retry\"'", "counter: x_total, gauge: y", "unknown key"),
    ("retries: {source: prom, selector: 'outcome=\"retry\"'}", "retries: {source: prom}", "name a `counter`"),
    ("process: {source: prom, histogram: notify_seconds}\n", "process: {source: prom, summary: notify_seconds}\n"
     "    errors: {source: prom, selector: {outcome: error}}\n", "narrows the stage's process histogram"),
    ("errors: {source: prom, counter", "errors: {source: dd, counter", "flow metrics are read from a `prometheus`"),
    ("errors: {source: prom, counter", "errors: {source: nowhere, counter", "unknown source 'nowhere'"),
    ("gauge: kafka_consumergroup_lag, ", "", "stages[notify].inventory.gauge: is required"),
    ("inventory: {source: prom, gauge: kafka_consumergroup_lag, selector: 'consumergroup=\"notify\", topic=~\"a|b\"'}",
     "inventory: 12", "must be a mapping like {source: prom, gauge"),
    ("retries: {source: prom, selector: 'outcome=\"retry\"'}",
     "retries: {source: prom, selector: {service: other}}", "service already set by the process selector"),
])
def test_each_flow_mistake_gets_its_message(old: str, new: str, message: str) -> None:
    assert old in GOOD
    assert message in _error(GOOD.replace(old, new, 1))
