"""Datadog APM span events into span columns, so that Datadog traces map like OTLP ones.

The input is the ``data`` array of a page of ``POST /api/v2/spans/events/search`` or
``GET /api/v2/spans/events``: items ``{"id": ..., "type": "spans", "attributes": {...}}``. This
module only converts (no HTTP); the pager that fetches the pages uses :func:`page_cursor`.

Mapping, per event's ``attributes``:

* ``trace_hi = 0``, ``trace_lo = int(trace_id)``. Datadog's ``trace_id`` is the decimal low 64
  bits of the trace id. The upper half (the ``_dd.p.tid`` tag) is only on some spans of a trace
  (the first span of each chunk), so using it would split one trace into two.
* ``span_id = int(span_id)``, ``parent_id = int(parent_id)``; ``"0"`` is a root (0 = none).
  Ids are decimal strings (or JSON integers) that must fit an unsigned 64-bit integer.
* ``start_ns`` from ``start_timestamp`` (ISO 8601 UTC, ``2023-06-29T09:50:52.472Z`` or
  ``...:03.54Z``: millisecond precision at best). ``end_ns = start_ns + custom.duration`` (the
  exact duration, in nanoseconds) when there is one, else from ``end_timestamp``.
* ``kind`` from ``custom.span.kind`` (``server``, ``client``, ``producer``, ``consumer``,
  ``internal``, any case) to the OTLP values; anything else is ``KIND_UNSPECIFIED``.
* ``status`` is 2 (OTLP ERROR) when ``status == "error"`` or ``custom.error`` is set (an error
  object, or a true flag); else 0 (unset).
* ``service`` is ``service`` (``unknown_service`` when absent, as for OTLP); ``name`` is
  ``resource_name``, else ``custom.operation_name``, else ``operation_name``, else ``""``.
* The attribute columns (:data:`mapper.core.spans.ATTRIBUTE_COLUMNS`) come from the nested
  ``custom`` object: ``messaging.destination.name`` is
  ``custom["messaging"]["destination"]["name"]``; a flat dotted key is accepted too. Only
  string values are kept. Strings longer than ``MAX_VALUE_CHARS`` are cut, as for OTLP.
* Links: not read (the span search's events do not carry them as fields), so the ``link_*``
  columns and :attr:`~collectors.spans.SpanBatch.links` are empty. The spans still go
  through the same item logic as OTLP (:mod:`mapper.analysis.items`): a consumer in another trace is
  its own item, counted in ``incomplete-traces``.

A span that cannot be placed (no or a bad id, timestamp or duration) is set aside and counted
by a one-line reason; it never fails the page. Only a page of the wrong shape (``data`` not a
list, an item without an ``attributes`` object) raises :class:`~mapper.core.errors.SourceError`.
Timestamps are parsed by numpy in one call per column, with a loop only to find bad ones.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from collectors.otlp.codec import MAX_VALUE_CHARS, UNKNOWN_SERVICE
from mapper.core.errors import SourceError
from mapper.core.spans import (
    ATTRIBUTE_COLUMNS,
    KIND_CLIENT,
    KIND_CONSUMER,
    KIND_INTERNAL,
    KIND_PRODUCER,
    KIND_SERVER,
    KIND_UNSPECIFIED,
    SpanBatch,
)

__all__ = ["page_cursor", "spans_from_events"]

#: OTLP ``STATUS_CODE_ERROR``.
STATUS_ERROR = 2

_KINDS = {"server": KIND_SERVER, "client": KIND_CLIENT, "producer": KIND_PRODUCER,
          "consumer": KIND_CONSUMER, "internal": KIND_INTERNAL}
_U64_MAX = 2**64 - 1
_I64_MAX = 2**63 - 1
_NAT = np.iinfo(np.int64).min  # what NaT is as int64
_ATTRIBUTE_PATHS = [(column, tuple(key.split("."))) for key, column in ATTRIBUTE_COLUMNS.items()]


def spans_from_events(events: Sequence[Mapping[str, Any]], where: str) -> tuple[SpanBatch, Counter[str]]:
    """Convert the ``data`` array of a Datadog spans page into a :class:`SpanBatch`.

    ``where`` names the page (a URL and page number, a file) in error messages. Returns the
    batch, in the order of ``events``, and a Counter of spans set aside by reason (a one-line
    reason each, e.g. ``"no trace_id"``, ``"bad start_timestamp"``). Raises
    :class:`SourceError` (``"{where}: data[3]: not a span event"``) only for a page of the
    wrong shape.
    """
    if not isinstance(events, (list, tuple)):
        raise SourceError(f"{where}: data: expected a list of span events, got {type(events).__name__}")
    rows = _Rows()
    set_aside: Counter[str] = Counter()
    for i, event in enumerate(events):
        attributes = event.get("attributes") if isinstance(event, Mapping) else None
        if not isinstance(attributes, Mapping):
            raise SourceError(f"{where}: data[{i}]: not a span event")
        reason = rows.add(attributes)
        if reason:
            set_aside[reason] += 1
    return rows.finish(set_aside), set_aside


def page_cursor(body: Mapping[str, Any]) -> str | None:
    """The cursor of the next page (``meta.page.after``), or None on the last page."""
    after = _walk(body, ("meta", "page", "after"))
    return after if isinstance(after, str) and after else None


class _Rows:
    """Columns being collected, one Python loop step per span; timestamps are parsed at the end."""

    def __init__(self) -> None:
        self.trace: list[int] = []
        self.span: list[int] = []
        self.parent: list[int] = []
        self.start: list[Any] = []
        self.end: list[Any] = []
        self.duration: list[int] = []  # -1: none, take end_timestamp
        self.kind: list[int] = []
        self.status: list[int] = []
        self.service: list[str] = []
        self.name: list[str] = []
        self.attrs: dict[str, list[str | None]] = {column: [] for column, _ in _ATTRIBUTE_PATHS}

    def add(self, attributes: Mapping[str, Any]) -> str | None:
        """Append one span; the reason it is set aside instead, if any."""
        trace, reason = _id(attributes, "trace_id", zero_ok=False)
        if reason:
            return reason
        span, reason = _id(attributes, "span_id", zero_ok=False)
        if reason:
            return reason
        parent, reason = _id(attributes, "parent_id", zero_ok=True)
        if reason:
            return reason
        custom = attributes.get("custom")
        if not isinstance(custom, Mapping):
            custom = {}
        duration, reason = _duration(custom.get("duration"))
        if reason:
            return reason
        self.trace.append(trace)
        self.span.append(span)
        self.parent.append(parent)
        self.start.append(attributes.get("start_timestamp"))
        self.end.append(attributes.get("end_timestamp") if duration < 0 else None)
        self.duration.append(duration)
        kind = _lookup(custom, ("span", "kind"))
        self.kind.append(_KINDS.get(kind.lower(), KIND_UNSPECIFIED) if isinstance(kind, str) else KIND_UNSPECIFIED)
        self.status.append(STATUS_ERROR if _is_error(attributes, custom) else 0)
        self.service.append(_text(attributes.get("service")) or UNKNOWN_SERVICE)
        self.name.append(_text(attributes.get("resource_name")) or _text(custom.get("operation_name"))
                         or _text(attributes.get("operation_name")) or "")
        for column, path in _ATTRIBUTE_PATHS:
            self.attrs[column].append(_text(_lookup(custom, path)))
        return None

    def finish(self, set_aside: Counter[str]) -> SpanBatch:
        """The batch of the spans whose times are good; counts the others into ``set_aside``."""
        n = len(self.trace)
        if not n:
            return SpanBatch.empty()
        start, start_ok = _timestamps(self.start)
        end, end_ok = _timestamps(self.end)
        duration = np.array(self.duration, dtype=np.int64)
        has_duration = duration >= 0
        with np.errstate(over="ignore"):
            end = np.where(has_duration, start + duration, end)  # int64 wraps on overflow: caught below
        no_start = np.array([t is None or t == "" for t in self.start], dtype=bool)
        no_end = np.array([t is None or t == "" for t in self.end], dtype=bool) & ~has_duration
        checks = [
            ("no start_timestamp", no_start),
            ("bad start_timestamp", ~start_ok),
            ("no end_timestamp", no_end),
            ("bad end_timestamp", ~end_ok & ~has_duration),
            ("duration too large", has_duration & (end < start)),
            ("end_timestamp before start_timestamp", end < start),
        ]
        bad = np.zeros(n, dtype=bool)
        for reason, mask in checks:
            new = mask & ~bad
            count = int(new.sum())
            if count:
                set_aside[reason] += count
                bad |= new
        return SpanBatch.from_columns({
            "trace_hi": np.zeros(n, dtype=np.uint64),
            "trace_lo": np.array(self.trace, dtype=np.uint64),
            "span_id": np.array(self.span, dtype=np.uint64),
            "parent_id": np.array(self.parent, dtype=np.uint64),
            "start_ns": start,
            "end_ns": end,
            "kind": np.array(self.kind, dtype=np.int8),
            "status": np.array(self.status, dtype=np.int8),
            "service": np.array(self.service, dtype=object),
            "name": np.array(self.name, dtype=object),
            **{column: np.array(values, dtype=object) for column, values in self.attrs.items()},
        }).take(~bad)


def _id(attributes: Mapping[str, Any], key: str, *, zero_ok: bool) -> tuple[int, str | None]:
    """A decimal id as an int, or the reason it is unusable."""
    value = attributes.get(key)
    if value is None or value == "":
        return 0, f"no {key}"
    number: int | None = None
    if isinstance(value, str):
        if len(value) <= 20 and value.isascii() and value.isdigit():
            number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    if number is None or not 0 <= number <= _U64_MAX:
        return 0, f"{key} not a 64-bit number"
    if number == 0 and not zero_ok:
        return 0, f"{key} is 0"
    return number, None


def _duration(value: Any) -> tuple[int, str | None]:
    """``custom.duration`` in ns (-1 when absent), or the reason it is unusable."""
    if value is None:
        return -1, None
    if isinstance(value, float) and math.isfinite(value):
        value = round(value)
    if not isinstance(value, int) or isinstance(value, bool):
        return -1, "duration not a number"
    if value < 0:
        return -1, "negative duration"
    if value > _I64_MAX:
        return -1, "duration too large"
    return value, None


def _timestamps(texts: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """ISO 8601 UTC texts as int64 ns since the epoch, and a mask of the ones that parsed."""
    cleaned = [_utc_body(t) for t in texts]
    # Parsed twice, in µs and ns: a date past 2262 wraps around in ns without an error, and
    # the two then disagree. Datadog's times have at most millisecond precision.
    micros = _datetime64(cleaned, "us").astype(np.int64)
    nanos = _datetime64(cleaned, "ns").astype(np.int64)
    ok = (micros != _NAT) & (nanos != _NAT) & (nanos // 1000 == micros)
    return np.where(ok, nanos, 0), ok


def _utc_body(text: Any) -> str:
    """The date-time text without its UTC designator, for numpy; ``"NaT"`` when it is not UTC."""
    if not isinstance(text, str):
        return "NaT"
    if text.endswith(("Z", "z")):
        body = text[:-1]
    elif text.endswith("+00:00"):
        body = text[:-6]
    else:
        return "NaT"  # no zone (local time?) or another offset: not the UTC that Datadog sends
    if len(body) < 19 or body[10] != "T" or "+" in body or "-" in body[10:]:
        return "NaT"
    return body


def _datetime64(cleaned: list[str], unit: Literal["us", "ns"]) -> np.ndarray:
    """One vectorised parse; only when it fails, one parse per text to find the bad ones (NaT)."""
    try:
        return np.array(cleaned, dtype=f"datetime64[{unit}]")
    except ValueError:
        pass
    out = np.full(len(cleaned), np.datetime64("NaT", unit))
    for i, body in enumerate(cleaned):
        with contextlib.suppress(ValueError):  # a bad timestamp stays NaT
            out[i] = np.datetime64(body, unit)
    return out


def _is_error(attributes: Mapping[str, Any], custom: Mapping[str, Any]) -> bool:
    if attributes.get("status") == "error":
        return True
    error = custom.get("error")
    if isinstance(error, Mapping):
        return True  # {"message": ..., "type": ..., "stack": ...}
    if isinstance(error, str):
        return error.strip().lower() not in ("", "0", "false")
    return bool(error)


def _lookup(node: Any, path: tuple[str, ...]) -> Any:
    """``custom`` at a dotted path, nested (``{"span": {"kind": ...}}``) or flat (``"span.kind"``)."""
    for cut in range(1, len(path) + 1):
        if not isinstance(node, Mapping):
            return None
        key = ".".join(path[:cut])
        if key in node:
            found = node[key] if cut == len(path) else _lookup(node[key], path[cut:])
            if found is not None:
                return found
    return None


def _walk(node: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _text(value: Any) -> str | None:
    return value[:MAX_VALUE_CHARS] if isinstance(value, str) else None
