"""The stream spec: what loads, and the file:line message for each kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from mapper.core.durations import format_duration, parse_duration, parse_time, prom_duration
from mapper.core.errors import SpecError
from mapper.core.spec import load_spec, loads_spec
from mapper.demo.run import demo_spec

GOOD = """\
name: trading
owner: sre-oncall
window: 24h
percentiles: [50, 99, 99.99]
sources:
  prom: {kind: prometheus, url: http://127.0.0.1:9090, bearer_token_env: PROM_TOKEN, headers: {X-Scope-OrgID: t1}}
stages:
  - name: market-data
    owner: md-team
    process: {source: prom, histogram: md_tick_process_seconds, selector: {service: market-data}}
  - name: alerting
    owner: alerts-team
    wait:    {source: prom, histogram: alert_queue_wait_seconds}
    process: {source: prom, summary: alert_eval_seconds, unit: ms}
    objectives: {p99: 50ms}
  - name: notification
    owner: notify-team
    wait:    {source: prom, query: 'sum by (le) (increase(q_bucket[$window]))'}
    process: {source: prom, histogram: notify_send_seconds, selector: {provider: twilio}}
objectives: {end_to_end: {p99: 250ms}}
"""


def _error(text: str) -> str:
    with pytest.raises(SpecError) as err:
        loads_spec(text, "stream.yaml")
    return str(err.value)


def test_the_issue_example_loads_into_one_model() -> None:
    spec = loads_spec(GOOD, "stream.yaml")
    assert spec.name == "trading" and spec.window == 86400
    assert spec.percentiles == (0.5, 0.99, 0.9999)
    assert spec.hops == (("market-data", "alerting"), ("alerting", "notification"))
    alerting = spec.stage("alerting")
    assert alerting.process is not None and alerting.process.kind == "summary"
    assert alerting.process.scale == 0.001
    assert spec.sources["prom"].headers == {"X-Scope-OrgID": "t1"}
    assert [(o.target, o.q, o.threshold) for o in spec.objectives] == [
        ("alerting", 0.99, 0.05), ("end_to_end", 0.99, 0.25)]


def test_the_demo_spec_loads() -> None:
    assert len(loads_spec(demo_spec()).stages) == 3


def test_yaml_syntax_error_names_file_line_and_column() -> None:
    assert _error("name: x\nstages: [\n  - a: b\n") .startswith("stream.yaml:3:")


def test_unknown_key_names_its_line_and_field() -> None:
    text = GOOD.replace("    process: {source: prom, histogram: notify_send_seconds",
                        "    procss: {source: prom, histogram: notify_send_seconds")
    assert _error(text) == ("stream.yaml:19: stages[notification].procss: unknown key "
                            "(allowed: name, owner, description, wait, process, traces, upstream, objectives, weight, "
                            "workers, errors, retries, inventory)")


def test_missing_source_names_the_known_ones() -> None:
    text = GOOD.replace("wait:    {source: prom, histogram: alert_queue_wait_seconds}",
                        "wait:    {source: promx, histogram: alert_queue_wait_seconds}")
    assert _error(text) == ("stream.yaml:13: stages[alerting].wait.source: unknown source 'promx' "
                            "(sources: prom)")


def test_every_problem_is_reported_at_once() -> None:
    text = GOOD.replace("window: 24h", "window: 24x").replace("99.99]", "120]").replace(
        "histogram: md_tick_process_seconds", "histogram: md_tick_process_seconds_bucket")
    lines = _error(text).splitlines()
    assert lines == [
        "stream.yaml:3: window: not a duration: '24x' (use e.g. 250ms, 1.5s, 5m, 24h)",
        "stream.yaml:4: percentiles: 120 is not a percentile between 0 and 100",
        "stream.yaml:10: stages[market-data].process.histogram: name the histogram without "
        "'_bucket': 'md_tick_process_seconds'",
    ]


@pytest.mark.parametrize(("old", "new", "message"), [
    ("name: trading", "name: trading\nname: again", "stream.yaml:2: duplicate key 'name' (first at line 1)"),
    ("kind: prometheus", "kind: graphite", "sources.prom.kind: unknown source kind 'graphite'"),
    ("url: http://127.0.0.1:9090", "url: http://u:pw@127.0.0.1:9090", "credentials in the URL are refused"),
    ("headers: {X-Scope-OrgID: t1}", "headers: {Authorization: Bearer x}", "not in the spec"),
    ("objectives: {p99: 50ms}", "objectives: {p99: fast}", "stages[alerting].objectives.p99: not a duration"),
    ("objectives: {end_to_end:", "objectives: {nowhere:", "objectives.nowhere: must be end_to_end or a stage name"),
    ("histogram: alert_queue_wait_seconds}", "histogram: alert_queue_wait_seconds, summary: y}",
     "give exactly one of histogram, summary, query"),
    ("unit: ms", "unit: fortnights", "unknown unit 'fortnights'"),
    ("selector: {provider: twilio}", "selector: {le: '0.1'}", "latmap reads this label itself"),
    ("  - name: alerting", "  - name: market-data", "duplicate stage 'market-data'"),
])
def test_each_mistake_gets_its_message(old: str, new: str, message: str) -> None:
    assert old in GOOD
    assert message in _error(GOOD.replace(old, new, 1))


def test_upstream_must_name_an_earlier_stage() -> None:
    text = GOOD.replace("  - name: alerting\n", "  - name: alerting\n    upstream: notification\n")
    assert "stages[alerting].upstream: 'notification' is not an earlier stage" in _error(text)


def test_not_a_mapping_and_missing_file() -> None:
    assert _error("- a\n- b\n") == "stream.yaml:1: the spec must be a mapping with name, sources and stages"
    with pytest.raises(SpecError, match=r"nope\.yaml: no such file"):
        load_spec(Path("nope.yaml"))


@pytest.mark.parametrize(("text", "seconds"), [
    ("250ms", 0.25), ("1.5s", 1.5), ("24h", 86400), ("1h30m", 5400), ("2", 2), (0.5, 0.5), ("100us", 1e-4)])
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "5 m", "-1s", "1h30", "fast", "inf"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


def test_times_and_rendering() -> None:
    assert parse_time("2026-11-25T06:00:00Z") == 1795586400.0
    assert parse_time("1795586400") == 1795586400.0
    assert prom_duration(86400) == "1d" and prom_duration(5400.5) == "1h30m500ms"
    assert [format_duration(x) for x in (0.00085, 0.0123, 1.2, 86400)] == ["850µs", "12.3ms", "1.2s", "1d"]
