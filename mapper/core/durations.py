"""Durations, units and timestamps as the spec and the CLI write them.

Durations use Prometheus's notation (``250ms``, ``1.5s``, ``24h``, ``1h30m``); values without
a unit are seconds. Timestamps are RFC 3339 or unix seconds. All results are in seconds, the
only unit latmap uses internally.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from mapper.core.redact import quoted

#: Factor from each accepted unit to seconds.
UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
}

#: Longer is a typo (``999999d``), not a duration: 100 years.
MAX_DURATION = 100 * 365 * 86400.0
#: The last second a datetime can show (9999-12-31T23:59:59Z).
MAX_TIME = 253402300799.0

_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|ms|s|m|h|d|w)")


def parse_duration(text: str | int | float) -> float:
    """Return seconds for ``text`` (``"250ms"``, ``"1h30m"``, ``1.5``), or raise ValueError.

    Negative, infinite and NaN durations are refused: nothing in latmap can use them; nor
    are durations beyond :data:`MAX_DURATION`. Messages quote at most 40 characters.
    """
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"expected a duration like 24h, got {_kind(text)}")
    if isinstance(text, int | float):
        value = _float(text, "duration")
    else:
        s = text.strip()
        try:
            value = float(s)
        except ValueError:
            pos, value = 0, 0.0
            for match in _PART.finditer(s):
                if match.start() != pos:
                    break
                value += float(match.group(1)) * UNITS[match.group(2)]
                pos = match.end()
            if pos != len(s) or not s:
                raise ValueError(
                    f"not a duration: {quoted(text)} (use e.g. 250ms, 1.5s, 5m, 24h)"
                ) from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"not a duration: {quoted(text)} (must be finite and >= 0)")
    if value > MAX_DURATION:
        raise ValueError(f"not a duration: {quoted(text)} (longer than 100 years)")
    return value


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "nothing" if value is None else type(value).__name__


def format_duration(seconds: float) -> str:
    """Render seconds the way people read latencies: ``850µs``, ``12.3ms``, ``1.20s``, ``24h``."""
    if seconds is None or not math.isfinite(seconds):
        return "∞" if seconds == math.inf else "-"
    a = abs(seconds)
    if a == 0:
        return "0s"
    if a < 1e-3:
        return f"{seconds * 1e6:.3g}µs"
    if a < 1:
        return f"{seconds * 1e3:.3g}ms"
    if a < 120:
        return f"{seconds:.3g}s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if a >= size and a % size == 0:
            return f"{int(seconds // size)}{unit}"
    if a < 7200:
        return f"{seconds / 60:.3g}m"
    return f"{seconds / 3600:.3g}h"


def prom_duration(seconds: float) -> str:
    """Render seconds as a PromQL range (``[...]``): whole milliseconds, largest units."""
    ms = max(1, round(seconds * 1000))
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)


def parse_time(text: str | int | float) -> float:
    """Return unix seconds for an RFC 3339 timestamp, unix seconds, or ``now``.

    Only times from 1970 to the year 9999 are accepted (NaN, ``1e20`` and negative times are
    refused): every time latmap takes becomes a window edge that reports show as a date.
    """
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"expected a time, got {_kind(text)}")
    if isinstance(text, int | float):
        return _in_range(_float(text, "time"), text)
    s = text.strip()
    if s == "now":
        return datetime.now(UTC).timestamp()
    try:
        return _in_range(float(s), text)
    except ValueError as err:
        if "out of range" in str(err):
            raise
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a time: {quoted(text)} (use RFC 3339 like 2026-11-25T06:00:00Z, or unix seconds)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return _in_range(dt.timestamp(), text)


def _float(value: int | float, what: str) -> float:
    """``value`` as a float; an integer too large for one is a ValueError like any bad value."""
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"not a {what}: a number too large for one") from None


def _in_range(ts: float, text: object) -> float:
    if not math.isfinite(ts) or not 0 <= ts <= MAX_TIME:
        raise ValueError(f"not a time: {quoted(text)} out of range (1970 to 9999, unix seconds or RFC 3339)")
    return ts


def format_time(ts: float) -> str:
    """RFC 3339 in UTC with a ``Z``, to the second (how reports show window edges)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
