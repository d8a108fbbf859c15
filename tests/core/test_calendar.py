"""Recurring event windows: cron semantics from cronsim, evaluated in the event's time zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mapper.core.errors import SpecError
from mapper.core.spec import loads_spec
from mapper.core.spec.extra import EventWindow, occurrences
from tests.core.test_spec import GOOD


def _utc(*a: int) -> float:
    return datetime(*a, tzinfo=UTC).timestamp()


def _starts(ev: EventWindow, start: float, end: float) -> list[str]:
    return [datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%d %H:%M") for s, _ in occurrences(ev, start, end)]


def _events(text: str) -> tuple[EventWindow, ...]:
    return loads_spec(GOOD + "events:\n" + text, "stream.yaml").events


def test_new_york_open_is_1430_utc_in_january_and_1330_utc_in_july() -> None:
    (ev,) = _events('  - {name: open, cron: "30 9 * * 1-5", tz: America/New_York, duration: 30m}\n')
    assert ev.tz == "America/New_York" and ev.duration == 1800
    assert _starts(ev, _utc(2026, 1, 12), _utc(2026, 1, 13)) == ["2026-01-12 14:30"]
    assert _starts(ev, _utc(2026, 7, 13), _utc(2026, 7, 14)) == ["2026-07-13 13:30"]
    # the weekend has no open, and the Sunday of the March change moves it by an hour
    assert _starts(ev, _utc(2026, 3, 6), _utc(2026, 3, 10)) == ["2026-03-06 14:30", "2026-03-09 13:30"]


def test_day_of_month_and_weekday_are_ored_when_both_are_restricted() -> None:
    ev = EventWindow("e", "t:1", cron="0 12 1 * 7", duration=60)  # the 1st, and every Sunday
    got = _starts(ev, _utc(2026, 3, 1), _utc(2026, 4, 2))
    assert got[0] == "2026-03-01 12:00" and "2026-04-01 12:00" in got
    assert "2026-03-08 12:00" in got and len(got) == 6  # Sundays 1, 8, 15, 22, 29 and April 1st


def test_names_and_nicknames_are_cron() -> None:
    ev = EventWindow("e", "t:1", cron="@daily", duration=60)
    assert len(_starts(ev, _utc(2026, 1, 1), _utc(2026, 1, 4))) == 3
    ev = EventWindow("e", "t:1", cron="0 8 * JAN MON", duration=60)
    assert _starts(ev, _utc(2026, 1, 1), _utc(2026, 1, 13)) == ["2026-01-05 08:00", "2026-01-12 08:00"]


def test_an_occurrence_that_began_before_the_window_is_included() -> None:
    ev = EventWindow("e", "t:1", cron="50 23 * * *", duration=1200)
    assert _starts(ev, _utc(2026, 1, 2), _utc(2026, 1, 2, 1)) == ["2026-01-01 23:50"]


@pytest.mark.parametrize(("line", "message"), [
    ('  - {name: e, cron: "30 9 * * 1-5", tz: Mars/Olympus, duration: 30m}\n', "events[0].tz: unknown time zone"),
    ('  - {name: e, cron: "61 9 * * *", duration: 30m}\n', "events[0].cron: invalid cron expression"),
    ('  - {name: e, cron: "* * *", duration: 30m}\n', "events[0].cron: invalid cron expression"),
])
def test_a_bad_calendar_is_a_spec_error_with_its_line(line: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        _events(line)
    text = str(err.value)
    assert message in text
    assert f"stream.yaml:{GOOD.count(chr(10)) + 2}" in text
