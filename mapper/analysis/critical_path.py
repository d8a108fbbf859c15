"""The critical path of fan-out items, and the tail attributed along it (CRISP-style).

When one stage hands an item over to several stages in parallel and a *join* stage waits for
all of them (the spec's ``upstream`` lists make a DAG; a join has several upstreams), the
item's lead time is decided by one branch per join: the upstream whose hand-over arrived last.
A fast parallel branch made nobody wait, so blaming it for the tail (as a sum over every
stage would) is wrong. Per item, from the trace table's rows (read through its public
``frame`` and ``stages``; no internals):

* the **critical path**: from the sink that ended last, back through each stage's *critical
  upstream* (the upstream whose rows end last in the item: its hand-over arrived last), to a
  first stage;
* the time on it: each stage's ``process`` on the path, and its ``wait`` from its critical
  upstream (for a stage with one upstream the table's wait, whose hand-over is the precise
  one of :mod:`mapper.analysis.traces`; for a join, its start minus the critical upstream's
  end, since the table measures a join's wait from its first upstream);
* off-path stages get no time.

Aggregated over the *tail items* (lead time at or beyond the ``q`` quantile of the items'
lead times, as :mod:`mapper.analysis.attribution` takes them): per (stage, part) the mean
seconds on the critical path and the mean share of each item's critical-path time (shares of
one item add to 1), the share of tail items whose path runs through the stage, and per join
which upstream decided how often (and the median slack of the others: how much earlier their
hand-over came). Like Uber's CRISP, which walks a trace's last-finishing children back from
its end, here over a value stream's stages and hand-overs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mapper.analysis.traces import TraceTable
from mapper.core.distribution import percentile_label
from mapper.core.durations import format_duration
from mapper.core.model import Check

#: Fewer tail items than this: indicative only (said in a check).
MIN_TAIL_ITEMS = 10
PARTS = ("wait", "process")


@dataclass(frozen=True)
class PathShare:
    """One (stage, part) on the tail items' critical paths: mean seconds and mean share of an
    item's critical-path time (0 for items whose path misses the stage); ``on_path``: the
    share of tail items whose path goes through the stage."""

    stage: str
    part: str
    seconds: float
    share: float
    on_path: float


@dataclass(frozen=True)
class Branch:
    """At join ``join``: how many tail items' last hand-over came from ``upstream``, and the
    median slack (seconds its hand-over came before the last) over the items it did not decide."""

    join: str
    upstream: str
    decided: int
    share: float
    slack: float | None


@dataclass(frozen=True)
class CriticalPathExplanation:
    kind: ClassVar[str] = "critical_path"
    q: float
    items: int
    tail_items: int
    threshold: float | None
    shares: tuple[PathShare, ...]
    branches: tuple[Branch, ...]
    paths: tuple[tuple[tuple[str, ...], int], ...]
    verdict: str
    checks: tuple[Check, ...] = ()

    def share_of(self, stage: str, part: str | None = None) -> float:
        """The mean share of the tail's critical-path time in ``stage`` (one part, or both)."""
        return sum(s.share for s in self.shares if s.stage == stage and (part is None or s.part == part))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "percentile": percentile_label(self.q), "items": self.items,
            "tail_items": self.tail_items, "threshold": self.threshold, "verdict": self.verdict,
            "shares": [{"stage": s.stage, "part": s.part, "seconds": s.seconds, "share": s.share,
                        "on_path": s.on_path} for s in self.shares],
            "branches": [{"join": b.join, "upstream": b.upstream, "decided": b.decided, "share": b.share,
                          "slack": b.slack} for b in self.branches],
            "paths": [{"stages": list(p), "items": n} for p, n in self.paths],
            "checks": [{"level": c.level, "code": c.code, "message": c.message, "stage": c.stage, "part": c.part}
                       for c in self.checks],
        }


def upstreams(stages: Sequence[Any]) -> dict[str, tuple[str, ...]]:
    """``{stage: its upstream stages}`` from the spec's stages (``Stage.upstream``)."""
    return {s.name: tuple(s.upstream) for s in stages}


@dataclass(frozen=True)
class _Grid:
    """The complete items' rows as (item x stage) arrays."""

    stages: tuple[str, ...]
    items: np.ndarray  # the table's item (``trace``) code of each row
    start: np.ndarray
    end: np.ndarray
    process: np.ndarray
    wait: np.ndarray
    lead: np.ndarray


def _stage_codes(col: pd.Series, stages: Sequence[str]) -> np.ndarray:
    """Each row's index in ``stages`` (-1: another stage), from a categorical's codes when it is one."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        at = {s: i for i, s in enumerate(stages)}
        remap = np.array([at.get(str(c), -1) for c in col.cat.categories] + [-1], dtype=np.int64)
        return remap[col.cat.codes.to_numpy()]  # code -1 (missing) reads the last entry
    return np.asarray(pd.Categorical(col.astype(str), categories=list(stages)).codes, dtype=np.int64)


def _grid(table: TraceTable) -> tuple[_Grid, int]:
    """The rows of items that have every stage; and how many items were left out."""
    stages = tuple(table.stages)
    f = table.frame
    n_st = len(stages)
    code = _stage_codes(f["stage"], stages)
    ok = code >= 0
    trace = f["trace"].to_numpy()[ok]
    items, inv = np.unique(trace, return_inverse=True)
    cols = {}
    for c in ("start", "end", "process", "wait"):
        a = np.full((items.size, n_st), np.nan)
        a[inv, code[ok]] = f[c].to_numpy(dtype=float)[ok]
        cols[c] = a
    complete = ~np.isnan(cols["start"]).any(axis=1)
    g = {c: a[complete] for c, a in cols.items()}
    lead = np.nanmax(g["end"], axis=1) - np.nanmin(g["start"], axis=1) if complete.any() else np.zeros(0)
    return _Grid(stages, items[complete], g["start"], g["end"], g["process"], g["wait"], lead), int((~complete).sum())


def _walk(g: _Grid, ups: Mapping[str, Sequence[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per item and stage: on the critical path; the critical upstream's index (-1: none); and
    the wait on the path (0 off it)."""
    n, n_st = g.start.shape
    idx = {s: i for i, s in enumerate(g.stages)}
    up_i = [[idx[u] for u in ups.get(s, ()) if u in idx] for s in g.stages]
    crit = np.full((n, n_st), -1)
    for k, us in enumerate(up_i):
        if us:
            crit[:, k] = np.asarray(us)[np.argmax(g.end[:, us], axis=1)]
    downstream = {u for us in up_i for u in us}
    sinks = [k for k in range(n_st) if k not in downstream] or [n_st - 1]
    cur = np.asarray(sinks)[np.argmax(g.end[:, sinks], axis=1)]
    on = np.zeros((n, n_st), dtype=bool)
    rows = np.arange(n)
    for _ in range(n_st):
        on[rows, cur] = True
        nxt = crit[rows, cur]
        if (nxt < 0).all():
            break
        cur = np.where(nxt >= 0, nxt, cur)
    wait = np.zeros((n, n_st))
    for k, us in enumerate(up_i):
        if len(us) == 1:
            w = np.where(np.isnan(g.wait[:, k]), g.start[:, k] - g.end[:, us[0]], g.wait[:, k])
        elif us:
            w = g.start[:, k] - g.end[rows, crit[:, k]]
        else:
            continue
        wait[:, k] = np.where(on[:, k], w, 0.0)
    return on, crit, wait


def _tie_checks(g: _Grid, ups: Mapping[str, Sequence[str]], tail: np.ndarray) -> list[Check]:
    """``critical-path-ties``: tail items whose upstreams at a join handed over at the same
    instant (timestamps of coarse resolution): the branch credited, the first listed, did not
    decide alone."""
    idx = {s: i for i, s in enumerate(g.stages)}
    out = []
    for join in g.stages:
        us = [idx[u] for u in ups.get(join, ()) if u in idx]
        if len(us) < 2:
            continue
        ends = g.end[tail][:, us]
        tied = int(((ends == ends.max(axis=1, keepdims=True)).sum(axis=1) > 1).sum())
        if tied:
            out.append(Check("info", "critical-path-ties", (
                f"at {join}: {tied:,} of {int(tail.sum()):,} tail item(s) had several upstreams hand over at the "
                "same instant; each is credited to the first listed, which did not decide it alone"), join))
    return out


def decided_by(table: TraceTable, ups: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Per complete item (index: the table's item code): ``lead`` and, per join stage, the
    upstream whose hand-over arrived last (the branch that decided the item's lead time)."""
    g, _ = _grid(table)
    _, crit, _ = _walk(g, ups)
    out = pd.DataFrame({"lead": g.lead}, index=pd.Index(g.items, name="trace"))
    names = np.array(g.stages, dtype=object)
    for k, join in enumerate(g.stages):
        if len([u for u in ups.get(join, ()) if u in g.stages]) > 1:
            out[join] = names[crit[:, k]]
    return out


def critical_path(table: TraceTable, ups: Mapping[str, Sequence[str]], q: float = 0.99) -> CriticalPathExplanation:
    """The critical-path attribution of the ``q`` tail of ``table``'s complete items; ``ups``:
    each stage's upstreams (:func:`upstreams` of the spec's stages)."""
    g, missing = _grid(table)
    checks: list[Check] = []
    if missing:
        checks.append(Check("info", "critical-path-incomplete",
                            f"{missing:,} item(s) without every stage left out of the critical path"))
    if g.lead.size == 0:
        return CriticalPathExplanation(q, 0, 0, None, (), (), (), "no item passes every stage", tuple(checks))
    on, crit, wait = _walk(g, ups)
    process = np.where(on, np.nan_to_num(g.process), 0.0)
    total = process.sum(axis=1) + wait.sum(axis=1)
    threshold = float(np.quantile(g.lead, q))
    tail = g.lead >= threshold
    n_tail = int(tail.sum())
    if n_tail < MIN_TAIL_ITEMS:
        checks.append(Check("info", "critical-path-few-items",
                            f"only {n_tail} item(s) in the {percentile_label(q)} tail: indicative, not significant"))
    safe = np.where(total[tail] > 0, total[tail], np.nan)
    shares = []
    for k, s in enumerate(g.stages):
        for part, a in (("wait", wait), ("process", process)):
            sec = a[tail, k]
            share = float(np.nanmean(sec / safe)) if np.isfinite(safe).any() else 0.0
            shares.append(PathShare(s, part, float(sec.mean()), share, float(on[tail, k].mean())))
    shares.sort(key=lambda x: (-x.share, x.stage, x.part))
    branches = _branches(g, ups, crit, tail)
    checks += _tie_checks(g, ups, tail)
    paths = _paths(g.stages, on[tail])
    verdict = _verdict(q, n_tail, shares, branches, paths)
    return CriticalPathExplanation(q, int(g.lead.size), n_tail, threshold, tuple(shares), branches, paths,
                                   verdict, tuple(checks))


def _branches(g: _Grid, ups: Mapping[str, Sequence[str]], crit: np.ndarray, tail: np.ndarray) -> tuple[Branch, ...]:
    idx = {s: i for i, s in enumerate(g.stages)}
    out = []
    n = int(tail.sum())
    for k, join in enumerate(g.stages):
        us = [idx[u] for u in ups.get(join, ()) if u in idx]
        if len(us) < 2:
            continue
        last = g.end[tail][:, us].max(axis=1)
        for u in us:
            decided = crit[tail, k] == u
            slack = last[~decided] - g.end[tail][~decided, u]
            out.append(Branch(join, g.stages[u], int(decided.sum()), float(decided.mean()) if n else 0.0,
                              float(np.median(slack)) if slack.size else None))
    return tuple(sorted(out, key=lambda b: (b.join, -b.decided, b.upstream)))


def _paths(stages: Sequence[str], on: np.ndarray, top: int = 5) -> tuple[tuple[tuple[str, ...], int], ...]:
    if on.size == 0:
        return ()
    rows, counts = np.unique(on, axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    return tuple((tuple(s for s, o in zip(stages, rows[i].tolist(), strict=True) if o), int(counts[i]))
                 for i in order)


def _verdict(q: float, n_tail: int, shares: Sequence[PathShare], branches: Sequence[Branch],
             paths: Sequence[tuple[tuple[str, ...], int]]) -> str:
    p = percentile_label(q)
    if not paths:
        return f"{p}: no tail items"
    path, n = paths[0]
    text = f"{p} items ({n_tail:,}): the critical path runs {' -> '.join(path)} in {n / max(n_tail, 1):.0%} of them"
    if shares and shares[0].share > 0:
        top = shares[0]
        text += f"; {top.stage} {top.part} holds {top.share:.0%} of it (mean {format_duration(top.seconds)})"
    for b in branches:
        if b.share >= 0.5:
            others = [o for o in branches if o.join == b.join and o.upstream != b.upstream]
            slack = "; ".join(f"{o.upstream} was {format_duration(o.slack)} early at the median" for o in others
                              if o.slack is not None)
            text += f"; at {b.join}, {b.upstream} arrived last in {b.share:.0%}" + (f" ({slack})" if slack else "")
    return text
