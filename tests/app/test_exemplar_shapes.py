"""Exemplars in the shapes Prometheus answers with (``/api/v1/query_exemplars``) turned into
examples: 64-bit (16 hex) and upper-case trace ids among extra labels, a coarse first bucket,
and a percentile in the +Inf bucket (its examples are observations beyond the last bound; the
percentile itself claims no value)."""

from __future__ import annotations

import pytest

from collectors.promexemplars import parse_exemplars
from mapper.analysis.examples import END_TO_END, from_exemplars
from mapper.analysis.latency import example_thresholds
from mapper.core.distribution import HistogramDistribution
from mapper.core.model import Window
from mapper.core.spec import Measurement

M = Measurement("prom", "histogram", "checkout_duration_seconds", "stream.yaml:7")
T = 1_790_000_000.0


def _series(le: str, *exemplars: tuple[dict, str, float]) -> dict:
    return {"seriesLabels": {"__name__": "checkout_duration_seconds_bucket", "le": le, "job": "checkout",
                             "instance": "10.0.0.7:9464", "service_name": "checkout"},
            "exemplars": [{"labels": lab, "value": v, "timestamp": ts} for lab, v, ts in exemplars]}


SERIES = [
    # a coarse first bucket: everything up to half a second
    _series("0.5", ({"trace_id": "00F067AA0BA902B7", "span_id": "53995c3f42cd8ad8"}, "0.21", T + 1),
            ({"traceID": "4BF92F3577B34DA6A3CE929D0E0E4736", "span_id": "00f067aa0ba902b7",
              "service.name": "checkout"}, "0.4", T + 2)),
    _series("1", ({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4737", "http_route": "/cart"}, "0.93", T + 3)),
    _series("+Inf", ({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4738"}, "7.5", T + 4),
            ({"trace_id": "12345678901234567890"}, "9", T + 5),  # a decimal 64-bit id (Datadog style)
            ({"span_id": "53995c3f42cd8ad8"}, "8", T + 6),
            # a label value may hold a newline: '$' would match before it, and the id would
            # carry it into report.md's lines
            ({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4739\n"}, "8", T + 7)),
]


def test_prometheus_shaped_exemplars_are_read_with_normalised_trace_ids() -> None:
    got, checks = parse_exemplars(SERIES, M, Window(T, T + 60), ("trace_id", "traceID"), "checkout")
    assert [e.trace_id for e in got] == [
        "000000000000000000f067aa0ba902b7",  # a 64-bit id is the W3C id with 16 leading zeros
        "4bf92f3577b34da6a3ce929d0e0e4736", "4bf92f3577b34da6a3ce929d0e0e4737", "4bf92f3577b34da6a3ce929d0e0e4738"]
    assert [e.bucket for e in got] == [0.5, 0.5, 1.0, None]  # +Inf: no finite bound claimed
    assert [e.value for e in got] == [0.21, 0.4, 0.93, 7.5]
    assert {c.code for c in checks} == {"exemplar-malformed-trace-id", "exemplar-no-trace-id"}


def test_a_percentile_in_the_inf_bucket_has_examples_beyond_the_last_bound_and_no_value() -> None:
    # 1,000 observations: 900 under 0.5 s, 80 under 1 s, 20 above (the p99 is in +Inf)
    d = HistogramDistribution.from_cumulative([0.5, 1.0, float("inf")], [900, 980, 1000])
    p99 = d.quantile(0.99)
    assert p99.value is None and p99.high is None and p99.low == 1.0
    th = example_thresholds([0.5, 0.99], [], d)
    got, _ = parse_exemplars(SERIES, M, Window(T, T + 60), ("trace_id", "traceID"), "checkout")
    ex = from_exemplars([(e.trace_id, e.value, e.timestamp) for e in got], th, 3)
    tail = ex[(END_TO_END, "lead", 0.99)]
    assert [e.trace_ids for e in tail] == [("4bf92f3577b34da6a3ce929d0e0e4738",)]
    assert tail[0].value == pytest.approx(7.5) and tail[0].source == "exemplar"
    # the p50 of a coarse first bucket: its interval starts at 0, so every exemplar qualifies
    assert d.quantile(0.5).low == 0.0
    assert len(ex[(END_TO_END, "lead", 0.5)]) == 3


def test_a_percentile_the_data_cannot_support_has_no_examples() -> None:
    # 100 observations cannot give a p99.99 (10,000 needed): its "low" is only the top bucket's
    d = HistogramDistribution.from_cumulative([0.5, 1.0, float("inf")], [50, 99, 100])
    assert d.quantile(0.9999).value is None and "too few" in (d.quantile(0.9999).note or "")
    th = example_thresholds([0.99, 0.9999], [], d)
    assert (END_TO_END, "lead", 0.9999) not in th and (END_TO_END, "lead", 0.99) in th
