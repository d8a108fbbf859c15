"""The attributes explanation partition by partition: counts per attribute value, added.

A window over ``engine.memory_budget`` is analysed in partitions that never hold every item
at once (:mod:`mapper.app.engine`). The explanation needs, per attribute, only how many tail
items and how many others carry each value; so each partition counts them
(:func:`partition_counts`, against the *global* threshold, the lower bound of the merged
distribution's interval, found in a pass before), the client adds the counts
(:func:`add_counts`) and tests them (:func:`explain_counts`). Grouping happens after the
merge, on the added counts, so an attribute is grouped as the in-memory path groups it (the
same most common values, the same quantile bins of its numbers: a multiset of values is all
either reads); the findings, p-values and q-values are the same.

Left out here: the examples of each finding (trace ids of the slowest tail items; the
partitioned map's examples are elsewhere) and the median-band contrast (the map explains
against the rest).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mapper.analysis.examples import item_starts, part_values
from mapper.analysis.explain.attributes import Grouped, Options, Raw, group, read
from mapper.analysis.explain.compare import assembled, explain_check, rows_of, test_counts
from mapper.analysis.explain.model import KIND_ATTRIBUTES, Explanation, ValueCount
from mapper.analysis.traces import TraceTable
from mapper.core.distribution import percentile_label

#: One attribute: ``(stage, scope, key)``.
AttributeKey = tuple[str, str, str]
#: What is explained: ``(target, part, q, threshold)`` (threshold None: no tail).
Target = tuple[str, str, float, float | None]


@dataclass
class Counts:
    """One target's counts: items in the tail and not, and per attribute per raw value the
    ``[tail, rest]`` items carrying it (items without it are the difference)."""

    tail: int = 0
    rest: int = 0
    values: dict[AttributeKey, dict[str, list[int]]] | None = None


def partition_counts(table: TraceTable, targets: Sequence[Target]) -> list[Counts]:
    """Per target, this partition's counts (see the module docstring); a target the table
    cannot measure, or without a threshold, counts nothing."""
    out = []
    starts = item_starts(table) if targets else np.array([])
    for target, part, _q, low in targets:
        c = Counts(values={})
        spans = table.spans
        pv = part_values(table, target, part, starts) if spans is not None else None
        if pv is None or low is None or spans is None:
            out.append(c)
            continue
        tail = pv.value >= low
        c.tail, c.rest = int(tail.sum()), int(tail.size - tail.sum())
        stages = table.stages if part == "lead" else (target,)
        assert c.values is not None
        for stage in stages:
            rows = rows_of(table, stage, pv.item)
            for raw in read(spans, rows, stage):
                code = raw.code
                n = raw.uniques.size
                tc = np.bincount(code[tail & (code >= 0)], minlength=n)
                rc = np.bincount(code[~tail & (code >= 0)], minlength=n)
                used = np.flatnonzero(tc + rc)
                per = c.values.setdefault((stage, raw.scope, raw.key), {})
                for u, a, r in zip(raw.uniques[used].tolist(), tc[used].tolist(), rc[used].tolist(), strict=True):
                    got = per.setdefault(str(u), [0, 0])
                    got[0] += a
                    got[1] += r
        out.append(c)
    return out


def add_counts(parts: Iterable[Sequence[Counts]], n_targets: int) -> list[Counts]:
    """Every partition's counts added, target by target."""
    out = [Counts(values={}) for _ in range(n_targets)]
    for counts in parts:
        for total, c in zip(out, counts, strict=True):
            total.tail += c.tail
            total.rest += c.rest
            assert total.values is not None
            for key, per in (c.values or {}).items():
                into = total.values.setdefault(key, {})
                for value, (a, r) in per.items():
                    got = into.setdefault(value, [0, 0])
                    got[0] += a
                    got[1] += r
    return out


def _raw(key: AttributeKey, per: Mapping[str, list[int]], n_tail: int, n_rest: int) -> Raw:
    """The attribute as if read item by item: the tail's items first, then the rest's (each
    value repeated as often as it was counted, then the items without it)."""
    values = sorted(per)
    tc = np.array([per[v][0] for v in values], dtype=np.int64)
    rc = np.array([per[v][1] for v in values], dtype=np.int64)
    idx = np.arange(len(values), dtype=np.int64)
    code = np.concatenate([np.repeat(idx, tc), np.full(n_tail - int(tc.sum()), -1, np.int64),
                           np.repeat(idx, rc), np.full(n_rest - int(rc.sum()), -1, np.int64)])
    return Raw(key[0], key[1], key[2], code, np.array(values, dtype=object))


def explain_counts(target: Target, counts: Counts, opts: Options | None = None) -> Explanation:
    """The explanation of ``target`` from counts added over partitions: what :func:`~.compare.explain`
    gives in memory, without the findings' examples."""
    opts = opts or Options()
    name, part, q, low = target
    what = f"{'lead time' if part == 'lead' else f'{name} {part}'} {percentile_label(q)}"
    n_tail, n_rest = counts.tail, counts.rest
    if low is None or n_tail + n_rest == 0:
        return Explanation(KIND_ATTRIBUTES, name, part, q, "rest", low, 0, 0, alpha=opts.alpha,
                           checks=(explain_check(name, part, "explain-no-tail",
                                          f"{what}: the data cannot support the percentile: no tail to explain"),))
    is_tail = np.r_[np.ones(n_tail, bool), np.zeros(n_rest, bool)]
    groups: list[Grouped] = []
    per: list[tuple[np.ndarray, np.ndarray]] = []
    left: dict[str, list[str]] = {}
    fixed: list[ValueCount] = []
    for key in sorted(counts.values or {}):
        raw = _raw(key, (counts.values or {})[key], n_tail, n_rest)
        got = group(raw, opts)
        label = raw.key if part != "lead" else f"{raw.stage}: {raw.key}"
        if isinstance(got, str):
            left.setdefault(got, []).append(label)
            if got == "constant":
                fixed.append(ValueCount(raw.stage, raw.scope, raw.key, str(raw.uniques[raw.code[raw.code >= 0][0]]),
                                        n_tail, n_rest))
            continue
        groups.append(got)
        n = len(got.labels)
        per.append((np.bincount(got.code[is_tail], minlength=n), np.bincount(got.code[~is_tail], minlength=n)))
    found, tested, more, value_counts = test_counts(groups, per, n_tail, n_rest, opts)
    # (the map's traces-partitioned check says how the explanations were made)
    return assembled(Explanation(KIND_ATTRIBUTES, name, part, q, "rest", low, n_tail, n_rest, tested, opts.alpha,
                                 tuple(f for f, _, _ in found), more), what, left, groups, (*fixed, *value_counts))


__all__ = ["Counts", "Target", "add_counts", "explain_counts", "partition_counts"]
