"""Properties of the parsers that read what people write (the spec, durations, times, sizes,
URLs): any input gives a value in range or a clean LatmapError/ValueError, never anything
else, and what an error quotes is bounded."""

from __future__ import annotations

import math
from typing import Any

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from mapper.core.durations import MAX_DURATION, MAX_TIME, parse_duration, parse_time
from mapper.core.errors import LatmapError
from mapper.core.redact import printable, remote_text
from mapper.core.sizes import MAX_SIZE, parse_size
from mapper.core.spec import loads_spec
from mapper.core.urls import url_problem
from tests.fuzz import json_values, outcome, scalars

BASE = {
    "version": 1, "name": "fuzz", "window": "24h", "percentiles": [50, 99],
    "sources": {"prom": {"kind": "prometheus", "url": "http://127.0.0.1:9090"},
                "spans": {"kind": "traces", "path": "spool"}},
    "stages": [{"name": "a", "owner": "o", "process": {"source": "prom", "histogram": "a_seconds"}},
               {"name": "b", "upstream": "a", "traces": {"source": "spans", "service": "b"}}],
    "objectives": {"end_to_end": {"p99": "2s"}},
}
#: Where a mutation may land: (path of keys/indexes).
PLACES = [(), ("version",), ("name",), ("window",), ("percentiles",), ("percentiles", 0), ("sources",),
          ("sources", "prom"), ("sources", "prom", "url"), ("sources", "prom", "timeout"),
          ("sources", "prom", "max_response"), ("sources", "spans", "path"), ("stages",), ("stages", 0),
          ("stages", 0, "name"), ("stages", 0, "owner"), ("stages", 0, "process"),
          ("stages", 0, "process", "selector"), ("stages", 1, "upstream"), ("stages", 1, "traces"),
          ("objectives",), ("objectives", "end_to_end"), ("objectives", "end_to_end", "p99")]


def _mutated(place: tuple[Any, ...], value: Any) -> Any:
    import copy

    doc: Any = copy.deepcopy(BASE)
    if not place:
        return value
    node = doc
    for key in place[:-1]:
        node = node[key]
    node[place[-1]] = value
    return doc


def _clean_spec_outcome(text: str) -> None:
    spec, error = outcome(lambda: loads_spec(text), LatmapError)
    if error is not None:
        lines = error.splitlines()
        assert lines and all(len(line) <= 600 for line in lines) and len(lines) <= 51
        return
    assert spec.stages and all(s.name.strip() and printable(s.name) == s.name for s in spec.stages)


@given(st.sampled_from(PLACES), json_values)
def test_a_spec_with_any_value_anywhere_loads_or_fails_cleanly(place: tuple[Any, ...], value: Any) -> None:
    _clean_spec_outcome(yaml.safe_dump(_mutated(place, value), allow_unicode=True))


@given(st.text(alphabet="ab:-[]{}&*!|>'\"\n #0123456789.,%<", max_size=200))
@example("a: &a [*a]")
@example("[" * 200 + "]" * 200)
@example("a: !!python/object:os.system x")
def test_any_text_as_a_spec_loads_or_fails_cleanly(text: str) -> None:
    _clean_spec_outcome(text)


@given(st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=3), scalars, max_size=2),
                 st.from_regex(r"\A[0-9.]{0,6}(ns|us|ms|s|m|h|d|w){0,3}[0-9.]{0,4}(ns|s|m|h|d)?\Z")))
def test_durations_are_finite_bounded_or_a_value_error(value: Any) -> None:
    seconds, error = outcome(lambda: parse_duration(value), ValueError)
    if error is not None:
        assert len(error) < 200
        return
    assert math.isfinite(seconds) and 0 <= seconds <= MAX_DURATION


@given(st.one_of(scalars, st.lists(scalars, max_size=2), st.datetimes().map(lambda d: d.isoformat()),
                 st.from_regex(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")))
def test_times_are_in_range_or_a_value_error(value: Any) -> None:
    ts, error = outcome(lambda: parse_time(value), ValueError)
    if error is not None:
        assert len(error) < 200
        return
    assert 0 <= ts <= MAX_TIME


@given(st.one_of(scalars, st.from_regex(r"\A\s*\d{1,25}(\.\d{1,12})?\s*(B|KB|MiB|GiB|TiB|x)?\s*\Z")))
def test_sizes_are_bounded_or_a_value_error(value: Any) -> None:
    size, error = outcome(lambda: parse_size(value), ValueError)
    if error is not None:
        assert len(error) < 200
        return
    assert 0 <= size <= MAX_SIZE


@given(st.one_of(st.text(max_size=80), st.from_regex(r"\Ahttps?://[a-z0-9:@%./\[\]-]{0,40}\Z")))
def test_url_rule_never_raises_and_never_lets_credentials_through(url: str) -> None:
    problem = url_problem(url)
    if problem is None:
        assert url.startswith(("http://", "https://")) and "@" not in url.split("//", 1)[1].split("/", 1)[0]


@given(st.text(max_size=500), st.integers(min_value=1, max_value=300))
def test_remote_text_is_one_bounded_printable_line(text: str, limit: int) -> None:
    shown = remote_text(text, limit)
    assert len(shown) <= limit + 1 and printable(shown) == shown and "\n" not in shown
