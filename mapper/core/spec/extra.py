"""The analysis parts of the stream spec: segments, event windows, the pinned baseline and
planned changes (the future state). Parsed into frozen values; problems reported with
``file:line`` like the rest of the spec (see :mod:`mapper.core.spec.stream`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mapper.core.calendar import check_cron, cron_starts, zone
from mapper.core.durations import parse_duration, parse_time
from mapper.core.spec import keys
from mapper.core.spec._parse import Problems, name_field
from mapper.core.spec.keys import CHANGE_KINDS
from mapper.core.yamlload import LDict, LList

_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class Segments:
    """How to slice the data: by label values, by hour of day, by day of week."""

    labels: tuple[str, ...] = ()
    hours: bool = True
    weekdays: bool = True


@dataclass(frozen=True)
class EventWindow:
    """A named window (a news event): fixed ``start``..``end`` or recurring by ``cron``
    (five fields or a nickname, evaluated in time zone ``tz``; see :mod:`mapper.core.calendar`)
    lasting ``duration`` seconds."""

    name: str
    place: str
    start: float | None = None
    end: float | None = None
    cron: str | None = None
    duration: float = 0.0
    tz: str = "UTC"


@dataclass(frozen=True)
class Change:
    """A planned change of one hop: ``scale`` its durations by ``value``, ``cap`` them at
    ``value`` seconds, ``remove`` it, or run it in ``parallel`` with stage ``other``."""

    hop: str
    kind: str
    value: float | None = None
    other: str | None = None
    place: str = ""

    def describe(self) -> str:
        if self.kind == "scale":
            return f"{self.hop}: scale x{self.value:g}"
        if self.kind == "cap":
            return f"{self.hop}: cap at {self.value:g}s"
        if self.kind == "parallel":
            return f"{self.hop}: in parallel with {self.other}"
        return f"{self.hop}: removed"


def parse_segments(node: Any, line: int, p: Problems) -> Segments:
    if not isinstance(node, LDict):
        p.add(line, "segments", "must be a mapping like {labels: [region], hours: true, weekdays: true}")
        return Segments()
    for key in node:
        if key not in keys.SEGMENTS:
            p.add(node.line_of(key), f"segments.{key}", f"unknown key (allowed: {', '.join(keys.SEGMENTS)})")
    labels = node.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) and _LABEL.match(x) for x in labels):
        p.add(node.line_of("labels"), "segments.labels", "must be a list of label names")
        labels = []
    return Segments(tuple(labels), bool(node.get("hours", True)), bool(node.get("weekdays", True)))


def parse_events(node: Any, line: int, p: Problems) -> tuple[EventWindow, ...]:
    if not isinstance(node, LList):
        p.add(line, "events", "must be a list of {name, start, end} or {name, cron, duration}")
        return ()
    out = []
    seen: set[str] = set()
    for i, ev in enumerate(node):
        where = f"events[{i}]"
        at = node.line_of(i)
        if not isinstance(ev, LDict):
            p.add(at, where, "must be a mapping")
            continue
        for key in ev:
            if key not in keys.EVENT:
                p.add(ev.line_of(key), f"{where}.{key}", f"unknown key (allowed: {', '.join(keys.EVENT)})")
        # a name people read in the events table: the same rules as a stage's name
        name = name_field(ev, "name", where, p, required=True) or ""
        if name in seen:
            p.add(ev.line_of("name"), f"{where}.name", f"a second event named {name!r}")
        elif name:
            seen.add(name)
        if "cron" in ev:
            cron = str(ev["cron"])
            try:
                check_cron(cron)
            except ValueError as err:
                p.add(ev.line_of("cron"), f"{where}.cron", str(err))
            tz = str(ev.get("tz", "UTC"))
            try:
                zone(tz)
            except ValueError as err:
                p.add(ev.line_of("tz"), f"{where}.tz", str(err))
                tz = "UTC"
            try:
                duration = parse_duration(ev.get("duration", "0"))
            except ValueError as err:
                p.add(ev.line_of("duration"), f"{where}.duration", str(err))
                duration = 0.0
            if duration <= 0:
                p.add(ev.line_of("duration") if "duration" in ev else at, f"{where}.duration",
                      "a recurring event needs a duration > 0")
            out.append(EventWindow(name, p.at(at), cron=cron, duration=duration, tz=tz))
            continue
        try:
            start, end = parse_time(ev["start"]), parse_time(ev["end"])
        except KeyError as err:
            p.add(at, where, f"give start and end (or cron and duration); missing {err.args[0]}")
            continue
        except ValueError as err:
            p.add(at, where, str(err))
            continue
        if "tz" in ev:
            p.add(ev.line_of("tz"), f"{where}.tz", "tz applies to cron events (give start/end with an offset)")
        if end <= start:
            p.add(ev.line_of("end"), f"{where}.end", "must be after start")
        out.append(EventWindow(name, p.at(at), start=start, end=end))
    return tuple(out)


def parse_changes(node: Any, line: int, stage_names: set[str], p: Problems) -> tuple[Change, ...]:
    if not isinstance(node, LList):
        p.add(line, "future", "must be a list like [{hop: alerting, scale: 0.5}]")
        return ()
    out = []
    for i, ch in enumerate(node):
        where, at = f"future[{i}]", node.line_of(i)
        if not isinstance(ch, LDict):
            p.add(at, where, "must be a mapping")
            continue
        made = change_from(dict(ch), stage_names)
        if isinstance(made, str):
            p.add(at, where, made)
        else:
            out.append(Change(made.hop, made.kind, made.value, made.other, p.at(at)))
    return tuple(out)


def change_from(d: dict[str, Any], stage_names: set[str]) -> Change | str:
    """A Change from ``{hop: x, scale|cap|remove|parallel: ...}``, or the reason it is not one."""
    hop = d.get("hop")
    if hop not in stage_names:
        return f"hop {hop!r} is not a stage (stages: {', '.join(sorted(stage_names))})"
    kinds = [k for k in CHANGE_KINDS if k in d]
    extra = set(d) - {"hop", *CHANGE_KINDS}
    if len(kinds) != 1 or extra:
        return "give hop and exactly one of scale, cap, remove, parallel"
    kind = kinds[0]
    v = d[kind]
    if kind == "scale":
        if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
            return f"scale must be a factor >= 0, got {v!r}"
        return Change(hop, kind, float(v))
    if kind == "cap":
        try:
            return Change(hop, kind, parse_duration(v))
        except ValueError as err:
            return f"cap: {err}"
    if kind == "parallel":
        if v not in stage_names or v == hop:
            return f"parallel must name another stage, got {v!r}"
        return Change(hop, kind, None, str(v))
    if v not in (True, None):
        return "remove takes no value (remove: true)"
    return Change(hop, "remove")


# --------------------------------------------------------------------------- cron


def occurrences(ev: EventWindow, start: float, end: float) -> list[tuple[float, float]]:
    """The event's ``(start, end)`` intervals overlapping ``[start, end]`` (unix seconds);
    a recurring event fires in its own time zone (:mod:`mapper.core.calendar`)."""
    if ev.cron is None:
        s, e = ev.start or 0.0, ev.end or 0.0
        return [(s, e)] if e > start and s < end else []
    return [(t, t + ev.duration) for t in cron_starts(ev.cron, ev.tz, start - ev.duration, end)
            if t + ev.duration > start]
