"""The starter spec ``latmap discover --prometheus`` drafts from histogram families.

Rules, in order (docs/commands.md documents them too):

1. **Time only.** A family is proposed when its unit is time: the metadata ``unit``
   (``seconds``, ``milliseconds``, ...) or, without one, the name's unit suffix by the
   Prometheus naming conventions (``_seconds``, ``_milliseconds``, ``_microseconds``,
   ``_nanoseconds``). ``_bytes``, ``_samples`` and unit-less histograms are listed in a
   comment as not proposed. Every measurement gets its ``unit:``.
2. **Stages.** One group per value of the family's ``service`` label, else of its ``job``
   label, else per metric-name prefix (the name's first word). A family with several values
   of the grouping label goes to each of them, with a selector. Within a group, the first
   wait and the first process histogram (by name) make the group's stage; further ones make
   further stages named ``<group>-<metric>``.
3. **Wait or process** is a guess from the name: a word starting with ``wait``, ``queue``,
   ``backlog``, ``lag`` or ``delay`` makes it a wait; anything else a process. Every guess is
   marked with a ``# guess:`` comment on its line.

The draft loads and maps as written; stage order and owners are for people to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mapper.core.escape import yaml_comment, yaml_scalar

#: Name suffixes (Prometheus conventions) and metadata units that are time, as spec units.
TIME_SUFFIXES = {"seconds": "s", "milliseconds": "ms", "microseconds": "us", "nanoseconds": "ns"}
TIME_UNITS = {**TIME_SUFFIXES, "s": "s", "ms": "ms", "us": "us", "ns": "ns", "second": "s", "millisecond": "ms"}
WAIT_WORDS = ("wait", "queue", "backlog", "lag", "delay")
GROUP_LABELS = ("service", "job")


@dataclass(frozen=True)
class Candidate:
    """A histogram family as the draft sees it."""

    name: str
    labels: Mapping[str, list[str]]
    unit: str = ""  # metadata unit, "" when none


@dataclass(frozen=True)
class Proposed:
    name: str
    unit: str
    selector: tuple[tuple[str, str], ...]
    part: str
    why: str


def time_unit(name: str, unit: str = "") -> str | None:
    """The spec unit of a time histogram (``"s"``, ``"ms"``...), ``None`` when not time."""
    if unit:
        return TIME_UNITS.get(unit.lower())
    return TIME_SUFFIXES.get(name.rsplit("_", 1)[-1]) if "_" in name else None


def guess_part(name: str) -> tuple[str, str]:
    """``("wait" | "process", why)`` from the metric name's words."""
    for word in name.split("_"):
        for w in WAIT_WORDS:
            if word.startswith(w):
                return "wait", f'name has "{word}"'
    return "process", f"no {'/'.join(WAIT_WORDS)} in the name"


def groups(families: Iterable[Candidate]) -> tuple[dict[str, list[Proposed]], list[str]]:
    """Proposed measurements per group, and the names not proposed (with why)."""
    out: dict[str, list[Proposed]] = {}
    skipped: list[str] = []
    for f in sorted(families, key=lambda f: f.name):
        unit = time_unit(f.name, f.unit)
        if unit is None:
            skipped.append(f"{f.name} (unit {f.unit or 'from its name'}: not time)")
            continue
        part, why = guess_part(f.name)
        label = next((k for k in GROUP_LABELS if f.labels.get(k)), None)
        values = list(f.labels.get(label, [])) if label else []
        if not label or not values:
            out.setdefault(f.name.split("_", 1)[0], []).append(Proposed(f.name, unit, (), part, why))
            continue
        for v in values:
            sel = ((label, v),) if len(values) > 1 else ()
            out.setdefault(v, []).append(Proposed(f.name, unit, sel, part, why))
    return out, skipped


def _measurement(p: Proposed) -> str:
    """One flow mapping on one line. Names and label values come from the Prometheus: each is
    a quoted scalar (:func:`yaml_scalar`) and the comment one line (:func:`yaml_comment`), so
    a newline, ``#`` or ``: `` in them cannot add a key to the draft. The key (``service`` or
    ``job``) and the unit are latmap's own words (:data:`GROUP_LABELS`, :data:`TIME_UNITS`)."""
    sel = ""
    if p.selector:
        sel = ", selector: {" + ", ".join(f"{k}: {yaml_scalar(v)}" for k, v in p.selector) + "}"
    return (f"{{source: prom, histogram: {yaml_scalar(p.name)}, unit: {p.unit}{sel}}}"
            f"  # guess: {yaml_comment(f'{p.part} ({p.why})')}")


def _short(group: str, name: str) -> str:
    stem = name.rsplit("_", 1)[0] if time_unit(name) else name
    if stem.startswith(group.replace("-", "_") + "_"):
        stem = stem[len(group) + 1:]
    return f"{group}-{stem.replace('_', '-')}"


def draft_stages(families: Iterable[Candidate]) -> str:
    """The ``stages:`` block (YAML text with guess comments) and the not-proposed note."""
    grouped, skipped = groups(families)
    lines = ["stages:"]
    used: set[str] = set()
    for group in sorted(grouped):
        ms = grouped[group]
        waits = [m for m in ms if m.part == "wait"]
        procs = [m for m in ms if m.part == "process"]
        for k in range(max(len(waits), len(procs))):
            pair = [p for p in (waits[k] if k < len(waits) else None, procs[k] if k < len(procs) else None) if p]
            name = group if k == 0 else _short(group, pair[0].name)
            while name in used:
                name += "-2"
            used.add(name)
            lines += [f"  - name: {yaml_scalar(name)}", "    owner: TODO"]
            lines += [f"    {p.part}: {_measurement(p)}" for p in pair]
    if len(lines) == 1:
        lines = ["stages: []  # no time histograms found"]
    if skipped:
        lines.append("# not proposed (not a time unit): " + yaml_comment(", ".join(skipped)))
    return "\n".join(lines) + "\n"
