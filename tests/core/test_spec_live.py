"""Trace-measured stages read from the live series (``latmap serve --stream``)."""

from __future__ import annotations

from mapper.core.names import LIVE_LEAD_TIME, STAGE_PROCESS, STAGE_WAIT
from mapper.core.spec import LIVE_SOURCE, live_lead_time, loads_spec, with_live_series

TRACES_ONLY = """\
name: quotes
sources:
  spans: {kind: traces, path: ./spool}
stages:
  - {name: pricing, traces: {source: spans, service: pricing}}
  - {name: alerting, traces: {source: spans, service: alerting}}
"""


def test_traced_stages_read_the_live_histograms_from_a_new_prometheus_source() -> None:
    spec = with_live_series(loads_spec(TRACES_ONLY, "stream.yaml"))
    assert spec.sources[LIVE_SOURCE].kind == "prometheus" and spec.sources[LIVE_SOURCE].url == ""
    pricing, alerting = spec.stages
    assert pricing.wait is None  # a first stage has no wait
    assert pricing.process is not None and pricing.process.name == STAGE_PROCESS
    assert alerting.wait is not None and alerting.wait.name == STAGE_WAIT
    assert dict(alerting.wait.selector) == {"stream": "quotes", "stage": "alerting"}
    url = spec.with_source_url("prometheus", "http://127.0.0.1:9090")
    assert url.sources[LIVE_SOURCE].url == "http://127.0.0.1:9090"
    lead = live_lead_time(url)
    assert lead is not None and lead.name == LIVE_LEAD_TIME and dict(lead.selector) == {"stream": "quotes"}


def test_a_metric_measurement_is_kept_and_untraced_streams_are_unchanged() -> None:
    text = TRACES_ONLY.replace(
        "sources:\n", "sources:\n  prom: {kind: prometheus, url: 'http://127.0.0.1:9090'}\n").replace(
        "{name: alerting, traces:", "{name: alerting, process: {source: prom, histogram: own_seconds}, traces:")
    spec = with_live_series(loads_spec(text, "stream.yaml"))
    assert LIVE_SOURCE not in spec.sources
    alerting = spec.stage("alerting")
    assert alerting.process is not None and alerting.process.name == "own_seconds"
    assert alerting.wait is not None and alerting.wait.source == "prom"
    plain = loads_spec("name: x\nsources:\n  p: {kind: prometheus, url: 'http://127.0.0.1:9'}\nstages:\n"
                       "  - {name: a, process: {source: p, histogram: h}}\n", "x.yaml")
    assert with_live_series(plain) is plain
    assert live_lead_time(plain) is None
