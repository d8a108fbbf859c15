"""From a percentile to the items behind it: example items for every tail, and for the median.

For every part (a stage's ``wait``, ``process``, its ``hop`` = wait + process, and the
``lead`` time end to end) and every asked percentile, up to K items whose value is at or
beyond the lower bound of the percentile's interval (the one the report prints), plus K
items around the median for contrast. Each example carries every trace id of its item (an
item joined across traces by span links lists all of them), its start, its value and its
per-stage breakdown (wait and process of every stage), which adds up to its lead time with
``unaccounted`` (time in no stage, or counted twice where stages overlap) as the rest.

Chosen deterministically and **spread over the window**: the time the items cover (first
to last start) is cut into K equal slices and each slice proposes its most extreme qualifying items (the largest for a
tail, the closest to the median for contrast); the best of each slice is taken first,
then the remaining places go to the next best overall. The K largest are often one
incident; one per slice shows whether the tail is everywhere or in one burst.

Selection is two steps so that partitions can share it: :func:`propose` runs over any
part of the data (a partition, with the global thresholds) and returns candidates with
their trace ids (independent of the partition's item codes); :func:`merge` takes the
candidates of all partitions and picks the same examples as one :func:`propose` over the
whole data would. Pure functions; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mapper.analysis.sorting import stable_order
from mapper.analysis.traces import TraceTable

#: The parts examples are chosen for.
EXAMPLE_PARTS = ("wait", "process", "hop", "lead")
#: ``Key`` target of the lead time.
END_TO_END = "end_to_end"
#: ``Key`` percentile slot of the median contrast: negative, so it never collides with an
#: asked p50 (whose examples are items at or beyond the p50's lower bound).
MEDIAN = -0.5


@dataclass(frozen=True)
class StageTime:
    """One stage of an example item: its wait (None: the first stage, or no hand-over
    found) and its process time, seconds."""

    stage: str
    wait: float | None
    process: float


@dataclass(frozen=True)
class Example:
    """One item behind a percentile.

    ``value`` is the item's value of the part (seconds); ``start`` its first stage's start
    (Unix seconds); ``lead`` its lead time when it has every stage (else None);
    ``unaccounted`` = lead - sum of waits and process times (None without a lead);
    ``source`` ``traces`` or ``exemplar`` (a Prometheus exemplar: trace id and value
    only); ``slice`` the time slice of the window it was chosen from.
    """

    trace_ids: tuple[str, ...]
    start: float
    value: float
    stages: tuple[StageTime, ...] = ()
    lead: float | None = None
    unaccounted: float | None = None
    source: str = "traces"
    slice: int = 0

    @property
    def end(self) -> float:
        return self.start + (self.lead if self.lead is not None else self.value)

    def sort_key(self, median: float | None) -> tuple[float, float, tuple[str, ...]]:
        """Best first: the largest value for a tail, the closest to ``median`` for contrast;
        ties by start, then trace ids (the same whatever the partitioning)."""
        score = -self.value if median is None else abs(self.value - median)
        return (score, self.start, self.trace_ids)


#: (target, part, percentile): target is a stage name or :data:`END_TO_END`; part one of
#: :data:`EXAMPLE_PARTS`; percentile a fraction, :data:`MEDIAN` for the median contrast.
Key = tuple[str, str, float]


@dataclass(frozen=True)
class Examples:
    """The examples of a map, per :data:`Key`, best of each time slice first."""

    count: int
    by_key: Mapping[Key, tuple[Example, ...]] = field(default_factory=dict)

    def get(self, target: str, part: str, q: float) -> tuple[Example, ...]:
        return self.by_key.get((target, part, q), ())

    def with_added(self, key: Key, extra: Sequence[Example]) -> Examples:
        """A copy with ``extra`` appended to ``key``'s examples (e.g. exemplars)."""
        merged = dict(self.by_key)
        merged[key] = (*merged.get(key, ()), *extra)
        return Examples(self.count, merged)


@dataclass(frozen=True)
class Threshold:
    """What qualifies for a key: ``low`` (value at or beyond it) for a tail, or the
    ``median`` value for the contrast (items inside ``low``..``high``, closest first)."""

    low: float
    high: float = float("inf")
    median: float | None = None


def slice_of(start: np.ndarray, window: tuple[float, float], k: int) -> np.ndarray:
    """The time slice (``0..k-1``) of each start within ``window`` (Unix seconds)."""
    w0, w1 = window
    width = max(w1 - w0, 1e-9)
    return np.clip(((np.asarray(start) - w0) / width * k).astype(np.int64), 0, max(k - 1, 0))


def by_slice(slices: np.ndarray, k: int) -> list[np.ndarray]:
    """The indices of each slice ``0..k-1``, each in index order (one stable sort)."""
    order = stable_order(slices, max(k - 1, 0).bit_length())
    cuts = np.searchsorted(slices[order], np.arange(1, k))
    return np.split(order, cuts)


def _pick(value: np.ndarray, start: np.ndarray, groups: Sequence[np.ndarray], t: Threshold, k: int) -> np.ndarray:
    """Indices of the up to ``k`` best qualifying items of each slice (``groups``: each
    slice's indices), best first within a slice; ties by start, then index. One pass over
    the values plus a partial selection per slice (no full sort of the qualifying items)."""
    out = []
    for idx in groups:
        v = value[idx]
        ok = idx[(v >= t.low) & (v <= t.high)]
        if not ok.size:
            continue
        score = -value[ok] if t.median is None else np.abs(value[ok] - t.median)
        if ok.size > k:  # keep the k best and everything tied with the k-th
            kth = np.partition(score, k - 1)[k - 1]
            keep = score <= kth
            ok, score = ok[keep], score[keep]
        order = np.lexsort((ok, start[ok], score))[:k]
        out.append(ok[order])
    return np.concatenate(out) if out else np.array([], dtype=np.int64)


@dataclass(frozen=True)
class PartValues:
    """One part's values per item, with each item's code and start (Unix seconds)."""

    value: np.ndarray
    item: np.ndarray
    start: np.ndarray


def part_values(table: TraceTable, target: str, part: str, item_start: np.ndarray,
                frames: dict[str, pd.DataFrame] | None = None) -> PartValues | None:
    """The values of ``part`` of ``target`` per item (None: the table does not measure it);
    ``frames`` caches each stage's rows across calls."""
    if part == "lead":
        items = table.lead_traces
        return PartValues(table.lead, items, item_start[items]) if table.lead.size else None
    if target not in table.stages:
        return None
    cache = {} if frames is None else frames
    f = cache.get(target)
    if f is None:
        f = cache[target] = table.stage_frame(target)
    if f.empty:
        return None
    items = f["trace"].to_numpy()
    if part == "hop":  # as TraceTable.totals: the wait (none for a first stage) plus the process
        w = f["wait"].to_numpy()
        v = np.where(np.isnan(w), 0.0, w) + f["process"].to_numpy()
    else:
        v = f[part].to_numpy()
        keep = ~np.isnan(v)
        v, items = v[keep], items[keep]
    return PartValues(np.asarray(v, dtype=np.float64), items, item_start[items])


def item_starts(table: TraceTable) -> np.ndarray:
    """Each item's first start (Unix seconds), indexed by item code (NaN: no row)."""
    f = table.frame
    codes = f["trace"].to_numpy()
    out = np.full(int(codes.max(initial=-1)) + 1, np.nan)
    if codes.size:
        # rows are grouped by item (build_trace_table sorts them), so one reduceat serves
        heads = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        out[codes[heads]] = np.minimum.reduceat(f["start"].to_numpy(), heads)
    return out


def _describe(table: TraceTable, chosen: Mapping[Key, tuple[np.ndarray, np.ndarray, np.ndarray]],
              item_start: np.ndarray, slices_of: Mapping[Key, np.ndarray]) -> dict[Key, list[Example]]:
    """Examples for the chosen (item, value, start) of each key: trace ids and breakdown,
    looked up once for every item chosen anywhere."""
    every = np.unique(np.concatenate([c[0] for c in chosen.values()])) if chosen else np.array([], np.int64)
    ids = table.trace_ids(every)
    f = table.frame
    codes = f["trace"].to_numpy()
    want = np.zeros(item_start.size, dtype=bool)
    want[every] = True
    rows = np.flatnonzero(want[codes]) if every.size else np.array([], np.int64)
    stages_of: dict[int, list[StageTime]] = {}
    sub = f.iloc[rows]
    for code, stage, wait, proc in zip(codes[rows].tolist(), sub["stage"].astype(str).tolist(),
                                       sub["wait"].tolist(), sub["process"].tolist(), strict=True):
        stages_of.setdefault(code, []).append(StageTime(stage, None if wait != wait else float(wait), float(proc)))
    order = {n: i for i, n in enumerate(table.stages)}
    # The lead time the map computed (from integer nanoseconds), not one recomputed from the
    # frame's Unix seconds: a float64 near 1.8e9 s keeps only ~0.24 us, so a lead rebuilt from
    # them differed from the item's value and left a phantom 'unaccounted'.
    hit = np.flatnonzero(np.isin(table.lead_traces, every)) if every.size else np.array([], np.int64)
    lead_of = dict(zip(table.lead_traces[hit].tolist(), table.lead[hit].tolist(), strict=True))
    out: dict[Key, list[Example]] = {}
    for key, (items, values, _starts) in chosen.items():
        sl = slices_of[key]
        exs = []
        for code, v, s_i in zip(items.tolist(), values.tolist(), sl.tolist(), strict=True):
            st = tuple(sorted(stages_of.get(code, []), key=lambda x: order.get(x.stage, 0)))
            lead = lead_of.get(code)
            rest = None if lead is None else lead - sum((x.wait or 0.0) + x.process for x in st)
            exs.append(Example(ids.get(code, ()), float(item_start[code]), float(v), st, lead, rest,
                               "traces", int(s_i)))
        out[key] = exs
    return out


def propose(table: TraceTable, thresholds: Mapping[Key, Threshold], window: tuple[float, float],
            k: int) -> dict[Key, list[Example]]:
    """Candidates for every key from the items of ``table``: up to ``k`` per time slice.

    ``thresholds`` come from the distributions the report prints (over all the data, so a
    partition is given the global ones). The result, merged with :func:`merge` (alone or
    with other partitions' candidates), gives the examples.
    """
    if k <= 0 or table.traces == 0:
        return {}
    starts = item_starts(table)
    chosen: dict[Key, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    slices: dict[Key, np.ndarray] = {}
    cache: dict[tuple[str, str], tuple[PartValues, np.ndarray, list[np.ndarray]] | None] = {}
    frames: dict[str, pd.DataFrame] = {}
    for key, t in thresholds.items():
        target, part, _q = key
        if (target, part) not in cache:
            pv = part_values(table, target, part, starts, frames)
            cache[(target, part)] = None if pv is None else (pv, sl := slice_of(pv.start, window, k), by_slice(sl, k))
        got = cache[(target, part)]
        if got is None:
            continue
        pv, sl, groups = got
        at = _pick(pv.value, pv.start, groups, t, k)
        if at.size:
            chosen[key] = (pv.item[at], pv.value[at], pv.start[at])
            slices[key] = sl[at]
    return _describe(table, chosen, starts, slices)


def merge(proposals: Iterable[Mapping[Key, Sequence[Example]]], thresholds: Mapping[Key, Threshold],
          k: int) -> Examples:
    """The examples from every partition's candidates: the best of each time slice first
    (slices in time order), then the next best overall, up to ``k`` per key. Candidates of
    one item proposed twice (by two partitions) count once."""
    pooled: dict[Key, dict[tuple[tuple[str, ...], float], Example]] = {}
    for prop in proposals:
        for key, exs in prop.items():
            seen = pooled.setdefault(key, {})
            for e in exs:
                seen.setdefault((e.trace_ids, e.start), e)
    out: dict[Key, tuple[Example, ...]] = {}
    for key, cands in pooled.items():
        median = thresholds[key].median if key in thresholds else None
        ranked = sorted(cands.values(), key=lambda e: e.sort_key(median))
        firsts: dict[int, Example] = {}
        for e in ranked:
            firsts.setdefault(e.slice, e)
        picked = [firsts[s] for s in sorted(firsts)][:k]
        taken = {id(e) for e in picked}
        picked += [e for e in ranked if id(e) not in taken][: k - len(picked)]
        out[key] = tuple(picked)
    return Examples(k, out)


def data_range(table: TraceTable) -> tuple[float, float]:
    """First to last item start of the table (Unix seconds): the span the time slices cut,
    so that data filling only part of the window is still spread over slices."""
    s = table.frame["start"].to_numpy()
    return (float(s.min()), float(s.max())) if s.size else (0.0, 0.0)


def choose(table: TraceTable, thresholds: Mapping[Key, Threshold], k: int,
           window: tuple[float, float] | None = None) -> Examples:
    """The examples of one table: :func:`merge` of its own :func:`propose`, slicing
    ``window`` (default: :func:`data_range`; partitions must all be given the same one)."""
    return merge([propose(table, thresholds, window or data_range(table), k)], thresholds, k)


def from_exemplars(points: Sequence[tuple[str, float, float]], thresholds: Mapping[Key, Threshold],
                   k: int) -> dict[Key, tuple[Example, ...]]:
    """Examples of each key from exemplars ``(trace id, value seconds, timestamp)``: those
    at or beyond the key's threshold (for a histogram, the lower bound of the percentile's
    bucket), spread over their time span like trace examples; ``source`` ``exemplar``."""
    if not points or k <= 0:
        return {}
    value = np.array([p[1] for p in points], dtype=np.float64)
    start = np.array([p[2] for p in points], dtype=np.float64)
    slices = slice_of(start, (float(start.min()), float(start.max())), k)
    groups = by_slice(slices, k)
    proposal: dict[Key, list[Example]] = {}
    for key, t in thresholds.items():
        at = _pick(value, start, groups, t, k)
        if at.size:
            proposal[key] = [Example((points[i][0],), float(start[i]), float(value[i]), source="exemplar",
                                     slice=int(slices[i])) for i in at.tolist()]
    return dict(merge([proposal], thresholds, k).by_key)
