"""The Datadog source against a loopback server that replays Datadog's real recorded answers.

Datadog cannot run here, so these tests use :mod:`tests.ddreplay`: the recorded vcrpy
cassettes of Datadog's own API client (Apache-2.0, see ``tests/fixtures/PROVENANCE.md``),
replayed as they are, and answers derived from them in the same wire format for latmap's
own queries. Every assertion is on an exact value the answer carries.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from collectors.datadog import DatadogCollector, load_datadog_spans
from collectors.datadog_api import DatadogClient, errors_of, parse_v1_query
from mapper.core.distribution import HostAggregateDistribution, SketchDistribution
from mapper.core.errors import QueryRejected, SourceError
from mapper.core.model import Window
from mapper.core.spec import StreamSpec, loads_spec
from tests.ddreplay import (
    OPENAPI,
    UNIT_MICROSECOND,
    UNIT_MILLISECOND,
    UNIT_PERCENT,
    DatadogReplay,
    Seen,
    cassette,
    errors_answer,
    running_replay,
    scalar_answer,
    scalar_queries,
    timeseries_answer,
    v1_answer,
)

API_KEY = "dd-api-key-SECRET-0123456789abcdef"
APP_KEY = "dd-app-key-SECRET-fedcba9876543210"
END = 1_764_288_000.0  # 2025-11-28T00:00:00Z, on the hour
DAY = Window(END - 86400, END)

#: What the derived answers serve for trade.alert.latency{service:alerting}, in ms.
ALERTING = {"count": 250_000.0, "sum": 3_550_000.0, "min": 1.2, "max": 950.0,
            "p50": 12.5, "p75": 16.0, "p90": 24.0, "p95": 31.0, "p99": 80.0, "p99.99": 410.0}


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DD_API_KEY", API_KEY)
    monkeypatch.setenv("DD_APP_KEY", APP_KEY)


@pytest.fixture
def replay() -> Iterator[DatadogReplay]:
    with running_replay() as r:
        yield r


def spec_for(url: str, body: str = "", source: str = "", percentiles: str = "[50, 99, 99.99]") -> StreamSpec:
    text = f"""\
version: 1
name: dd-stream
window: 24h
percentiles: {percentiles}
sources:
  dd: {{kind: datadog, url: "{url}", retries: 2{source}}}
stages:
{body or '''  - name: alerting
    process: {source: dd, distribution: trade.alert.latency, filter: "service:alerting"}
'''}"""
    return loads_spec(text, "stream.yaml")


def collector(spec: StreamSpec, notes: list[str] | None = None, **kw: Any) -> DatadogCollector:
    notify = notes.append if notes is not None else None
    c = DatadogCollector(spec.sources["dd"], spec.percentiles, notify=notify, **kw)
    c.client.sleep = lambda s: None  # waits are asserted through notes and client.waited
    return c


def metric_store(replay: DatadogReplay, values: Mapping[str, float | None], unit: Mapping[str, Any] | None,
                 refuse: Mapping[str, str] | None = None, hourly: Mapping[str, list[float | None]] | None = None,
                 scope: str = "trade.alert.latency{service:alerting}") -> None:
    """Serve scalar and timeseries answers for one distribution, keyed by aggregator
    (``count``, ``p99`` ...); ``refuse`` maps an aggregator to the error Datadog gives."""
    refuse = refuse or {}

    def scalar(req: Seen) -> Any:
        if req.path != "/api/v2/query/scalar":
            return None
        cols = []
        for q in scalar_queries(req):
            agg, rest = q["query"].split(":", 1)
            if rest != scope:
                return 400, errors_answer(f"unknown metric in {q['query']}"), {}
            if agg in refuse:
                return 400, errors_answer(refuse[agg]), {}
            v = values.get(agg)
            cols.append((q["name"], [] if v is None else [v], None if agg == "count" else unit))
        return 200, scalar_answer(cols), {"Content-Type": "application/vnd.api+json"}

    def series(req: Seen) -> Any:
        if req.path != "/api/v2/query/timeseries":
            return None
        a = req.body["data"]["attributes"]
        step = a["interval"]
        times = list(range(a["from"], a["to"], step))
        rows, units = [], []
        for q in a["queries"]:
            agg = q["query"].split(":", 1)[0]
            per_hour = (hourly or {}).get(agg)
            rows.append([per_hour[(t - int(DAY.start * 1000)) // step % len(per_hour)] if per_hour else None
                         for t in times])
            units.append(None if agg == "count" else unit)
        return 200, timeseries_answer(times, rows, units), {"Content-Type": "application/vnd.api+json"}

    replay.route(scalar)
    replay.route(series)


# ---------------------------------------------------------------------- recorded answers


def client_for(url: str) -> DatadogClient:
    c = DatadogClient(spec_for(url).sources["dd"], notify=lambda m: None)
    c.sleep = lambda s: None
    return c


def test_recorded_scalar_answer_parses_to_its_value_and_unit(replay: DatadogReplay) -> None:
    replay.recorded(cassette("v2/test_scalar_cross_product_query_returns_ok_response"))
    (col,) = client_for(replay.url).scalar([("a", "avg:system.cpu.user{*}", "avg")], 1711391280000, 1711394880000)
    assert col.name == "a" and col.values == (6.368151928283307,)
    assert col.unit is not None
    assert (col.unit.name, col.unit.family, col.unit.scale_factor) == ("percent", "percentage", 1.0)
    sent = replay.seen[0]
    assert sent.headers["DD-API-KEY"] == API_KEY and sent.headers["DD-APPLICATION-KEY"] == APP_KEY
    assert sent.body["data"]["type"] == "scalar_request"
    assert sent.body["data"]["attributes"]["queries"][0] == {
        "data_source": "metrics", "name": "a", "query": "avg:system.cpu.user{*}", "aggregator": "avg"}


def test_recorded_empty_scalar_column_with_microseconds(replay: DatadogReplay) -> None:
    replay.recorded(cassette("v2/test_scalar_cross_product_query_with_apm_dependency_stats_data_source_returns_ok_response"))
    (col,) = client_for(replay.url).scalar([("a", "x", "avg")], 0, 1)
    assert col.values == ()
    assert col.unit is not None and (col.unit.name, col.unit.scale_factor) == ("microsecond", 0.000001)


def test_recorded_scalar_400_shows_datadogs_errors(replay: DatadogReplay) -> None:
    replay.recorded(cassette("v2/test_scalar_cross_product_query_returns_bad_request_response"))
    with pytest.raises(QueryRejected) as err:
        client_for(replay.url).scalar([("a", "avg:system.cpu.user{*}", "avg")], 1568899800000, 1568923200000)
    assert str(err.value) == (f"{replay.url}/api/v2/query/scalar: HTTP 400: Datadog rejected the query: "
                              "Queries ending outside the retention date are invalid")


def test_recorded_timeseries_answer_parses_to_its_points(replay: DatadogReplay) -> None:
    replay.recorded(cassette("v2/test_timeseries_cross_product_query_returns_ok_response"))
    got = client_for(replay.url).timeseries([("a", "avg:datadog.estimated_usage.metrics.custom{*}")],
                                            1711977601000, 1711981201000, 5000)
    assert got.times == (1711977645000, 1711977705000, 1711980225000)
    assert got.values == ((1.0, 1.0, 87.0),)
    assert got.query_index == (0,) and got.group_tags == ((),) and got.units == (None,)


@pytest.mark.parametrize("name", ["apm_metrics", "apm_dependency_stats"])
def test_recorded_empty_timeseries(replay: DatadogReplay, name: str) -> None:
    replay.recorded(cassette(f"v2/test_timeseries_cross_product_query_with_{name}_data_source_returns_ok_response"))
    got = client_for(replay.url).timeseries([("a", "x")], 0, 1, 5000)
    assert got.times == () and got.values == () and got.query_index == ()


def test_recorded_timeseries_400(replay: DatadogReplay) -> None:
    replay.recorded(cassette("v2/test_timeseries_cross_product_query_returns_bad_request_response"))
    with pytest.raises(QueryRejected, match=r'Invalid type\. Expected "timeseries_request"\.$'):
        client_for(replay.url).timeseries([("a", "x")], 0, 1, 5000)


def test_recorded_v1_query_parses_to_its_288_points(replay: DatadogReplay) -> None:
    rec = cassette("v1/test_query_timeseries_points_returns_ok_response")
    replay.recorded(rec)
    (s,) = client_for(replay.url).query_v1("system.cpu.idle{*}", 1641343852, 1641430252)
    assert len(s.points) == 288 and s.interval == 300.0 and s.scope == "*" and s.metric == "system.cpu.idle"
    assert s.points[0] == (1641344100000.0, 91.4583840476142)
    assert s.points[-1] == (1641430200000.0, 92.57754687873684)
    assert s.unit is not None and s.unit.name == "percent"
    assert replay.seen[0].query == {"from": ["1641343852"], "to": ["1641430252"], "query": ["system.cpu.idle{*}"]}
    recorded = rec.json["series"][0]["pointlist"]
    assert [list(p) for p in s.points] == recorded


def test_openapi_example_of_v1_query() -> None:
    doc = json.loads((OPENAPI / "api_v1_query.200.json").read_text())
    (s,) = parse_v1_query(doc, "example")
    assert s.points == ((1681683300000.0, 77.62145685254418),) and s.scope == "*"


def test_v1_nulls_in_pointlist_are_none_and_status_error_is_rejected() -> None:
    doc = json.loads((OPENAPI / "api_v1_query.200.json").read_text())
    doc["series"][0]["pointlist"].append([1681683600000.0, None])
    (s,) = parse_v1_query(doc, "example")
    assert s.points[-1] == (1681683600000.0, None)
    with pytest.raises(QueryRejected, match="Datadog rejected the query: Error parsing query"):
        parse_v1_query({"status": "error", "error": "Error parsing query: unexpected '{'"}, "u")
    doc["series"][0]["pointlist"].append([1681683900000.0, "NaN?"])
    with pytest.raises(SourceError, match=r"example: series\[0\]\.pointlist\[2\]\[1\]: not a number"):
        parse_v1_query(doc, "example")


def test_recorded_422_errors_of_span_apis() -> None:
    for name in ("v2/test_search_spans_returns_unprocessable_entity_response",
                 "v2/test_get_a_list_of_spans_returns_unprocessable_entity_response"):
        rec = cassette(name)
        assert rec.status == 422
        assert errors_of(rec.json) == ("Generic Error: invalid_argument(Field 'filter.from,to' is invalid: "
                                       "'from' should be anterior to 'to')")


def test_recorded_span_aggregate_answer_is_count_buckets() -> None:
    """Not used by latmap (it needs spans, not counts), read here to pin its shape."""
    rec = cassette("v2/test_aggregate_spans_returns_ok_response")
    buckets = rec.json["data"][0]["attributes"]["compute"]["c0"]
    assert [b["value"] for b in buckets] == [154, 513, 357, 196]


# ---------------------------------------------------------------------- distributions


def test_distribution_percentiles_are_datadogs_with_the_sketch_interval(replay: DatadogReplay) -> None:
    metric_store(replay, ALERTING, UNIT_MILLISECOND, hourly={"count": [10_000.0], "p50": [12.0], "p99": [70.0]})
    spec = spec_for(replay.url)
    r = collector(spec).collect(spec.stage("alerting").process, DAY)  # type: ignore[arg-type]
    d = r.distribution
    assert isinstance(d, SketchDistribution)
    assert d.count == 250_000 and d.mean == pytest.approx(0.0142, rel=1e-12)
    p50, p99, p9999 = (d.quantile(q) for q in (0.5, 0.99, 0.9999))
    assert p50.value == pytest.approx(0.0125) and p99.value == pytest.approx(0.080)
    assert p9999.value == pytest.approx(0.410)
    assert p99.low == pytest.approx(0.080 / 1.01) and p99.high == pytest.approx(0.080 / 0.99)
    assert p99.count == 250_000 and "relative accuracy 1.00%" in (p99.note or "")
    assert d.quantiles[0.75] == pytest.approx(0.016)  # Datadog's standard percentiles are asked too
    assert "DDSketch" in r.provenance and "pXX/count/sum/min/max:trade.alert.latency{service:alerting}" in r.provenance
    # one scalar request for the stats and every percentile, over exactly the window
    (call,) = replay.calls("/api/v2/query/scalar")
    a = call.body["data"]["attributes"]
    assert (a["from"], a["to"]) == (int(DAY.start * 1000), int(DAY.end * 1000))
    aggs = {q["query"].split(":")[0]: q["aggregator"] for q in a["queries"]}
    assert aggs == {"count": "sum", "sum": "sum", "min": "min", "max": "max", "p50": "percentile",
                    "p75": "percentile", "p90": "percentile", "p95": "percentile", "p99": "percentile",
                    "p99.99": "percentile"}
    # the hourly series: 24 hours, each Datadog's own answer for that hour
    assert r.series is not None
    starts, hours = r.series
    assert len(starts) == 24 and starts[0] == DAY.start
    assert hours[0].count == 10_000 and hours[0].quantile(0.5).value == pytest.approx(0.012)
    assert hours[0].quantile(0.9).value is None  # no p90 points: a gap, not a zero
    assert {c.code for c in r.checks} == {"datadog-null-points"}


def test_a_percentile_datadog_does_not_serve_is_not_available(replay: DatadogReplay) -> None:
    values = dict(ALERTING, **{"p99.99": None})
    metric_store(replay, values, UNIT_MILLISECOND)
    spec = spec_for(replay.url)
    d = collector(spec).collect(spec.stage("alerting").process, DAY).distribution  # type: ignore[arg-type]
    e = d.quantile(0.9999)  # type: ignore[union-attr]
    assert e.value is None and e.low is None and e.note is not None
    assert e.note.startswith("not available: Datadog has no p99.99 for trade.alert.latency{service:alerting}")


def test_a_refused_percentile_is_found_and_its_reason_shown(replay: DatadogReplay) -> None:
    """One refused query fails Datadog's whole request: latmap asks again one percentile
    at a time to keep the others."""
    metric_store(replay, ALERTING, UNIT_MILLISECOND,
                 refuse={"p99.99": "Percentile aggregations are not enabled for trade.alert.latency"})
    spec = spec_for(replay.url)
    d = collector(spec).collect(spec.stage("alerting").process, DAY).distribution  # type: ignore[arg-type]
    assert d.quantile(0.99).value == pytest.approx(0.08)  # type: ignore[union-attr]
    assert d.quantile(0.9999).note == (  # type: ignore[union-attr]
        "not available: Datadog refused p99.99:trade.alert.latency{service:alerting}: "
        "Percentile aggregations are not enabled for trade.alert.latency")
    assert len(replay.calls("/api/v2/query/scalar")) == 1 + 1 + 6


def test_too_few_observations_for_p9999_says_so(replay: DatadogReplay) -> None:
    metric_store(replay, dict(ALERTING, count=900.0), UNIT_MILLISECOND)
    spec = spec_for(replay.url)
    d = collector(spec).collect(spec.stage("alerting").process, DAY).distribution  # type: ignore[arg-type]
    assert d.quantile(0.9999).note == "too few samples: 900 < 10,000 needed for p99.99"  # type: ignore[union-attr]
    assert d.quantile(0.99).value == pytest.approx(0.08)  # type: ignore[union-attr]


def test_empty_series_is_no_data(replay: DatadogReplay) -> None:
    metric_store(replay, {}, UNIT_MILLISECOND)
    spec = spec_for(replay.url)
    r = collector(spec).collect(spec.stage("alerting").process, DAY)  # type: ignore[arg-type]
    assert r.distribution is None
    assert [(c.code, c.message) for c in r.checks if c.code == "no-data"] == [
        ("no-data", "dd: trade.alert.latency{service:alerting}: Datadog has no points in the window")]


def test_units_datadog_knows_win_and_a_mismatch_is_an_error(replay: DatadogReplay) -> None:
    metric_store(replay, ALERTING, UNIT_MICROSECOND)
    spec = spec_for(replay.url)
    d = collector(spec).collect(spec.stage("alerting").process, DAY).distribution  # type: ignore[arg-type]
    assert d.quantile(0.5).value == pytest.approx(12.5e-6)  # type: ignore[union-attr]
    stage = '''  - name: alerting
    process: {source: dd, distribution: trade.alert.latency, filter: "service:alerting", unit: ms}
'''
    spec = spec_for(replay.url, stage)
    r = collector(spec).collect(spec.stage("alerting").process, DAY)  # type: ignore[arg-type]
    assert r.distribution is None
    (err,) = [c for c in r.checks if c.level == "error"]
    assert err.code == "unit-mismatch"
    assert err.message == ("dd: trade.alert.latency{service:alerting}: mismatched units: the spec says unit: ms "
                           "(stream.yaml:9) but Datadog says trade.alert.latency is in microseconds; "
                           "fix or remove unit:")


def test_a_metric_that_is_not_a_time_is_refused(replay: DatadogReplay) -> None:
    metric_store(replay, ALERTING, UNIT_PERCENT)
    spec = spec_for(replay.url)
    r = collector(spec).collect(spec.stage("alerting").process, DAY)  # type: ignore[arg-type]
    assert r.distribution is None
    assert [c.message for c in r.checks if c.code == "unit-mismatch"] == [
        "dd: trade.alert.latency{service:alerting}: Datadog says trade.alert.latency is in percent (percentage), "
        "not a time; is it the right metric? (stream.yaml:9)"]


def test_no_unit_from_datadog_uses_the_spec_and_says_so(replay: DatadogReplay) -> None:
    metric_store(replay, ALERTING, None)
    spec = spec_for(replay.url)
    r = collector(spec).collect(spec.stage("alerting").process, DAY)  # type: ignore[arg-type]
    assert r.distribution.quantile(0.5).value == pytest.approx(12.5)  # type: ignore[union-attr]
    assert "unit-assumed" in {c.code for c in r.checks}


def test_long_window_refused_whole_is_read_by_day_and_percentiles_only_bounded(replay: DatadogReplay) -> None:
    """Datadog refuses the 3-day window: counts add up, min/max are exact, and the p99 of
    the window is given as the range of the days' p99 (never their average)."""
    days = {0: dict(ALERTING, count=100.0e3, p99=60.0, max=500.0),
            1: dict(ALERTING, count=50.0e3, p99=90.0, min=0.9, p95=None),
            2: dict(ALERTING, count=100.0e3, p99=70.0)}
    start = END - 3 * 86400

    def scalar(req: Seen) -> Any:
        if req.path != "/api/v2/query/scalar":
            return None
        a = req.body["data"]["attributes"]
        if a["to"] - a["from"] > 86400 * 1000:
            return 400, errors_answer("Query window too large for this request"), {}
        day = days[(a["from"] // 1000 - int(start)) // 86400]
        return 200, scalar_answer([(q["name"], [] if (v := day[q["query"].split(":")[0]]) is None else [v],
                                    None if q["query"].startswith("count") else UNIT_MILLISECOND)
                                   for q in scalar_queries(req)]), {}

    replay.route(scalar)
    replay.route(lambda req: (200, timeseries_answer([], [[], []], [None, None]), {})
                 if req.path == "/api/v2/query/timeseries" else None)
    spec = spec_for(replay.url)
    r = collector(spec).collect(spec.stage("alerting").process, Window(start, END))  # type: ignore[arg-type]
    d = r.distribution
    assert isinstance(d, SketchDistribution)
    assert d.count == 250e3 and d.minimum == pytest.approx(0.0009) and d.maximum == pytest.approx(0.95)
    p99 = d.quantile(0.99)
    assert p99.value is None
    assert p99.low == pytest.approx(0.060 / 1.01) and p99.high == pytest.approx(0.090 / 0.99)
    assert p99.note is not None and "cannot be combined" in p99.note
    # a percentile one day lacks bounds nothing: not available, never the other days' range
    assert d.quantile(0.95).note == "not available: Datadog did not serve p95 for every day of the window"
    assert any(c.code == "datadog-chunked" and "Query window too large for this request" in c.message
               for c in r.checks)


def test_series_longer_than_max_points_is_split_into_requests(replay: DatadogReplay) -> None:
    metric_store(replay, ALERTING, UNIT_MILLISECOND, hourly={"count": [1.0, None], "p50": [10.0, None]})
    spec = spec_for(replay.url)
    r = collector(spec, max_points=5).collect(spec.stage("alerting").process, DAY)  # type: ignore[arg-type]
    calls = replay.calls("/api/v2/query/timeseries")
    assert len(calls) == 5  # 24 hours in requests of at most 5 points
    spans = [(c.body["data"]["attributes"]["from"], c.body["data"]["attributes"]["to"]) for c in calls]
    assert spans[0][0] == DAY.start * 1000 and spans[-1][1] == DAY.end * 1000
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    starts, hours = r.series  # type: ignore[misc]
    assert list(starts) == [DAY.start + 3600 * i for i in range(24)]
    assert [h.count for h in hours[:4]] == [1.0, 0.0, 1.0, 0.0]
    (null,) = [c for c in r.checks if c.code == "datadog-null-points"]
    assert "of 24" not in null.message and "hourly points are null" in null.message


def test_histogram_metric_is_per_host_bounds_never_a_combined_value(replay: DatadogReplay) -> None:
    host = {"host:a": {"median": (8.0, 11.0), "95percentile": (20.0, 35.0), "count": 6000.0},
            "host:b": {"median": (9.0, 14.0), "95percentile": (25.0, 60.0), "count": 4000.0}}

    def v1(req: Seen) -> Any:
        if req.path != "/api/v1/query":
            return None
        q = req.query["query"][0]
        start, end = int(req.query["from"][0]), int(req.query["to"][0])
        agg, rest = q.split(":", 1)
        field = rest.split("{", 1)[0].rsplit(".", 1)[1]
        if field == "count":
            series = [(h, [[start * 1000.0, v["count"] / 2], [end * 1000.0, v["count"] / 2]]) for h, v in host.items()]
        elif field == "max":
            series = [("service:alerting", [[start * 1000.0, 700.0], [end * 1000.0, None]])]
        elif field in ("median", "95percentile"):
            i = 0 if agg == "min" else 1
            series = [(h, [[start * 1000.0, v[field][i]], [end * 1000.0, None]]) for h, v in host.items()]
        else:
            series = []
        return 200, v1_answer(q, start, end, series, None if field == "count" else UNIT_MILLISECOND), {}

    replay.route(v1)
    stage = '''  - name: alerting
    process: {source: dd, histogram: trade.alert.latency, filter: "service:alerting"}
'''
    spec = spec_for(replay.url, stage, percentiles="[50, 95, 99]")
    r = collector(spec).collect(spec.stage("alerting").process, DAY)  # type: ignore[arg-type]
    d = r.distribution
    assert isinstance(d, HostAggregateDistribution)
    assert d.count == 10_000 and d.maximum == pytest.approx(0.7)
    p95 = d.quantile(0.95)
    assert p95.value is None and (p95.low, p95.high) == (pytest.approx(0.020), pytest.approx(0.060))
    assert p95.note is not None and p95.note.startswith("not combinable")
    assert d.quantile(0.99).note == (
        "not available: Datadog histogram (agent-side, per host and flush interval) exposes only p50, p95")
    assert [(h, x.quantile(0.5).high) for h, x in r.per_instance] == [("host:a", 0.011), ("host:b", 0.014)]
    assert {c.code for c in r.checks} >= {"histogram-per-host", "histogram-percentile-missing"}
    queries = [s.query["query"][0] for s in replay.calls("/api/v1/query")]
    assert "max:trade.alert.latency.95percentile{service:alerting} by {host}.rollup(max, 10)" not in queries
    rollup = math.ceil(86400 / 1500)
    assert f"max:trade.alert.latency.95percentile{{service:alerting}} by {{host}}.rollup(max, {rollup})" in queries
    assert f"min:trade.alert.latency.median{{service:alerting}} by {{host}}.rollup(min, {rollup})" in queries


# ---------------------------------------------------------------------- rate limits and errors


def test_429_waits_for_the_reset_with_a_message_then_succeeds(replay: DatadogReplay) -> None:
    metric_store(replay, ALERTING, UNIT_MILLISECOND)
    replay.once("POST", "/api/v2/query/scalar", 429, errors_answer("Too many requests"),
                {"X-RateLimit-Limit": "100", "X-RateLimit-Period": "60", "X-RateLimit-Remaining": "0",
                 "X-RateLimit-Reset": "7", "X-RateLimit-Name": "query_scalar_public"})
    notes: list[str] = []
    spec = spec_for(replay.url)
    c = collector(spec, notes)
    d = c.collect(spec.stage("alerting").process, DAY).distribution  # type: ignore[arg-type]
    assert d is not None and d.count == 250_000
    assert c.client.waited == 7
    assert notes[0] == ("Datadog " + replay.url + ": rate limited (HTTP 429) on query_scalar_public, 100 requests "
                        "per 60s; waiting 7s (7s of max_wait 120s)")


def test_remaining_zero_waits_before_the_next_call(replay: DatadogReplay) -> None:
    clock = [1000.0]
    metric_store(replay, ALERTING, UNIT_MILLISECOND)
    replay.once("POST", "/api/v2/query/scalar", 200, scalar_answer([(f"q{i}", [1.0], None) for i in range(10)]),
                {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "12"})
    c = client_for(replay.url)
    c.clock = lambda: clock[0]
    notes: list[str] = []
    c.notify = notes.append
    c.scalar([("q0", "count:trade.alert.latency{service:alerting}", "sum")], 0, 1)
    clock[0] += 2.0
    c.scalar([("count", "count:trade.alert.latency{service:alerting}", "sum")], 0, 1)
    assert c.waited == pytest.approx(10.0)
    assert "rate limit exhausted (X-RateLimit-Remaining: 0); waiting 10s" in notes[0]


def test_a_429_that_resets_in_0s_does_not_spin(replay: DatadogReplay) -> None:
    replay.route(lambda req: (429, errors_answer("Too many requests"), {"X-RateLimit-Reset": "0"}))
    c = collector(spec_for(replay.url, source=", max_wait: 3s"))
    with pytest.raises(SourceError, match="would exceed max_wait 3s"):
        c.client.scalar([("a", "count:x{*}", "sum")], 0, 1)
    assert len(replay.seen) == 7  # 0.5s each until the 3s budget is spent


def test_a_rate_limit_beyond_max_wait_is_a_clear_error(replay: DatadogReplay) -> None:
    replay.route(lambda req: (429, errors_answer("Too many requests"), {"X-RateLimit-Reset": "3600"}))
    spec = spec_for(replay.url, source=", max_wait: 30s")
    c = collector(spec)
    with pytest.raises(SourceError) as err:
        c.client.scalar([("a", "count:x{*}", "sum")], 0, 1)
    assert str(err.value) == (f"{replay.url}/api/v2/query/scalar: rate limited (HTTP 429); waiting 3600s more would "
                              "exceed max_wait 30s for source 'dd' (raise max_wait, or map a shorter window)")


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_name_the_key_variables_and_the_site_never_the_keys(
        replay: DatadogReplay, status: int, caplog: pytest.LogCaptureFixture) -> None:
    replay.route(lambda req: (status, errors_answer("Forbidden"), {}))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceError) as err:
        client_for(replay.url).scalar([("a", "count:x{*}", "sum")], 0, 1)
    msg = str(err.value)
    assert msg == (f"{replay.url}/api/v2/query/scalar: HTTP {status}: Forbidden: check DD_API_KEY / DD_APP_KEY "
                   f"and the site ({replay.url})")
    assert not isinstance(err.value, QueryRejected)
    for text in (msg, caplog.text):
        assert API_KEY not in text and APP_KEY not in text


def test_5xx_is_retried_with_backoff_then_gives_up_with_the_last_answer(replay: DatadogReplay) -> None:
    metric_store(replay, ALERTING, UNIT_MILLISECOND)
    replay.once("POST", "/api/v2/query/scalar", 503, b"upstream connect error", {"Content-Type": "text/plain"})
    notes: list[str] = []
    c = client_for(replay.url)
    c.notify = notes.append
    slept: list[float] = []
    c.sleep = slept.append
    (col,) = c.scalar([("count", "count:trade.alert.latency{service:alerting}", "sum")], 0, 1)
    assert col.values == (250_000.0,) and slept == [0.5]
    assert notes == ["Datadog " + replay.url + ": HTTP 503: upstream connect error; retrying in 0.5s (1/2)"]
    with running_replay() as down:
        down.route(lambda req: (500, errors_answer("Internal Server Error"), {}))
        c = client_for(down.url)
        with pytest.raises(SourceError) as err:
            c.scalar([("a", "count:x{*}", "sum")], 0, 1)
        assert str(err.value) == (f"{down.url}/api/v2/query/scalar: HTTP 500: Internal Server Error "
                                  "(after 3 attempts)")
        assert len(down.seen) == 3


def test_missing_keys_are_named(replay: DatadogReplay, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DD_APP_KEY")
    with pytest.raises(SourceError) as err:
        DatadogClient(spec_for(replay.url).sources["dd"])
    assert str(err.value) == ("source 'dd' (stream.yaml:6): Datadog application key: environment variable "
                              "DD_APP_KEY is not set")


def test_keys_from_files(replay: DatadogReplay, tmp_path: Path) -> None:
    (tmp_path / "api").write_text(API_KEY + "\n")
    (tmp_path / "app").write_text(APP_KEY + "\n")
    replay.recorded(cassette("v2/test_scalar_cross_product_query_returns_ok_response"))
    spec = spec_for(replay.url, source=f", api_key_file: {tmp_path / 'api'}, app_key_file: {tmp_path / 'app'}")
    c = DatadogClient(spec.sources["dd"])
    c.scalar([("a", "avg:system.cpu.user{*}", "avg")], 0, 1)
    assert replay.seen[0].headers["DD-API-KEY"] == API_KEY


def test_a_non_json_answer_and_a_wrong_shape_are_one_line(replay: DatadogReplay) -> None:
    replay.route(lambda req: (200, b"<html>proxy login</html>", {"Content-Type": "text/html"})
                 if req.path == "/api/v2/query/scalar" else None)
    replay.route(lambda req: (200, {"data": {"attributes": {}}}, {}))
    c = client_for(replay.url)
    with pytest.raises(SourceError, match=r"HTTP 200, answer is not JSON \(Content-Type text/html, 24 bytes"):
        c.scalar([("a", "x", "sum")], 0, 1)
    with pytest.raises(SourceError, match=r"/api/v2/query/timeseries: answer has no data.attributes.series"):
        c.timeseries([("a", "x")], 0, 1, 1000)


def test_unreachable_site_is_one_line_after_retries() -> None:
    from mapper.demo.localprom import free_port

    c = client_for(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SourceError, match=r"cannot connect \(connection refused\) \(after 3 attempts\)"):
        c.scalar([("a", "x", "sum")], 0, 1)


# ---------------------------------------------------------------------- APM spans


def test_apm_spans_are_read_page_by_page_into_the_span_batch(replay: DatadogReplay) -> None:
    """The recorded search answer, served as three pages with cursors."""
    rec = cassette("v2/test_search_spans_returns_ok_response")
    events = rec.json["data"]
    pages = [events[:10], events[10:20], events[20:]]

    def search(req: Seen) -> Any:
        if req.path != "/api/v2/spans/events/search":
            return None
        page = req.body["data"]["attributes"]["page"]
        i = int(page.get("cursor", "0"))
        body = dict(rec.json, data=pages[i])
        body["meta"] = dict(rec.json["meta"], page={"after": str(i + 1)} if i + 1 < len(pages) else {})
        return 200, body, {"Content-Type": "application/vnd.api+json"}

    replay.route(search)
    spec = spec_for(replay.url, source=", spans_query: \"env:pcf-spartancrimson\"")
    window = Window(1688032200.0, 1688033200.0)
    services = ["java-sample-app-spartancrimson", "go-sample-app-spartancrimson"]
    loaded = load_datadog_spans(spec.sources["dd"], window, services)
    assert len(loaded.batch) == 25 and loaded.set_aside == {}
    calls = replay.calls("/api/v2/spans/events/search")
    assert len(calls) == 3
    f = calls[0].body["data"]["attributes"]["filter"]
    assert f == {"from": "1688032200000", "to": "1688033200000", "query": (
        "service:(go-sample-app-spartancrimson OR java-sample-app-spartancrimson) env:pcf-spartancrimson")}
    assert calls[1].body["data"]["attributes"]["page"] == {"limit": 1000, "cursor": "1"}
    first = int(loaded.batch.trace_lo[0])
    assert first == 3740652481065462946


def test_apm_spans_stop_at_max_spans_and_say_so(replay: DatadogReplay) -> None:
    rec = cassette("v2/test_search_spans_returns_ok_response")
    replay.route(lambda req: (200, rec.json, {}) if req.path == "/api/v2/spans/events/search" else None)
    spec = spec_for(replay.url, source=", max_spans: 25")
    loaded = load_datadog_spans(spec.sources["dd"], Window(1688032200.0, 1688033200.0), ["x"])
    assert len(replay.seen) == 1 and len(loaded.batch) == 25
    assert loaded.notes and "stopped at max_spans 25" in loaded.notes[0]


def test_apm_spans_422_is_rejected_with_datadogs_words(replay: DatadogReplay) -> None:
    replay.recorded(cassette("v2/test_search_spans_returns_unprocessable_entity_response"))
    spec = spec_for(replay.url)
    with pytest.raises(QueryRejected, match=r"HTTP 422: Datadog rejected the query: Generic Error: invalid_argument"):
        load_datadog_spans(spec.sources["dd"], Window(0.0, 1.0), ["x"])


def test_per_host_bounds_render_as_ranges_and_block_the_end_to_end_with_a_reason() -> None:
    """A Datadog histogram cannot be added to other parts: the map says why there is no
    lead time, and its cells show the range, never a number."""
    from mapper.analysis.latency import MapInput, analyse
    from mapper.core.model import MeasurementResult
    from mapper.render.report import to_table

    spec = loads_spec("""\
name: t
percentiles: [50, 99]
sources:
  dd: {kind: datadog, site: EU1}
stages:
  - name: a
    process: {source: dd, distribution: x.y}
  - name: b
    process: {source: dd, histogram: x.z}
""", "s.yaml")
    sketch = SketchDistribution({0.5: 0.0125, 0.99: 0.08}, 250_000, 3550.0, 0.0012, 0.95)
    hosts = HostAggregateDistribution({0.5: (0.008, 0.014)}, 10_000, 0.7)
    lm = analyse(spec, DAY, MapInput({("a", "process"): MeasurementResult(sketch, "dd a"),
                             ("b", "process"): MeasurementResult(hosts, "dd b")}))
    assert lm.end_to_end is None
    (check,) = [c for c in lm.checks if c.code == "no-end-to-end"]
    assert check.message == ("no end-to-end lead time: b process cannot be added to the other parts "
                             "(percentiles computed per instance or per host are not a distribution)")
    table = to_table(lm)
    assert "n/a [8ms..14ms] (not combinable)" in table and "12.5ms [12.4ms..12.6ms]" in table


def test_a_redirect_is_not_followed_with_the_keys(replay: DatadogReplay) -> None:
    with running_replay() as elsewhere:
        replay.route(lambda req: (302, b"", {"Location": elsewhere.url + "/api/v2/query/scalar?x=1"}))
        with pytest.raises(SourceError) as err:
            client_for(replay.url).scalar([("a", "count:x{*}", "sum")], 0, 1)
        assert elsewhere.seen == []
    assert str(err.value) == (f"{replay.url}/api/v2/query/scalar: HTTP 302 redirect to {elsewhere.url}"
                              "/api/v2/query/scalar not followed (the keys would go with it); point the "
                              "source's site or url at the API itself")


def test_wrong_shapes_from_datadog_are_one_line_with_the_place(replay: DatadogReplay) -> None:
    replay.route(lambda req: (200, [1, 2], {}) if req.path == "/api/v2/spans/events/search" else None)
    replay.route(lambda req: (200, scalar_answer([("zz", [1.0], None)]), {}))
    spec = spec_for(replay.url)
    with pytest.raises(SourceError) as err:
        load_datadog_spans(spec.sources["dd"], Window(0.0, 1.0), ["x"])
    assert str(err.value) == (f"{replay.url}/api/v2/spans/events/search page 1: answer has no data list "
                              "(not a span search response)")
    with pytest.raises(SourceError) as err:
        collector(spec).collect(spec.stage("alerting").process, DAY)  # type: ignore[arg-type]
    assert str(err.value).startswith(f"{replay.url}/api/v2/query/scalar: Datadog answered 1 columns for 10 queries")
