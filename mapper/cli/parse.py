"""Option values the CLI parses itself (durations, times, sizes), each refused with a
UsageError that names the option, so every command words the same mistake the same way."""

from __future__ import annotations

from mapper.core.durations import parse_duration, parse_time
from mapper.core.errors import UsageError
from mapper.core.sizes import parse_size


def duration_of(value: str | None, option: str) -> float | None:
    """Seconds from ``250ms``, ``5m``, ``24h`` (``None`` when not given); must be > 0."""
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as err:
        raise UsageError(f"{option}: {err}") from None
    if seconds <= 0:
        raise UsageError(f"{option}: must be > 0")
    return seconds


def time_of(value: str | None, option: str) -> float | None:
    """Unix seconds from RFC 3339 or unix seconds (``None`` when not given)."""
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as err:
        raise UsageError(f"{option}: {err}") from None


def size_of(text: str, option: str) -> int:
    """Bytes from ``10GiB``, ``500MB``, ``1048576``."""
    try:
        return parse_size(text)
    except ValueError as err:
        raise UsageError(f"{option}: {err}") from None
