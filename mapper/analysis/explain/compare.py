"""The tail against the rest, attribute by attribute (BubbleUp with evidence).

For a part of a stage (or the lead time) and a percentile: the **tail** is the items whose
value is at or beyond the percentile's interval lower bound (what the report prints); the
**contrast** every other item, or the median band (items between the 45th and 55th
percentile). Every attribute of the stage's spans (every stage's, for the lead time) is read
per item and grouped (:mod:`.attributes`); every value carried by at least one tail item is
tested (one-sided Fisher: more common in the tail than the contrast?), and the p-values are
corrected together (Benjamini-Hochberg). A value is *significant* only when its q-value is
below ``alpha`` and its lift above 1; findings are ranked by q-value, then lift.

:func:`against` compares an explanation's tail with a baseline's (a pinned report's
``counts``, or the same hours a week earlier): the values whose share of the tail grew,
with ``new`` marking values the baseline never saw (a version that appeared).

Counts are of sampled items (each item once, whatever its sampling weight). Pure functions.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

import numpy as np

from mapper.analysis.examples import END_TO_END, Example, item_starts, part_values
from mapper.analysis.explain.attributes import Grouped, Options, group, read
from mapper.analysis.explain.model import KIND_ATTRIBUTES, OTHER, Explanation, Finding, ValueCount
from mapper.analysis.explain.stats import benjamini_hochberg, fisher_greater, log_factorials
from mapper.analysis.traces import TraceTable
from mapper.core.distribution import percentile_label
from mapper.core.model import Check

#: The median band (as the tail attribution's: :data:`mapper.analysis.attribution.MEDIAN_BAND`).
MEDIAN_BAND = (0.45, 0.55)
#: Tail items below which a check says the tests can hardly find anything.
FEW_TAIL_ITEMS = 10


def explain_check(target: str, part: str, code: str, message: str) -> Check:
    stage = None if target == END_TO_END else target
    return Check("info", code, message, stage, None if part in ("hop", "lead") else part)


def explain(table: TraceTable, target: str, part: str, q: float, low: float | None, contrast: str = "rest",
            opts: Options | None = None) -> Explanation:
    """Why the items of ``part`` of ``target`` at or beyond ``low`` (the lower bound of the
    ``q`` percentile's interval; None: the data cannot support it) are slow, from the
    attributes of their spans (see the module docstring)."""
    opts = opts or Options()
    what = f"{'lead time' if part == 'lead' else f'{target} {part}'} {percentile_label(q)}"
    empty = Explanation(KIND_ATTRIBUTES, target, part, q, contrast, low, 0, 0, alpha=opts.alpha)
    if table.spans is None or "span_row" not in table.frame:
        return _with(empty, explain_check(target, part, "explain-no-attributes",
                                   f"{what}: the traces were not kept with their spans: no attribute to compare"))
    pv = part_values(table, target, part, item_starts(table))
    if pv is None or low is None:
        return _with(empty, explain_check(target, part, "explain-no-tail",
                                   f"{what}: the data cannot support the percentile: no tail to explain"))
    tail = pv.value >= low
    if contrast == "median":
        lo, hi = np.quantile(pv.value, MEDIAN_BAND)
        other = (pv.value >= lo) & (pv.value <= hi) & ~tail
    else:
        other = ~tail
    keep = np.flatnonzero(tail | other)
    items, values, is_tail = pv.item[keep], pv.value[keep], tail[keep]
    n_tail, n_rest = int(is_tail.sum()), int(keep.size - is_tail.sum())
    stages = table.stages if part == "lead" else (target,)
    groups: list[Grouped] = []
    left: dict[str, list[str]] = {}
    counts: list[ValueCount] = []
    for stage in stages:
        rows = rows_of(table, stage, items)
        for raw in read(table.spans, rows, stage):
            got = group(raw, opts)
            name = raw.key if part != "lead" else f"{stage}: {raw.key}"
            if isinstance(got, str):
                left.setdefault(got, []).append(name)
                if got == "constant":
                    label = str(raw.uniques[raw.code[raw.code >= 0][0]])
                    counts.append(ValueCount(stage, raw.scope, raw.key, label, n_tail, n_rest))
            else:
                groups.append(got)
    found, tested, more, counts_t = _test(groups, is_tail, values, opts)
    findings = _with_examples(table, found, items, values, is_tail, pv.start[keep], groups, opts)
    return assembled(Explanation(KIND_ATTRIBUTES, target, part, q, contrast, low, n_tail, n_rest, tested,
                                 opts.alpha, findings, more), what, left, groups, (*counts, *counts_t))


def assembled(e: Explanation, what: str, left: Mapping[str, Sequence[str]], groups: Sequence[Grouped],
              counts: Sequence[ValueCount]) -> Explanation:
    """``e`` (its figures and findings) with what both routes add the same way: the keys left
    out and grouped, by reason, the value counts in their one order, and the few-tail check."""
    checks = []
    if e.tail_items < FEW_TAIL_ITEMS:
        checks.append(explain_check(e.target, e.part, "explain-few-tail-items",
                                    f"{what}: {e.tail_items} tail item(s): too few for any attribute to stand out"))
    grouped: dict[str, list[str]] = {}
    for g in groups:
        for reason in g.grouped:
            grouped.setdefault(reason, []).append(g.key if e.part != "lead" else f"{g.stage}: {g.key}")
    return replace(e, left_out={k: tuple(sorted(v)) for k, v in sorted(left.items())},
                   grouped={k: tuple(sorted(v)) for k, v in sorted(grouped.items())}, counts=in_order(counts),
                   checks=tuple(checks))


def in_order(counts: Sequence[ValueCount]) -> tuple[ValueCount, ...]:
    """Counts by stage, scope, key and value: one order whatever made them (in memory, or
    added over partitions)."""
    return tuple(sorted(counts, key=lambda c: (c.stage, c.scope, c.key, c.value)))


def _with(e: Explanation, check: Check) -> Explanation:
    return Explanation(e.kind, e.target, e.part, e.percentile, e.contrast, e.threshold, e.tail_items, e.rest_items,
                       alpha=e.alpha, checks=(*e.checks, check))


def rows_of(table: TraceTable, stage: str, items: np.ndarray) -> np.ndarray:
    """The batch row of each item's first span at ``stage`` (-1: none)."""
    f = table.stage_frame(stage)
    codes = f["trace"].to_numpy()
    size = max(int(codes.max(initial=-1)), int(items.max(initial=-1))) + 1
    row_of = np.full(size, -1, dtype=np.int64)
    row_of[codes] = f["span_row"].to_numpy()
    return row_of[items]


def _test(groups: Sequence[Grouped], is_tail: np.ndarray, values: np.ndarray,
          opts: Options) -> tuple[list[tuple[Finding, int, int]], int, int, list[ValueCount]]:
    """Every value with a tail item tested and corrected together; the first
    ``opts.max_findings`` as (finding, group index, value code), the number tested, the
    number not listed, and every value's counts."""
    per = [(np.bincount(g.code[is_tail], minlength=len(g.labels)),
            np.bincount(g.code[~is_tail], minlength=len(g.labels))) for g in groups]
    return test_counts(groups, per, int(is_tail.sum()), int(is_tail.size - is_tail.sum()), opts)


def test_counts(groups: Sequence[Grouped], per: Sequence[tuple[np.ndarray, np.ndarray]], n_tail: int, n_rest: int,
                opts: Options) -> tuple[list[tuple[Finding, int, int]], int, int, list[ValueCount]]:
    """:func:`_test` from each group's tail and contrast counts per label (``per``): what
    partitions add up (:mod:`.merge`)."""
    total = n_tail + n_rest
    lf = log_factorials(total)
    rows: list[tuple[int, int, int, int, float, str]] = []
    counts: list[ValueCount] = []
    family = 0
    for gi, (g, (tc, rc)) in enumerate(zip(groups, per, strict=True)):
        for v in range(len(g.labels)):
            counts.append(ValueCount(g.stage, g.scope, g.key, g.labels[v], int(tc[v]), int(rc[v])))
            if tc[v] + rc[v]:
                family += 1
            if tc[v]:
                p, test = fisher_greater(int(tc[v]), n_tail, int(tc[v] + rc[v]), total, lf)
                rows.append((gi, v, int(tc[v]), int(rc[v]), p, test))
    # Every value carried by any item is one test (a value no tail item carries has p = 1):
    # leaving those out would pick the family by the outcome and shrink the correction.
    qv = _corrected([r[4] for r in rows], family)
    found = []
    for (gi, v, a, r, p, test), q in zip(rows, qv.tolist(), strict=True):
        g = groups[gi]
        ts, rs = a / n_tail, (r / n_rest if n_rest else 0.0)
        lift = ts / rs if rs > 0 else None
        sig = q < opts.alpha and (lift is None or lift > 1)
        found.append((Finding(g.stage, g.scope, g.key, g.labels[v], a, r, ts, rs, lift, p, q, sig, test), gi, v))
    found.sort(key=lambda x: (x[0].q_value, -(x[0].lift if x[0].lift is not None else np.inf),
                              x[0].stage, x[0].key, x[0].value))
    return found[:opts.max_findings], family, max(len(found) - opts.max_findings, 0), counts


def _corrected(p: Sequence[float], family: int) -> np.ndarray:
    """The Benjamini-Hochberg q-values of ``p`` among ``family`` tests, the others' p-values 1."""
    return benjamini_hochberg(np.r_[np.asarray(p, dtype=np.float64), np.ones(max(family - len(p), 0))])[:len(p)]


def _with_examples(table: TraceTable, found: Sequence[tuple[Finding, int, int]], items: np.ndarray,
                   values: np.ndarray, is_tail: np.ndarray, starts: np.ndarray, groups: Sequence[Grouped],
                   opts: Options) -> tuple[Finding, ...]:
    """Each listed finding with its slowest tail items (trace ids looked up once for all)."""
    picks = []
    for _f, gi, v in found:
        at = np.flatnonzero(is_tail & (groups[gi].code == v))
        picks.append(at[np.argsort(-values[at], kind="stable")[:opts.examples]] if opts.examples > 0 else at[:0])
    every = np.unique(np.concatenate([items[p] for p in picks])) if picks else np.array([], np.int64)
    ids = table.trace_ids(every)
    out = []
    for (f, _gi, _v), at in zip(found, picks, strict=True):
        exs = tuple(Example(ids.get(int(items[i]), ()), float(starts[i]), float(values[i])) for i in at.tolist())
        out.append(replace(f, examples=exs))
    return tuple(out)


def against(current: Explanation, baseline: Sequence[ValueCount], baseline_tail: int, versus: str,
            opts: Options | None = None, baseline_left_out: Mapping[str, Collection[str]] | None = None
            ) -> Explanation:
    """``current``'s tail against a baseline's tail (``baseline``: its counts,
    ``baseline_tail``: its tail items): per value, whether its share of the tail grew
    (one-sided Fisher, corrected together); ``new`` for a value the baseline never saw. An
    attribute the baseline left out untested and uncounted (``baseline_left_out``: its
    ``left_out``; a constant one is counted) is not compared: absent from its counts is not
    absent from its data."""
    opts = opts or Options()
    then = {(c.stage, c.scope, c.key, c.value): c for c in baseline}
    # Quantile bins are cut where each run's numbers fall: two runs' bins are not the same values.
    binned = set(current.grouped.get("numeric-bins", ()))
    skip = {k for reason, keys in (baseline_left_out or {}).items() if reason != "constant" for k in keys} | binned
    n1, n0 = current.tail_items, baseline_tail
    total = n1 + n0
    lf = log_factorials(total)
    rows = []

    def name(c: ValueCount) -> str:
        return c.key if current.part != "lead" else f"{c.stage}: {c.key}"

    # the family: every value either tail carries of the attributes compared (one the
    # current tail lacks has p = 1)
    compared = {c.attribute for c in current.counts if name(c) not in skip}
    # (other) holds different values in each run, and a value missing beside the baseline's
    # (other) may be in it (not new, not absent): neither is compared.
    pooled = {c.attribute for c in baseline if c.value == OTHER}

    def comparable(c: ValueCount) -> bool:
        return (c.attribute in compared and c.value != OTHER
                and not (c.attribute in pooled and (c.stage, c.scope, c.key, c.value) not in then))

    family = {(c.stage, c.scope, c.key, c.value) for c in (*current.counts, *baseline) if c.tail and comparable(c)}
    for c in current.counts:
        if not c.tail or not comparable(c):
            continue
        old = then.get((c.stage, c.scope, c.key, c.value))
        a0 = old.tail if old is not None else 0
        p, test = fisher_greater(c.tail, n1, c.tail + a0, total, lf)
        rows.append((c, a0, p, test, old is None))
    qv = _corrected([r[2] for r in rows], len(family))
    found = []
    for (c, a0, p, test, new), q in zip(rows, qv.tolist(), strict=True):
        ts, rs = c.tail / n1, (a0 / n0 if n0 else 0.0)
        lift = ts / rs if rs > 0 else None
        found.append(Finding(c.stage, c.scope, c.key, c.value, c.tail, a0, ts, rs, lift, p, q,
                             q < opts.alpha and (lift is None or lift > 1), test, new=new))
    found.sort(key=lambda f: (f.q_value, -(f.lift if f.lift is not None else np.inf), f.stage, f.key, f.value))
    checks = list(current.checks)
    if n0 < FEW_TAIL_ITEMS:
        checks.append(explain_check(current.target, current.part, "explain-few-tail-items",
                             f"{versus}: {n0} tail item(s) in the baseline: too few to compare with"))
    return Explanation(current.kind, current.target, current.part, current.percentile, "baseline",
                       current.threshold, n1, n0, len(family), opts.alpha, tuple(found[:opts.max_findings]),
                       max(len(found) - opts.max_findings, 0),
                       {**current.left_out,
                        **({"numeric-bins-not-comparable": tuple(sorted(binned))} if binned else {})},
                       current.grouped, current.counts, current.value_of, versus, tuple(checks))


def not_explained(target: str, part: str, q: float, why: str) -> Explanation:
    """An explanation with nothing tested, and a check saying ``why`` (e.g. the traces were
    analysed partition by partition: no per-item attributes in memory)."""
    what = f"{'lead time' if part == 'lead' else f'{target} {part}'} {percentile_label(q)}"
    return Explanation(KIND_ATTRIBUTES, target, part, q, "rest", None, 0, 0,
                       checks=(explain_check(target, part, "explain-not-computed",
                                      f"{what}: the tail is not explained by attributes: {why}"),))
