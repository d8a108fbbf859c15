"""Recurring event windows: cron expressions in a time zone, DST-correct.

Cron semantics come from ``cronsim`` (the evaluator healthchecks.io runs): day-of-month and
weekday are ORed when both are restricted, ``7`` and ``SUN`` are Sunday, month and day names
and ``L``/``#`` work, and a time that a DST change skips or repeats is handled the way cron
daemons do. The ``@hourly``/``@daily``/... nicknames are expanded here (cronsim takes five
fields only). Times are evaluated in the event's ``tz`` (an IANA name, default UTC), so
"09:30 New York" is 14:30 UTC in January and 13:30 UTC in July.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mapper.core.redact import quoted

#: The nicknames cron accepts, as five fields.
NICKNAMES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
#: A cron that fires more often than this over one window is refused (every minute for a year).
MAX_OCCURRENCES = 600_000
#: The longest IANA key is about 30 characters; a longer one is not a zone, and would reach the
#: file system as a name too long for it.
MAX_ZONE_NAME = 64


def expand(expr: str) -> str:
    """The five-field form of ``expr`` (nicknames expanded, whitespace normalised)."""
    text = " ".join(expr.split())
    return NICKNAMES.get(text.lower(), text)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ValueError naming it when unknown.

    ZoneInfo reads a file named by the key: a key that names a directory (``America``), is too
    long for a file name, or is not a key at all raises OSError or ValueError of its own; every
    one of them is "unknown time zone" here."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_ZONE_NAME:
        raise ValueError(f"unknown time zone {quoted(name)} (an IANA name like America/New_York)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as err:
        raise ValueError(f"unknown time zone {quoted(name)} (an IANA name like America/New_York)") from err


def check_cron(expr: str) -> None:
    """Raise ValueError with a one-line reason when ``expr`` is not a valid cron expression."""
    from cronsim import CronSim, CronSimError

    try:
        CronSim(expand(expr), datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as err:
        raise ValueError(f"invalid cron expression {expr!r}: {err}") from None


def cron_starts(expr: str, tz: str, start: float, end: float) -> list[float]:
    """Unix times at which ``expr`` fires in zone ``tz`` within ``[start, end)``."""
    from cronsim import CronSim

    z = zone(tz)
    # cronsim yields times strictly after its start; begin one second early to include start.
    it = CronSim(expand(expr), datetime.fromtimestamp(start, z) - timedelta(seconds=1))
    out: list[float] = []
    while True:
        try:
            when = next(it)
        except (StopIteration, OverflowError, ValueError):
            break  # no more firings, or the next one lies past year 9999: none in the window
        t = when.timestamp()
        if t >= end:
            break
        out.append(t)
        if len(out) > MAX_OCCURRENCES:
            raise ValueError(f"cron expression {expr!r} fires more than {MAX_OCCURRENCES:,} times in the window")
    return out


def cron_fields(expr: str) -> tuple[tuple[frozenset[int], ...], bool]:
    """The five fields as sets (minute, hour, day, month, weekday with 0 = Sunday) and whether
    day and weekday are ORed (both restricted), for PromQL's UTC time functions. ``L`` and
    ``#`` have no set form: ValueError."""
    from cronsim import CronSim, CronSimError

    try:
        c = CronSim(expand(expr), datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as err:
        raise ValueError(f"invalid cron expression {expr!r}: {err}") from None
    raw: list[set[object]] = [set(c.minutes), set(c.hours), set(c.days), set(c.months), set(c.weekdays)]
    ints = [{v for v in s if isinstance(v, int) and v >= 0} for s in raw]
    if any(len(i) != len(s) for i, s in zip(ints, raw, strict=True)):
        raise ValueError(f"cron expression {expr!r} uses L or # (no PromQL form)")
    sets = [*ints[:4], {w % 7 for w in ints[4]}]
    parts = expand(expr).split()
    day_or = parts[2] != "*" and parts[4] != "*" and not c.day_and
    return tuple(frozenset(s) for s in sets), day_or
