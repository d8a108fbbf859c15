"""The stages ``latmap discover --prometheus`` drafts from histogram families.

Rules, in order (docs/sources/prometheus.md documents them too):

1. **Left out, with the reason**: infrastructure (``prometheus_*``, ``go_*``, ``process_*``,
   ``promhttp_*``, scrape series), latmap's own series (its lead time is an end to end, never
   a stage) and sizes (``*_bytes``, ``*_size*``, unit bytes); series of an exporter's own
   ``/metrics`` endpoint; histograms whose unit is not time.
2. **Known exporters** (:mod:`mapper.app.exporters`): their unit, the labels naming the
   service and the labels telling units of work apart (Flower's ``task``, Spring's ``uri`` and
   ``method``, spanmetrics' ``span_name`` ...). latmap's live ``latmap_stage_*_seconds`` give
   one stage per ``stage`` label.
3. **Units of work.** Without a convention, a label among :data:`WORK_LABELS` with several
   values splits the family: one candidate stage per (service, unit of work), with its
   selector. The service is the ``service`` label, else ``job``; under a ``job`` shared by
   several name prefixes, each prefix is a service of its own.
4. **Pairs.** A wait and a process histogram make one stage only when service, unit of work
   and exporter are the same; further ones make ``<stage>-<metric>`` stages.
5. **Wait or process** comes from the convention, else is a guess from the name (a word
   starting with ``wait``, ``queue``, ``backlog``, ``lag`` or ``delay`` is a wait) marked
   ``# guess:``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mapper.app.exporters import SCRAPE_PATHS, WORK_LABELS, convention, left_out
from mapper.core.escape import yaml_comment, yaml_scalar
from mapper.core.model import Check
from mapper.core.spec import StreamSpec

#: Name suffixes (Prometheus conventions) and metadata units that are time, as spec units.
TIME_SUFFIXES = {"seconds": "s", "milliseconds": "ms", "microseconds": "us", "nanoseconds": "ns"}
TIME_UNITS = {**TIME_SUFFIXES, "s": "s", "ms": "ms", "us": "us", "ns": "ns", "second": "s", "millisecond": "ms"}
WAIT_WORDS = ("wait", "queue", "backlog", "lag", "delay")
GROUP_LABELS = ("service", "job")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.]+")


@dataclass(frozen=True)
class Candidate:
    """A histogram family as the draft sees it: its label values and its series' label sets."""

    name: str
    labels: Mapping[str, list[str]]
    unit: str = ""  # metadata unit, "" when none
    series: tuple[tuple[tuple[str, str], ...], ...] = ()


@dataclass(frozen=True)
class Proposed:
    name: str
    unit: str
    selector: tuple[tuple[str, str], ...]
    part: str
    why: str
    guessed: bool = True


@dataclass(frozen=True)
class DraftStage:
    """One proposed stage; ``service`` is the service it measures ("" when none is known)."""

    name: str
    service: str
    wait: Proposed | None = None
    process: Proposed | None = None
    notes: tuple[str, ...] = ()


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


def _rows(f: Candidate) -> list[dict[str, str]]:
    if f.series:
        return [dict(s) for s in f.series]
    label = next((k for k in GROUP_LABELS if f.labels.get(k)), None)
    return [{label: v} for v in f.labels[label]] if label else [{}]


_Key = tuple[str, str, tuple[tuple[str, str], ...], str]  # service, name prefix, unit of work, exporter


def _family(f: Candidate, out: dict[_Key, list[Proposed]], skipped: list[str]) -> None:
    conv = convention(f.name)
    why_out = left_out(f.name, f.unit)
    unit = conv.unit if conv else time_unit(f.name, f.unit)
    if why_out or unit is None:
        skipped.append(f"{f.name}: {why_out or 'unit ' + (f.unit or 'from its name') + ': not time'}")
        return
    if conv and conv.part:
        part, why, guessed = conv.part, f"{conv.exporter}: {conv.part} per " + (
            "/".join(conv.work) if conv.work else "service"), False
    else:
        part, why = guess_part(f.name)
        guessed = True
    svc_labels = conv.service if conv else GROUP_LABELS
    svc_label = next((k for k in svc_labels if f.labels.get(k)), None)
    work = [k for k in (conv.work if conv else WORK_LABELS) if len(f.labels.get(k, ())) > 1]
    fixed = tuple((k, v) for k, v in (conv.fixed if conv else ()) if v in f.labels.get(k, ()))
    prefix = f.name.split("_", 1)[0]
    scrape = 0
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for row in _rows(f):
        if any(row.get(k) in SCRAPE_PATHS for k in ("handler", "uri", "route", "http_route", "path")):
            scrape += 1
            continue
        svc = row.get(svc_label, "") if svc_label else ""
        wk = tuple((k, row[k]) for k in work if k in row)
        if (svc, wk) in seen:
            continue
        seen.add((svc, wk))
        shared = svc_label in (None, "job") and conv is None
        # An exporter's own service label (Istio's workload, latmap's stage) is always selected.
        sel = ((svc_label, svc),) if svc_label and (len(f.labels[svc_label]) > 1 or svc_label not in GROUP_LABELS) \
            else ()
        key = (svc or prefix, prefix if shared else "", wk, conv.exporter if conv else "")
        out[key].append(Proposed(f.name, unit, sel + wk + fixed, part, why, guessed))
    if scrape:
        skipped.append(f"{f.name} on {'/'.join(SCRAPE_PATHS[:2])}...: the exporter's own scrape endpoint")


def _name(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-._") or "stage"


def _short(base: str, name: str) -> str:
    stem = name.rsplit("_", 1)[0] if time_unit(name) else name
    return _name(f"{base}-{stem}")


def propose(families: Iterable[Candidate]) -> tuple[list[DraftStage], list[str]]:
    """The candidate stages (sorted by service, then unit of work) and the families left out, each
    with why."""
    grouped: dict[_Key, list[Proposed]] = defaultdict(list)
    skipped: list[str] = []
    for f in sorted(families, key=lambda f: f.name):
        _family(f, grouped, skipped)
    prefixes: dict[str, set[str]] = defaultdict(set)
    for svc, prefix, _, _ in grouped:
        prefixes[svc].add(prefix)
    stages: list[DraftStage] = []
    used: set[str] = set()
    for key in sorted(grouped):
        svc, prefix, wk, exporter = key
        base = svc + (f"-{prefix}" if len(prefixes[svc]) > 1 and prefix else "")
        base += "".join(f"-{v}" for _, v in wk)
        ms = grouped[key]
        waits = [m for m in ms if m.part == "wait"]
        procs = [m for m in ms if m.part == "process"]
        for k in range(max(len(waits), len(procs))):
            w = waits[k] if k < len(waits) else None
            p = procs[k] if k < len(procs) else None
            name = _name(base) if k == 0 else _short(base, (w or p).name)  # type: ignore[union-attr]
            if name in used and exporter:
                name = _name(f"{name}-{exporter.split(' ')[0].lower()}")
            while name in used:
                name += "-2"
            used.add(name)
            stages.append(DraftStage(name, svc if not prefix or len(prefixes[svc]) == 1 else "", w, p))
    return stages, skipped


def _measurement(p: Proposed) -> str:
    """One flow mapping on one line. Names and label values come from the Prometheus: each is
    a quoted scalar (:func:`yaml_scalar`) and the comment one line (:func:`yaml_comment`), so
    a newline, ``#`` or ``: `` in them cannot add a key to the draft. The label keys and the
    unit are Prometheus label names and latmap's own words."""
    sel = ""
    if p.selector:
        sel = ", selector: {" + ", ".join(f"{yaml_scalar(k)}: {yaml_scalar(v)}" for k, v in p.selector) + "}"
    note = f"guess: {p.part} ({p.why})" if p.guessed else p.why
    return f"{{source: prom, histogram: {yaml_scalar(p.name)}, unit: {p.unit}{sel}}}  # {yaml_comment(note)}"


def stage_lines(stage: DraftStage) -> list[str]:
    """One stage of the ``stages:`` block, its notes as comments above it."""
    lines = [f"  # {yaml_comment(n)}" for n in stage.notes]
    lines += [f"  - name: {yaml_scalar(stage.name)}", "    owner: TODO  # guess: who owns it?"]
    lines += [f"    {p.part}: {_measurement(p)}" for p in (stage.wait, stage.process) if p]
    return lines


def stages_block(stages: Iterable[DraftStage], skipped: Iterable[str]) -> str:
    """The ``stages:`` block (YAML text with its comments) and one ``# left out:`` line a family."""
    lines = ["stages:"]
    for s in stages:
        lines += stage_lines(s)
    if len(lines) == 1:
        lines = ["stages: []  # no time histograms found"]
    lines += [f"# left out: {yaml_comment(s)}" for s in skipped]
    return "\n".join(lines) + "\n"


def draft_stages(families: Iterable[Candidate]) -> str:
    """The ``stages:`` block of the families, in the order of :func:`propose`."""
    stages, skipped = propose(families)
    return stages_block(stages, skipped)


def draft_check(spec: StreamSpec) -> list[Check]:
    """The ``spec-draft`` warning of a spec still marked ``draft: true``, naming what to confirm."""
    if not spec.draft:
        return []
    todo = [s.name for s in spec.stages if s.owner in (None, "", "TODO")]
    owners = f", the owners of {', '.join(todo[:8])}{' ...' if len(todo) > 8 else ''}" if todo else ""
    return [Check("warning", "spec-draft", (
        f"{spec.path}:{spec.draft}: a draft (`draft: true`): confirm the stage order{owners} and each "
        "`# guess:` (which histogram is a wait or a process, and its selector), then remove `draft:`"))]
