"""The spec parser's shared helpers: the problem collector and typed field readers.

Package-private to ``mapper.core.spec``: its names are public inside the package so that the
stream, Datadog and extra parsers share one way to report ``file:line: field: message``.
"""

from __future__ import annotations

from mapper.core.durations import parse_duration
from mapper.core.errors import SpecError
from mapper.core.sizes import parse_size
from mapper.core.yamlload import LDict


class Problems:
    """Collects every problem found in one spec, each with its ``file:line``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[str] = []

    def at(self, line: int) -> str:
        return f"{self.path}:{line}"

    def add(self, line: int, field_name: str, message: str) -> None:
        self.items.append(f"{self.path}:{line}: {field_name}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError("\n".join(self.items))


def check_keys(node: LDict, allowed: tuple[str, ...], where: str, p: Problems) -> None:
    for key in node:
        if key not in allowed:
            p.add(node.line_of(key), f"{where}.{key}" if where else str(key),
                  f"unknown key (allowed: {', '.join(allowed)})")


def str_field(node: LDict, key: str, where: str, p: Problems, required: bool = False) -> str | None:
    if key not in node or node[key] is None:
        if required:
            p.add(node.line, f"{where}.{key}" if where else key, "is required")
        return None
    value = node[key]
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        p.add(node.line_of(key), f"{where}.{key}" if where else key, "must be a string")
        return None
    return str(value)


def duration_field(node: LDict, key: str, where: str, p: Problems, default: float) -> float:
    if key not in node:
        return default
    try:
        return parse_duration(node[key])
    except ValueError as err:
        p.add(node.line_of(key), f"{where}.{key}" if where else key, str(err))
        return default


def retries_timeout(node: LDict, where: str, p: Problems) -> tuple[int, float]:
    """A remote source's ``retries`` (0..10, default 3) and ``timeout`` (> 0, default 30s)."""
    retries = node.get("retries", 3)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
        p.add(node.line_of("retries"), f"{where}.retries", "must be a whole number from 0 to 10")
        retries = 3
    timeout = duration_field(node, "timeout", where, p, 30.0)
    if timeout <= 0:
        p.add(node.line_of("timeout"), f"{where}.timeout", "must be > 0")
        timeout = 30.0
    return retries, timeout


#: A source's answers are read up to this many bytes by default (``max_response``): a
#: latency query answers kilobytes, so 32 MiB is generous and still bounds the memory a
#: misbehaving (or hostile) server can make latmap spend.
DEFAULT_MAX_RESPONSE = 32 << 20


def max_response_field(node: LDict, where: str, p: Problems) -> int:
    """A remote source's ``max_response`` (a size, >= 1 KiB; default 32 MiB)."""
    if "max_response" not in node:
        return DEFAULT_MAX_RESPONSE
    try:
        size = parse_size(node["max_response"])
    except ValueError as err:
        p.add(node.line_of("max_response"), f"{where}.max_response", str(err))
        return DEFAULT_MAX_RESPONSE
    if size < 1024:
        p.add(node.line_of("max_response"), f"{where}.max_response", "must be at least 1KiB")
        return DEFAULT_MAX_RESPONSE
    return size
