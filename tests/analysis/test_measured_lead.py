"""The spec's top-level ``end_to_end:``: a measured lead-time histogram replaces the lead time
computed from the stages (tests/app/test_live_stream.py reads one back through Prometheus)."""

from __future__ import annotations

import numpy as np
import pytest

from mapper.analysis.latency import MapInput, analyse
from mapper.analysis.whatif import future_state
from mapper.core.distribution import SampleDistribution
from mapper.core.errors import SpecError
from mapper.core.model import MeasurementResult, Window
from mapper.core.spec import Change, loads_spec
from mapper.render.report import to_json

SPEC = """\
name: quotes
sources:
  prom: {kind: prometheus, url: "http://127.0.0.1:9090"}
stages:
  - {name: a, process: {source: prom, histogram: a_seconds}}
  - {name: b, process: {source: prom, histogram: b_seconds}}
objectives: {end_to_end: {p99: 50ms}}
end_to_end: {source: prom, histogram: latmap_lead_time_seconds, selector: {stream: quotes}}
"""


def _result(values: np.ndarray, name: str) -> MeasurementResult:
    return MeasurementResult(SampleDistribution(values), f"prom: {name}")


def test_the_spec_key_is_a_measurement_with_its_place() -> None:
    spec = loads_spec(SPEC, "s.yaml")
    m = spec.end_to_end
    assert m is not None and (m.kind, m.name, dict(m.selector)) == ("histogram", "latmap_lead_time_seconds",
                                                                    {"stream": "quotes"})
    assert m.place == "s.yaml:8"
    with pytest.raises(SpecError, match=r"s.yaml:8: end_to_end.source: unknown source 'nope'"):
        loads_spec(SPEC.replace("source: prom, histogram: latmap", "source: nope, histogram: latmap"), "s.yaml")
    with pytest.raises(SpecError, match=r"end_to_end.histogram: name the histogram without '_bucket'"):
        loads_spec(SPEC.replace("latmap_lead_time_seconds", "latmap_lead_time_seconds_bucket"), "s.yaml")
    assert loads_spec(SPEC.replace(SPEC.splitlines()[-1], "")).end_to_end is None


def test_the_measured_lead_time_replaces_the_convolution() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.001, 0.002, 5000), rng.uniform(0.001, 0.002, 5000)
    results = {("a", "process"): _result(a, "a"), ("b", "process"): _result(b, "b")}
    spec = loads_spec(SPEC)
    lead = a + b + 0.004  # a gap between the stages the metrics cannot see
    lm = analyse(spec, Window(0, 3600), MapInput(results, measured_lead=_result(lead, "latmap_lead_time_seconds")))
    assert lm.end_to_end_method == "measured" and lm.end_to_end.count == 5000  # type: ignore[union-attr]
    doc = to_json(lm)
    assert doc["end_to_end"]["source"].startswith("measured: prom: latmap_lead_time_seconds")
    assert doc["end_to_end"]["p50"]["value"] == pytest.approx(np.quantile(lead, 0.5), rel=0.01)
    # the stages do not explain the lead time: said, not hidden
    assert [c for c in lm.checks if c.code == "lead-time-disagrees"]
    plain = analyse(spec, Window(0, 3600), MapInput(results))
    assert plain.end_to_end_method == "convolution"


def test_a_measured_lead_time_without_data_falls_back_and_says_so() -> None:
    rng = np.random.default_rng(2)
    results = {("a", "process"): _result(rng.uniform(0.001, 0.002, 500), "a"),
               ("b", "process"): _result(rng.uniform(0.001, 0.002, 500), "b")}
    empty = MeasurementResult(None, "prom: latmap_lead_time_seconds")
    lm = analyse(loads_spec(SPEC), Window(0, 3600), MapInput(results, measured_lead=empty))
    assert lm.end_to_end_method == "convolution"
    assert any(c.code == "no-end-to-end" and "has no data" in c.message for c in lm.checks)


def test_a_what_if_compares_the_stages_with_the_stages_not_with_the_measured_lead() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.001, 0.002, 4000), rng.uniform(0.001, 0.002, 4000)
    results = {("a", "process"): _result(a, "a"), ("b", "process"): _result(b, "b")}
    lm = analyse(loads_spec(SPEC), Window(0, 3600),
                 MapInput(results, measured_lead=_result(a + b + 0.004, "latmap_lead_time_seconds")))
    fs = future_state(lm, [Change("a", "scale", 1.0)])  # no change at all
    now, later = fs.current.quantile(0.5).value, fs.future.quantile(0.5).value
    assert now == pytest.approx(later, rel=0.02)  # not the 4ms gap read as an effect
