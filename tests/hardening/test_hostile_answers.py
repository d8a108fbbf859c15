"""Issue 25: hostile or broken Prometheus answers become a check or a one-line SourceError,
never a traceback and never a percentile that looks healthy.

Driven through the real collectors against a loopback Prometheus (tests/hardening/fakeprom.py)
answering the bodies a real one cannot be made to store: the whole class of bad classic
buckets (collectors/classic.py's table), bad summary quantiles, negative native histograms,
and a scrape page with the same faults.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from collectors.prometheus import PrometheusCollector
from collectors.scrape import ScrapeCollector
from mapper.core.errors import SourceError
from mapper.core.model import MeasurementResult, Window
from mapper.core.spec import Measurement, SourceSpec
from tests.hardening.fakeprom import FakeProm, fake_prometheus, vector
from tests.servers import loopback_server, reply

WINDOW = Window(0.0, 1000.0)


def _collect(fake: FakeProm, kind: str = "histogram") -> MeasurementResult:
    with fake_prometheus(fake) as url:
        c = PrometheusCollector(SourceSpec("prom", "prometheus", url, "s.yaml:2"), backoff=0.01)
        return c.collect(Measurement("prom", kind, "x", "s.yaml:3"), WINDOW)


def _buckets(*pairs: tuple[str, Any]) -> list[tuple[dict[str, str], Any]]:
    return [({"le": le}, v) for le, v in pairs]


def _codes(r: MeasurementResult) -> list[str]:
    return [c.code for c in r.checks]


GOOD = (("0.1", 5), ("1", 9), ("+Inf", 10))


# (case, buckets, the error check that refuses them)
REFUSED = [
    ("le=-Inf with observations", _buckets(("-Inf", 2), *GOOD), "negative-observations"),
    ("a negative bound with observations", _buckets(("-0.5", 3), *GOOD), "negative-observations"),
    ("a negative increase", _buckets(("0.1", -5), ("1", 9), ("+Inf", 10)), "negative-bucket-count"),
    ("a negative +Inf bucket", _buckets(("0.1", 5), ("1", 9), ("+Inf", -10)), "negative-bucket-count"),
    ("1e308 everywhere", _buckets(("0.1", 1e308), ("1", 1e308), ("+Inf", 1e308)), "count-overflow"),
    ("1e308 twice overflows the sum", [({"le": "+Inf", "i": "a"}, 1e308), ({"le": "+Inf", "i": "b"}, 1e308)],
     "count-overflow"),
    ("counts beyond 2**53", _buckets(("0.1", 2.0 ** 60), ("+Inf", 2.0 ** 60)), "count-overflow"),
    ("a NaN count", _buckets(("0.1", "NaN"), ("1", 9), ("+Inf", 10)), "invalid-bucket-count"),
    ("a NaN +Inf bucket", _buckets(("0.1", 5), ("1", 9), ("+Inf", "NaN")), "invalid-bucket-count"),
    ("an infinite count", _buckets(("0.1", "+Inf"), ("1", 9), ("+Inf", 10)), "invalid-bucket-count"),
    ("le=+Inf missing", _buckets(("0.1", 5), ("1", 9)), "missing-inf-bucket"),
    ("le=1e400 read as a second +Inf", _buckets(*GOOD, ("1e400", 10)), "invalid-le"),
    ("le=1e400 instead of +Inf", _buckets(("0.1", 5), ("1", 9), ("1e400", 10)), "invalid-le"),
    ("le not a number", _buckets(("abc", 5), ("+Inf", 10)), "invalid-le"),
    ("le=NaN", _buckets(("NaN", 5), ("+Inf", 10)), "invalid-le"),
    ("a _bucket without le", [({}, 5), ({"le": "+Inf"}, 10)], "missing-le"),
]


@pytest.mark.parametrize(("buckets", "code"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_bad_classic_buckets_are_refused_with_a_check_and_no_percentile(buckets: list[Any], code: str) -> None:
    r = _collect(FakeProm(buckets, count=10, total=2))
    assert r.distribution is None
    assert code in _codes(r)
    (check,) = [c for c in r.checks if c.code == code]
    assert check.level == "error" and check.message.startswith("x (s.yaml:3): ")
    assert "\n" not in check.message and "no percentile is made from it" in check.message


def test_the_refusal_names_the_series() -> None:
    r = _collect(FakeProm([({"le": "1e400", "pod": "a"}, 10), ({"le": "+Inf", "pod": "a"}, 10)], count=10))
    (check,) = [c for c in r.checks if c.code == "invalid-le"]
    assert check.message == ("x (s.yaml:3): _bucket series {pod=\"a\"} has le='1e400', not a bucket bound; "
                             "no percentile is made from it")


def test_negative_bounds_that_hold_nothing_are_dropped_and_the_first_bucket_starts_at_zero() -> None:
    r = _collect(FakeProm(_buckets(("-Inf", 0), ("-1", 0), *GOOD), count=10, total=2))
    d = r.distribution
    assert d is not None and d.count == 10 and _codes(r) == []
    e = d.quantile(0.5)
    assert (e.low, e.value, e.high) == (0.0, 0.1, 1.0)  # as without the empty negative buckets


def test_a_zero_bound_is_a_bucket_of_zero_latencies_not_one_reaching_minus_infinity() -> None:
    r = _collect(FakeProm(_buckets(("0", 500), ("0.1", 900), ("+Inf", 1000)), count=1000, total=2))
    d = r.distribution
    assert d is not None and float(d.lower[0]) == 0.0
    e = d.quantile(0.3)
    assert (e.low, e.value, e.high) == (0.0, 0.0, 0.0)


def test_series_differing_only_in_the_spelling_of_le_are_added() -> None:
    # Prometheus 3 re-spells le="1" as le="1.0": the old and the new series share the window.
    b = [({"le": "1"}, 4), ({"le": "1.0"}, 5), ({"le": "+Inf"}, 9)]
    r = _collect(FakeProm(b, count=9, total=2))
    assert r.distribution is not None and r.distribution.count == 9
    assert r.distribution.quantile(0.5).high == 1.0


@pytest.mark.parametrize(("buckets", "count", "code", "n"), [
    (_buckets(("0.1", 9), ("1", 2), ("+Inf", 10)), 10, "non-monotonic-buckets", 10),
    (_buckets(*GOOD), 3, "count-mismatch", 10),  # _count below the +Inf bucket
    (_buckets(*GOOD), 30, "count-mismatch", 10),
], ids=["non-monotonic", "count below +Inf", "count above +Inf"])
def test_inconsistent_buckets_keep_a_number_with_the_caveat(buckets: list[Any], count: float, code: str,
                                                           n: float) -> None:
    r = _collect(FakeProm(buckets, count=count, total=2))
    assert r.distribution is not None and r.distribution.count == n
    assert code in _codes(r)


# --------------------------------------------------------------------------- summaries


@pytest.mark.parametrize("quantile", ["2", "-0.1", "NaN", "+Inf"])
def test_a_summary_quantile_outside_0_1_is_left_out_with_a_check(quantile: str) -> None:
    fake = FakeProm(quantiles=[({"quantile": quantile}, 0.3), ({"quantile": "0.5"}, 0.2)], count=10, total=2)
    r = _collect(fake, kind="summary")
    assert r.distribution is not None
    assert r.distribution.quantile(0.5).value == 0.2
    (check,) = [c for c in r.checks if c.code == "invalid-quantile"]
    assert check.level == "error" and "not a number in [0, 1]; the series is left out" in check.message
    assert "p200" not in str(r.distribution.quantile(0.99).note)


def test_a_summary_quantile_label_that_is_no_number_is_a_one_line_error_naming_url_and_series() -> None:
    with pytest.raises(SourceError) as err:
        _collect(FakeProm(quantiles=[({"quantile": "abc", "pod": "a"}, 0.3)], count=10), kind="summary")
    assert "\n" not in str(err.value)
    assert str(err.value).endswith("/api/v1/query: data.result[0].metric: quantile='abc' is not a number "
                                   "(series {'quantile': 'abc', 'pod': 'a'})")


@pytest.mark.parametrize(("value", "code"), [(-3, "negative-observations"), ("+Inf", "invalid-quantile-value")])
def test_a_negative_or_infinite_summary_percentile_is_not_shown(value: Any, code: str) -> None:
    r = _collect(FakeProm(quantiles=[({"quantile": "0.5"}, value), ({"quantile": "0.9"}, 0.4)], count=10),
                 kind="summary")
    assert r.distribution is not None
    assert r.distribution.quantile(0.5).value is None and r.distribution.quantile(0.9).value == 0.4
    assert code in _codes(r)


def test_a_negative_summary_count_and_sum_are_not_used() -> None:
    r = _collect(FakeProm(quantiles=[({"quantile": "0.5"}, 0.3)], count=-10, total=-2), kind="summary")
    assert r.distribution is not None and r.distribution.count == 0 and r.distribution.mean is None
    assert {"invalid-count", "negative-sum"} <= set(_codes(r))


# --------------------------------------------------------------------------- native histograms


def _native(buckets: list[list[Any]], count: str) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"job": "api"}, "histogram": [1000, {"count": count, "sum": "-3", "buckets": buckets}]}]}}


@pytest.mark.parametrize("buckets", [
    [[0, "-0.5", "-0.25", "6"], [0, "-0.25", "-0.125", "4"]],  # only negative
    [[0, "-0.5", "-0.25", "1"], [3, "-0.001", "0.001", "2"], [0, "0.25", "0.5", "7"]],  # mostly positive
], ids=["only-negative", "some-negative"])
def test_a_native_histogram_with_negative_observations_gives_no_percentile(buckets: list[list[Any]]) -> None:
    # One part refused with a check (the rest of the map is still drawn), not a source error.
    r = _collect(FakeProm(answers={"sum(increase(x[": _native(buckets, "10")}))
    assert r.distribution is None
    (check,) = [c for c in r.checks if c.code == "negative-observations"]
    assert check.level == "error" and "\n" not in check.message and "a latency cannot be negative" in check.message


def test_a_native_zero_bucket_beside_positive_buckets_is_a_latency() -> None:
    fake = FakeProm(answers={"sum(increase(x[": _native(
        [[3, "-0.001", "0.001", "2"], [0, "0.25", "0.5", "8"]], "10")})
    r = _collect(fake)
    assert r.distribution is not None and r.distribution.count == 10
    assert (r.distribution.quantile(0.5).low or 0.0) >= 0.0


# --------------------------------------------------------------------------- scrape


def _scrape(page: str, kind: str = "histogram") -> MeasurementResult:
    def handle(req: BaseHTTPRequestHandler) -> None:
        reply(req, 200, page.encode(), "text/plain; version=0.0.4")

    with loopback_server(handle) as url:
        c = ScrapeCollector(SourceSpec("app", "scrape", url + "/metrics", "s.yaml:2"), backoff=0.01)
        return c.collect(Measurement("app", kind, "x", "s.yaml:3"), WINDOW)


HIST = "# TYPE x histogram\n"


@pytest.mark.parametrize(("page", "code"), [
    (HIST + 'x_bucket 5\nx_bucket{le="+Inf"} 10\nx_count 10\nx_sum 2\n', "missing-le"),
    (HIST + 'x_bucket{le="-Inf"} 3\nx_bucket{le="+Inf"} 10\nx_count 10\nx_sum 2\n', "negative-observations"),
    (HIST + 'x_bucket{le="0.1"} 5\nx_bucket{le="0.1"} 5\nx_bucket{le="+Inf"} 10\nx_count 10\nx_sum 2\n',
     "duplicate-le"),
    (HIST + 'x_bucket{le="0.1"} 5\nx_bucket{le="1e400"} 10\nx_bucket{le="+Inf"} 10\nx_count 10\n', "invalid-le"),
    (HIST + 'x_bucket{le="0.1"} NaN\nx_bucket{le="+Inf"} 10\nx_count 10\n', "invalid-bucket-count"),
    (HIST + 'x_bucket{le="0.1"} 1e308\nx_bucket{le="+Inf"} 1e308\nx_count 10\n', "count-overflow"),
], ids=["no-le", "-Inf", "duplicate-le", "1e400", "NaN", "1e308"])
def test_a_bad_scrape_page_is_a_check_not_a_traceback(page: str, code: str) -> None:
    r = _scrape(page)
    assert r.distribution is None
    assert _codes(r) == [code]  # and no "no-data": the data was there, and refused


@pytest.mark.parametrize("quantile", ["abc", "2", "NaN"])
def test_a_scrape_summary_with_a_bad_quantile_label_leaves_that_series_out(quantile: str) -> None:
    page = f'# TYPE x summary\nx{{quantile="{quantile}"}} 0.3\nx{{quantile="0.5"}} 0.2\nx_count 10\nx_sum 2\n'
    r = _scrape(page, kind="summary")
    assert r.distribution is not None and r.distribution.quantile(0.5).value == 0.2
    assert "invalid-quantile" in _codes(r)


def test_vector_helper_round_trips_through_the_decoder() -> None:
    from collectors.promjson import decode_query

    r = decode_query(json.loads(json.dumps(vector([({"le": "1"}, 3)]))), "u")
    assert r.samples[0].value == 3.0 and r.samples[0].labels == {"le": "1"}


# --------------------------------------------------------------------------- PromQL queries


def test_a_summary_series_without_a_quantile_label_is_left_out_with_a_check() -> None:
    r = _collect(FakeProm(quantiles=[({"pod": "a"}, 0.3), ({"quantile": "0.5", "pod": "b"}, 0.2)], count=10),
                 kind="summary")
    assert "invalid-quantile" in _codes(r)
    assert r.distribution is not None and r.distribution.quantile(0.5).value == 0.2


@pytest.mark.parametrize(("series", "code"), [
    ([({"le": "0.1"}, -5), ({"le": "+Inf"}, 10)], "negative-bucket-count"),
    ([({"le": "-Inf"}, 2), ({"le": "+Inf"}, 10)], "negative-observations"),
    ([({"le": "1e400"}, 4), ({"le": "+Inf"}, 10)], "invalid-le"),
    ([({"job": "x"}, 4), ({"le": "+Inf"}, 10)], None),
], ids=["negative-count", "le--Inf", "le-1e400", "a-series-without-le-beside-buckets"])
def test_a_raw_query_measurement_is_checked_like_a_histogram(series: list[Any], code: str | None) -> None:
    r = _collect(FakeProm(answers={"x": vector(series)}), kind="query")
    if code is None:
        assert r.distribution is not None and r.distribution.count == 10  # the stray series is not a bucket
    else:
        assert r.distribution is None and code in _codes(r)
