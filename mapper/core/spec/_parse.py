"""The spec parser's shared helpers: the problem collector and typed field readers.

Package-private to ``mapper.core.spec``: its names are public inside the package so that the
stream, Datadog and extra parsers share one way to report ``file:line: field: message``.
"""

from __future__ import annotations

from mapper.core.durations import parse_duration
from mapper.core.errors import SpecError
from mapper.core.redact import is_unicode_text, printable
from mapper.core.sizes import parse_size
from mapper.core.yamlload import LDict

#: The longest problem line, and the most problems reported at once.
MAX_MESSAGE = 400
MAX_PROBLEMS = 50
#: The longest name (stage, owner) a report will show.
MAX_NAME = 200


class Problems:
    """Collects every problem found in one spec, each with its ``file:line``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[str] = []

    def at(self, line: int) -> str:
        return f"{self.path}:{line}"

    def add(self, line: int, field_name: str, message: str) -> None:
        # Bounded: a message quotes what the spec said, and the spec may be hostile (an alias
        # bomb's 10^9 elements, a 1 MB name); one problem is one readable line.
        text = printable(f"{self.path}:{line}: {field_name}: {message}")
        self.items.append(text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…")

    def raise_if_any(self) -> None:
        if self.items:
            shown = self.items[:MAX_PROBLEMS]
            if len(self.items) > MAX_PROBLEMS:
                shown.append(f"{self.path}: ... and {len(self.items) - MAX_PROBLEMS} more problems")
            raise SpecError("\n".join(shown))


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


def name_field(node: LDict, key: str, where: str, p: Problems, required: bool = False) -> str | None:
    """A name people read in every report (a stage, an owner): a non-empty string of at most
    :data:`MAX_NAME` characters without control characters (a newline breaks the table, an
    ESC sequence reaches the terminal). Numbers are refused too: ``name: 1e3`` is a typo."""
    field_name = f"{where}.{key}" if where else key
    if key not in node or node[key] is None:
        if required:
            p.add(node.line, field_name, "is required")
        return None
    value = node[key]
    if not isinstance(value, str):
        p.add(node.line_of(key), field_name, "must be a string")
        return None
    if not value.strip():
        p.add(node.line_of(key), field_name, "must not be empty")
        return None
    if printable(value) != value:
        p.add(node.line_of(key), field_name, "must not contain control characters (newline, tab, escape ...)")
        return None
    if not is_unicode_text(value):
        p.add(node.line_of(key), field_name, "must be Unicode text (it holds a lone surrogate, \\ud800-\\udfff)")
        return None
    if len(value) > MAX_NAME:
        p.add(node.line_of(key), field_name, f"longer than {MAX_NAME} characters")
        return None
    return value


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
