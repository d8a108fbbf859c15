"""Every recorded Prometheus API answer in tests/fixtures decodes with the collector's decoder.

Fixtures: tests/fixtures/prometheus (Apache-2.0, prometheus/prometheus and jaegertracing/jaeger;
see tests/fixtures/PROVENANCE.md).
"""

from __future__ import annotations

import json
import math

import pytest

from collectors.promjson import decode_list, decode_metadata, decode_query
from mapper.core.errors import SourceError
from tests.servers import FIXTURES

PROM = FIXTURES / "prometheus"


def _load(rel: str) -> object:
    return json.loads((PROM / rel).read_text())


def test_every_query_fixture_decodes() -> None:
    names = sorted(p.relative_to(PROM).as_posix() for p in PROM.rglob("*.json"))
    decoded = 0
    for rel in names:
        body = _load(rel)
        if "error" in rel:
            with pytest.raises(SourceError, match="TSDB not ready"):
                decode_query(body, rel)
        elif "metadata" in rel:
            assert decode_metadata(body, rel)
        elif any(k in rel for k in ("series", "labels", "label_values")):
            assert isinstance(decode_list(body, rel), list)
        elif ("query" in rel and "exemplars" not in rel) or "json_codec" in rel or "empty_matrix" in rel:
            decode_query(body, rel)
        else:
            continue  # targets, rules, alerts, exemplars, buildinfo: not read by latmap
        decoded += 1
    assert decoded >= 17


def test_vector_values() -> None:
    r = decode_query(_load("api_docs/api_v1_query.vector.200.json"), "x")
    assert r.result_type == "vector"
    assert [(s.labels["instance"], s.value) for s in r.samples] == [("localhost:9090", 1.0), ("localhost:9100", 0.0)]


def test_native_histogram_vector_becomes_a_distribution() -> None:
    r = decode_query(_load("api_openapi_golden/api_v1_query.native_histogram_vector.200.json"), "x")
    h = r.samples[0].histogram
    assert h is not None
    d = h.distribution()
    assert d.count == pytest.approx(sum(b[3] for b in h.buckets))
    e = d.quantile(0.5)
    assert e.low is not None and e.high is not None and e.low <= (e.value or e.low) <= e.high


def test_native_histogram_with_negative_zero_and_positive_buckets() -> None:
    r = decode_query(_load("codec_test/json_codec.native_histogram_matrix_neg_zero_pos_buckets.json"), "x")
    (series,) = r.series
    (_, h), = series.histograms
    rules = sorted({b[0] for b in h.buckets})
    assert rules == [0, 1, 3]
    d = h.distribution(negative="allow")
    assert d.count == pytest.approx(sum(b[3] for b in h.buckets))
    assert math.isfinite(d.quantile_values([0.5])[0])
    with pytest.raises(SourceError, match=r"^x: data.result\[0\].histograms \(series \{'__name__': 'foo'\}\): "
                       r"negative-observations: 3 of 10 "):
        h.distribution()  # a latency cannot be negative: refused by default


def test_native_histogram_matrix() -> None:
    r = decode_query(_load("api_openapi_golden/api_v1_query_range.native_histograms_matrix.200.json"), "x")
    assert r.result_type == "matrix" and r.series[0].histograms


def test_scalar_and_empty_matrix() -> None:
    assert decode_query(_load("api_openapi_golden/api_v1_query.scalar.200.json"), "x").scalar == 42.0
    assert decode_query(_load("jaeger.empty_matrix_response.json"), "x").series == ()


@pytest.mark.parametrize(("body", "message"), [
    ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "x"]}]}},
     "url: data.result[0].value: expected a number, got 'x'"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}},
     "url: data.result[0]: sample has neither value nor histogram"),
    ({"status": "success", "data": {"resultType": "weird", "result": []}}, "url: data.resultType: unknown 'weird'"),
    ({"status": "success"}, "url: answer has no 'data' field"),
    ([1, 2], "url: not a Prometheus API answer (no 'status' field)"),
])
def test_malformed_answers_name_the_field(body: object, message: str) -> None:
    with pytest.raises(SourceError) as err:
        decode_query(body, "url")
    assert str(err.value) == message


def test_a_native_bucket_with_a_nan_bound_names_the_bucket() -> None:
    """A bound of "NaN" passed ``hi < lo`` (every comparison with NaN is false) and reached
    the percentiles as a NaN interval; it is refused with the bucket's place."""
    from collectors.promjson import parse_native

    for bucket in ([1, "NaN", "0.5", "3"], [1, "0.25", "NaN", "3"]):
        with pytest.raises(SourceError, match=r"h\.buckets\[0\].*invalid bucket"):
            parse_native({"count": "3", "sum": "1", "buckets": [bucket]}, "h")
