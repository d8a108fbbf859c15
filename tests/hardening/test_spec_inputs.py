"""A spec or flag value that is valid YAML but no value latmap can use is a one-line error
naming the place, and valid YAML is read as YAML means it (issue 25)."""

from __future__ import annotations

import pytest

from mapper.core.calendar import cron_starts, zone
from mapper.core.durations import parse_duration, parse_time
from mapper.core.errors import SpecError
from mapper.core.spec import loads_spec
from mapper.core.yamlload import load_yaml

SPEC = """\
name: s
sources: {{p: {{kind: prometheus, url: "http://127.0.0.1:9"}}}}
stages: [{{name: {name}, process: {{source: p, histogram: x}}}}]
{extra}"""


@pytest.mark.parametrize("name", ["America", "Etc", "x" * 300, "", "../../etc/passwd", "America/", "/etc"])
def test_a_time_zone_that_is_no_zone_is_a_value_error(name: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        zone(name)


def test_a_cron_event_near_year_9999_ends_the_search_instead_of_overflowing() -> None:
    end_of_time = 253402300799.0  # 9999-12-31T23:59:59Z
    starts = cron_starts("0 14 * * *", "America/New_York", end_of_time - 3 * 86400, end_of_time)
    assert 1 <= len(starts) <= 3


@pytest.mark.parametrize("value", [10**5000, -(10**400), 10**309], ids=["5000-digits", "minus-400-digits", "1e309"])
def test_integers_too_large_for_a_float_are_value_errors(value: int) -> None:
    with pytest.raises(ValueError, match="too large"):
        parse_duration(value)
    with pytest.raises(ValueError, match="too large"):
        parse_time(value)


def test_a_5000_digit_number_in_a_spec_names_its_line() -> None:
    with pytest.raises(SpecError, match=r"^s.yaml:4: a number of 5,000 digits"):
        loads_spec(SPEC.format(name="a", extra="window: " + "1" * 5000 + "\n"), "s.yaml")


def test_a_merge_key_with_an_overriding_key_is_yaml_not_a_duplicate() -> None:
    doc = load_yaml("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  b: 3\ny:\n  <<: [*b, {a: 9, c: 4}]\n  c: 5\n")
    assert doc["x"] == {"a": 1, "b": 3}
    assert doc["y"] == {"a": 1, "b": 2, "c": 5}  # the first merged mapping wins, own keys win over all
    with pytest.raises(SpecError, match="duplicate key 'b'"):
        load_yaml("x:\n  <<: {a: 1}\n  b: 2\n  b: 3\n")


@pytest.mark.parametrize("name", ['"a\\ud800b"', '"\\udfff"'])
def test_a_stage_name_with_a_lone_surrogate_is_refused_with_its_line(name: str) -> None:
    with pytest.raises(SpecError, match=r"s.yaml:3: stages\[0\].name: must be Unicode text"):
        loads_spec(SPEC.format(name=name, extra=""), "s.yaml")
