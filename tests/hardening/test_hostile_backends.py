"""Issue 25: Datadog and Prometheus answers of the wrong shape, a few angles past the obvious.

Datadog through the real client against the replaying stand-in (tests/ddreplay.py: the
recorded wire format, one field made hostile); Prometheus through the decoder every query
goes through. Each is a one-line SourceError (QueryRejected for Datadog's own refusals)
naming the URL and the field, never a traceback and never a silently wrong number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from collectors.promjson import decode_query
from mapper.core.errors import QueryRejected, SourceError
from tests.collectors.test_datadog import client_for, keys  # noqa: F401  (the keys, set for every test)
from tests.ddreplay import UNIT_MICROSECOND, DatadogReplay, running_replay, timeseries_answer, v1_answer

START, END = 1641343852, 1641430252
QUERY = "max:trade.alert.latency.95percentile{*} by {host}.rollup(max, 300)"


@pytest.fixture
def replay() -> Iterator[DatadogReplay]:
    with running_replay() as r:
        yield r


def _points() -> list[list[Any]]:
    return [[(START + 300 * i) * 1000.0, 0.001 * i] for i in range(1, 4)]


def _v1(replay: DatadogReplay, body: Any) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    replay.once("GET", "/api/v1/query", 200, raw, {"Content-Type": "application/json"})
    return client_for(replay.url).query_v1(QUERY, START, END)


def _answer(**change: Any) -> dict[str, Any]:
    body = v1_answer(QUERY, START, END, [("host:a", _points())], UNIT_MICROSECOND)
    body["series"][0].update(change)
    return body


@pytest.mark.parametrize(("change", "says"), [
    ({"pointlist": [[START * 1000.0]]}, "series[0].pointlist[0] is not [timestamp, value]"),
    ({"pointlist": [[START * 1000.0, 1, 2]]}, "series[0].pointlist[0] is not [timestamp, value]"),
    ({"pointlist": [[None, 1.0]]}, "series[0].pointlist[0] has no timestamp"),
    ({"pointlist": [[float("nan"), 1.0]]}, "series[0].pointlist[0] has no timestamp"),
    ({"pointlist": [[float("inf"), 1.0]]}, "series[0].pointlist[0] has no timestamp"),
    ({"pointlist": [[(END + 86_400) * 1000.0, 5.0]]}, "series[0].pointlist[0] at 1641516652 is outside the asked"),
    ({"pointlist": [[(START - 86_400) * 1000.0, 5.0]]}, "is outside the asked window"),
    ({"pointlist": [[START * 1000.0, "fast"]]}, "series[0].pointlist[0][1]: not a number"),
    ({"unit": [{"name": "microsecond", "family": "time", "scale_factor": 0}]}, "has scale_factor 0, not a positive"),
    ({"unit": [{"name": "microsecond", "family": "time", "scale_factor": -1e-6}]}, "scale_factor -1e-06"),
    ({"unit": [{"name": "microsecond", "family": "time", "scale_factor": "1e-6"}]}, "scale_factor '1e-6'"),
    ({"unit": [{"name": "microsecond", "family": "time", "scale_factor": True}]}, "scale_factor True"),
    ({"unit": [{"name": "us", "family": "time", "scale_factor": float("nan")}]}, "scale_factor nan"),
], ids=["arity-1", "arity-3", "null-ts", "nan-ts", "inf-ts", "future", "past", "string-value", "scale-0",
        "scale-negative", "scale-string", "scale-bool", "scale-nan"])
def test_a_hostile_v1_series_is_one_line_naming_the_url_and_the_field(replay: DatadogReplay,
                                                                     change: dict[str, Any], says: str) -> None:
    with pytest.raises(SourceError) as err:
        _v1(replay, _answer(**change))
    message = str(err.value)
    assert message.startswith(f"{replay.url}/api/v1/query: ") and says in message and "\n" not in message


@pytest.mark.parametrize("unit", [None, [], [None, None], "microsecond", [["microsecond"]], {"name": 3},
                                  [{"name": "x", "family": "time"}]])
def test_a_unit_of_unknown_shape_is_no_unit_or_one_with_the_default_factor(replay: DatadogReplay, unit: Any) -> None:
    (s,) = _v1(replay, _answer(unit=unit))
    assert s.unit is None or s.unit.scale_factor == 1.0
    assert [v for _, v in s.points] == [0.001, 0.002, 0.003]


@pytest.mark.parametrize("interval", ["300", float("nan"), -300, 0, True, [300]])
def test_an_interval_that_is_no_length_of_time_is_none(replay: DatadogReplay, interval: Any) -> None:
    (s,) = _v1(replay, _answer(interval=interval))
    assert s.interval is None


def test_null_values_stay_gaps(replay: DatadogReplay) -> None:
    pts = _points()
    pts[1][1] = None
    (s,) = _v1(replay, _answer(pointlist=pts))
    assert [v for _, v in s.points] == [0.001, None, 0.003]


@pytest.mark.parametrize("error", [{"detail": "a\nb"}, "line one\nline two " + "x" * 5000, None])
def test_a_200_answer_with_status_error_is_a_one_line_refusal(replay: DatadogReplay, error: Any) -> None:
    with pytest.raises(QueryRejected) as err:
        _v1(replay, {"status": "error", "error": error})
    message = str(err.value)
    assert "Datadog rejected the query: " in message and "\n" not in message and len(message) < 700


def _ts(replay: DatadogReplay, body: Any) -> Any:
    replay.once("POST", "/api/v2/query/timeseries", 200, json.dumps(body).encode(),
                {"Content-Type": "application/json"})
    return client_for(replay.url).timeseries([("a", "p99:x{*}")], START * 1000, END * 1000, 3_600_000)


@pytest.mark.parametrize(("mutate", "says"), [
    (lambda b: b["data"]["attributes"]["series"][0].update(query_index="0"), "series[0].query_index is '0'"),
    (lambda b: b["data"]["attributes"]["series"][0].update(query_index=True), "series[0].query_index is True"),
    (lambda b: b["data"]["attributes"]["series"][0].update(query_index=-1), "series[0].query_index is -1"),
    (lambda b: b["data"]["attributes"]["series"][0].update(group_tags="host:a"), "group_tags is not a list"),
    (lambda b: b["data"]["attributes"].update(times=[float("inf")]), "times are not unix milliseconds"),
    (lambda b: b["data"]["attributes"].update(times=[True]), "times are not unix milliseconds"),
    (lambda b: b["data"]["attributes"]["series"][0].update(
        unit=[{"name": "microsecond", "family": "time", "scale_factor": 0}]), "series[0]: unit 'microsecond'"),
], ids=["index-string", "index-bool", "index-negative", "tags-string", "time-inf", "time-bool", "unit-scale-0"])
def test_a_hostile_timeseries_answer_is_one_line(replay: DatadogReplay, mutate: Any, says: str) -> None:
    body = timeseries_answer([START * 1000], [[0.002]], [UNIT_MICROSECOND])
    mutate(body)
    with pytest.raises(SourceError) as err:
        _ts(replay, body)
    assert str(err.value).startswith(f"{replay.url}/api/v2/query/timeseries: ") and says in str(err.value)


# --------------------------------------------------------------------------- Prometheus


def _matrix(*series: dict[str, Any]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "matrix", "result": list(series)}}


@pytest.mark.parametrize(("body", "says"), [
    (_matrix({"metric": {"i": "a"}, "values": [[1, "1"], [1, "2"]]}),
     "u: data.result[0].values[1]: timestamp 1.000 does not follow 1.000 (series {'i': 'a'})"),
    (_matrix({"metric": {}, "values": [[2, "1"], [1, "2"]]}), "values[1]: timestamp 1.000 does not follow 2.000"),
    (_matrix({"metric": {}, "values": [["NaN", "1"]]}), "u: data.result[0].values: timestamp 'NaN' is not a time"),
    (_matrix({"metric": {}, "values": [[1e400, "1"]]}), "timestamp inf is not a time"),
    (_matrix({"metric": {"i": "a"}, "values": []}, {"metric": {"i": "a"}, "values": []}),
     "u: data.result[1]: series {'i': 'a'} appears twice in one answer"),
    ({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"le": "1"}, "value": [1, "3"]}, {"metric": {"le": "1"}, "value": [1, "4"]}]}},
     "u: data.result[1]: series {'le': '1'} appears twice"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": ["x", "1"]}]}},
     "expected a number, got 'x'"),
], ids=["repeat", "backwards", "nan-time", "inf-time", "twice-matrix", "twice-vector", "bad-time"])
def test_a_hostile_prometheus_answer_is_one_line_naming_the_field(body: dict[str, Any], says: str) -> None:
    with pytest.raises(SourceError) as err:
        decode_query(json.loads(json.dumps(body)), "u")
    assert says in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("stats", [None, "fast", [1, 2], {"timings": "x", "samples": [None]}, 3])
def test_prometheus_stats_of_any_type_are_ignored_and_a_string_result_is_no_samples(stats: Any) -> None:
    body = {"status": "success", "data": {"resultType": "string", "result": [1, "x"], "stats": stats}}
    r = decode_query(body, "u")
    assert r.result_type == "string" and r.samples == () and r.series == ()
