"""The flow of a value stream from traces (issue 27): per stage, items in and out, yield,
first-pass yield, inventory and utilisation over the window, as sums that add up.

Definitions (the live stream counts the same; a span set gives the same numbers either way):

* an **item** is an item path of the trace table (:mod:`mapper.analysis.items`); a stage's
  items are its *primary* rows (a stage's spans shared by fan-out branches count once), and
  attempts on one hand-over span that sit in item paths of their own (a redelivery in a new
  trace linked to the producer) are one item (:mod:`mapper.analysis.flow_spans`);
* ``items_in``: distinct items with the stage; ``handed[d]``: those of them whose item has
  next stage ``d`` (a stage whose upstream is this one); ``out``: those with any next stage;
  ``stopped`` = in - out (their last stage: complete for the stages they passed);
* ``failed`` / ``retried``: items with an error / with a repeated attempt at the stage
  (:mod:`mapper.analysis.flow_spans`); ``not_first_pass``: either; ``rework_s`` their rework;
* **inventory**: an item waits before the stage from its hand-over to the stage's start (its
  ``wait``; negative waits, clock skew, count as 0). ``wait_s`` sums the waits, so the mean
  number waiting over the window is exactly ``wait_s / window``; the profile integrates the
  waiting intervals per hour (:func:`_integral`). ``peak`` is exact from one table (a sweep
  over the intervals); merged from partitions it is the most waiting at the instants of a
  grid of :data:`GRID_BINS` over the window (``grid_step`` seconds apart): the event counts
  per bin add up exactly, the peak between two instants is not seen (a lower bound).
* **busy** time: the sum of the items' process (self) time at the stage (``process_s``; a
  span on several items' paths, a batch consumer's, once),
  and beside it ``union_s``: per ``service.instance.id``, the union of the stage's span
  intervals in the window (:func:`~mapper.analysis.flow_spans.busy_intervals`). A worker
  that serves several items at once has a summed process time above its busy time; the
  true busy time is at most either, so utilisation from instances takes the smaller. Merged
  from partitions, the unions are added (overlaps across parts not removed): an upper bound.

Everything per stage adds up across partitions of whole items (:meth:`FlowSums.merge`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from mapper.analysis.flow_spans import GroupFlags, busy_intervals, group_flags, instances_of, upstream_indices
from mapper.analysis.traces import StageMatch, TraceTable, match_stages
from mapper.core.spans import SpanBatch

HOUR = 3600.0
#: Equal slices of the window the inventory trend is read from.
SLICES = 12
#: Bins of the grid a merged peak is read at (the window / this, at least :data:`GRID_MIN`).
GRID_BINS = 1 << 16
GRID_MIN = 1e-3


@dataclass(frozen=True)
class StageSums:
    """One stage's flow over the window as counts and sums (see the module's definitions);
    the arrays are per hour of the window (``*_h``), per slice, per grid bin."""

    items_in: int = 0
    handed: Mapping[str, int] = field(default_factory=dict)
    out: int = 0
    failed: int = 0
    retried: int = 0
    not_first_pass: int = 0
    rework_s: float = 0.0
    #: Rework of the items that reached the stream's end (the lead time's items).
    rework_completed_s: float = 0.0
    waits: int = 0
    wait_s: float = 0.0
    no_producer: int = 0
    #: Items that reach a stage after this one without this one (its spans missing); None:
    #: not counted (more stages than a bit mask holds).
    missing: int | None = 0
    process_n: int = 0
    process_s: float = 0.0
    arrivals_h: np.ndarray = field(default_factory=lambda: np.zeros(0))
    busy_h: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: Busy seconds as the union of each instance's span intervals (see the module), and per hour.
    union_s: float = 0.0
    union_h: np.ndarray = field(default_factory=lambda: np.zeros(0))
    wait_h: np.ndarray = field(default_factory=lambda: np.zeros(0))
    wait_slices: np.ndarray = field(default_factory=lambda: np.zeros(SLICES))
    grid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: Exact peak (a sweep over one table's intervals); None when merged from several.
    peak: int | None = 0
    #: Merged from several: the largest and the sum of the parts' exact peaks (the true peak
    #: lies between the first, or the grid's, and the second).
    part_peak_max: int = 0
    part_peak_sum: int = 0
    instances: frozenset[str] = frozenset()
    unknown_instances: int = 0
    #: Failed items not retried that started within the longest retry delay of the window's
    #: end: their retry may come after it.
    failed_late: int = 0


@dataclass(frozen=True)
class FlowSums:
    """Every traced stage's :class:`StageSums`, the window (Unix seconds) and the items that
    reached the stream's end (``completed``, their summed lead ``lead_s``)."""

    stages: Mapping[str, StageSums]
    window: tuple[float, float]
    completed: int = 0
    lead_s: float = 0.0

    @property
    def seconds(self) -> float:
        return self.window[1] - self.window[0]

    @property
    def grid_step(self) -> float:
        return grid_step(self.window)

    @staticmethod
    def merge(parts: Sequence[FlowSums | None]) -> FlowSums | None:
        """The sums of partitions of whole items (None: no part had any)."""
        got = [p for p in parts if p is not None]
        if not got:
            return None
        names = list(dict.fromkeys(n for p in got for n in p.stages))
        stages = {n: _add([p.stages[n] for p in got if n in p.stages]) for n in names}
        return FlowSums(stages, got[0].window, sum(p.completed for p in got), sum(p.lead_s for p in got))


def _add(parts: list[StageSums]) -> StageSums:
    live = [p for p in parts if p.items_in or p.process_n]
    if len(live) <= 1:
        return live[0] if live else parts[0]
    a = live[0]
    out: dict[str, object] = {}
    for name in ("items_in", "out", "failed", "retried", "not_first_pass", "rework_s", "rework_completed_s",
                 "waits", "wait_s", "no_producer", "process_n", "process_s", "unknown_instances", "failed_late",
                 "arrivals_h", "busy_h", "union_s", "union_h", "wait_h", "wait_slices", "grid"):
        out[name] = sum((getattr(p, name) for p in live[1:]), getattr(a, name))
    handed: dict[str, int] = {}
    for p in live:
        for k, v in p.handed.items():
            handed[k] = handed.get(k, 0) + v
    missing = None if any(p.missing is None for p in live) else sum(p.missing or 0 for p in live)
    part_max = max(p.peak if p.peak is not None else p.part_peak_max for p in live)
    part_sum = sum(p.peak if p.peak is not None else p.part_peak_sum for p in live)
    return replace(a, **out, handed=handed, missing=missing, peak=None,  # type: ignore[arg-type]
                   part_peak_max=part_max, part_peak_sum=part_sum,
                   instances=frozenset().union(*(p.instances for p in live)))


def hour_edges(window: tuple[float, float]) -> np.ndarray:
    """The window's start, every whole UTC hour inside it, and its end."""
    ws, we = window
    inner = np.arange(math.floor(ws / HOUR) + 1, math.ceil(we / HOUR)) * HOUR
    return np.r_[ws, inner, we]


def grid_step(window: tuple[float, float]) -> float:
    return max((window[1] - window[0]) / GRID_BINS, GRID_MIN)


def _integral(a: np.ndarray, b: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Item-seconds waiting between consecutive ``edges``: with I(T) = sum of the parts of the
    intervals [a, b] before T (sorted starts and ends, cumulative sums), exactly I(e[k+1]) - I(e[k]).
    Computed from the first edge as origin: Unix seconds times thousands of items would cancel
    in float64 to milliseconds, a percent of a quiet hour's integral."""
    o = edges[0] if edges.size else 0.0
    a, b, edges = a - o, b - o, edges - o
    sa, sb = np.sort(a), np.sort(b)
    ca, cb = np.r_[0.0, np.cumsum(sa)], np.r_[0.0, np.cumsum(sb)]
    na, nb = np.searchsorted(sa, edges), np.searchsorted(sb, edges)
    total = (edges * na - ca[na]) - (edges * nb - cb[nb])
    return np.diff(total)


def _peak(a: np.ndarray, b: np.ndarray) -> int:
    """The most intervals [a, b) open at once: +1/-1 events sorted (ends first at a tie), summed."""
    if not a.size:
        return 0
    t = np.r_[b, a]
    d = np.r_[-np.ones(b.size, np.int64), np.ones(a.size, np.int64)]
    order = np.lexsort((d, t))
    return int(np.cumsum(d[order]).max(initial=0))


def flow_sums(table: TraceTable, batch: SpanBatch, matches: Sequence[StageMatch],
              upstream: Mapping[str, str | None], window: tuple[float, float]) -> FlowSums:
    """The flow of the items of ``table`` (built from ``batch`` with ``matches`` and
    ``upstream``) over ``window`` (Unix seconds)."""
    names = table.stages
    n_st = len(names)
    f = table.frame
    if not len(f) or table.ids is None:
        return FlowSums({n: _empty(window) for n in names}, window)
    stage_i = match_stages(batch, matches)
    up_i = upstream_indices(names, upstream)
    flags = group_flags(batch, stage_i, up_i, table.ids, n_st)
    inst, unknown = instances_of(batch, stage_i, n_st)
    ftr = f["trace"].to_numpy().astype(np.int64)
    fs = np.asarray(f["stage"].cat.codes, np.int64)
    present = np.sort(ftr * n_st + fs)
    completed = np.zeros(int(ftr.max(initial=-1)) + 1, bool)
    completed[np.asarray(table.lead_traces, np.int64)] = True
    missing = _missing(ftr, fs, up_i)
    primary = f["primary"].to_numpy() if "primary" in f else np.ones(len(f), bool)
    by_stage = np.argsort(fs, kind="stable")
    bounds = np.searchsorted(fs[by_stage], np.arange(n_st + 1))
    cols = {c: f[c].to_numpy(dtype=np.float64) for c in ("start", "process", "wait")}
    if "span_row" in f:
        cols["span_row"] = f["span_row"].to_numpy(dtype=np.float64)
    edges = hour_edges(window)
    ist, ia, ib = busy_intervals(batch, stage_i, window)
    out = {}
    for k, name in enumerate(names):
        rows = by_stage[bounds[k]:bounds[k + 1]]
        rows = rows[primary[rows]]
        children = [j for j in range(n_st) if up_i[j] == k]
        out[name] = _stage(rows, ftr, k, n_st, children, names, present, flags, cols, completed, window,
                           up_i[k] >= 0)
        mine = ist == k
        out[name] = replace(out[name], missing=None if missing is None else int(missing[k]), instances=inst[k],
                            unknown_instances=int(unknown[k]), union_s=float((ib[mine] - ia[mine]).sum()),
                            union_h=_integral(ia[mine], ib[mine], edges))
    lead = np.asarray(table.lead, np.float64)
    return FlowSums(out, window, int(lead.size), float(lead.sum()))


def _empty(window: tuple[float, float]) -> StageSums:
    h = hour_edges(window).size - 1
    bins = math.ceil((window[1] - window[0]) / grid_step(window))
    return StageSums(arrivals_h=np.zeros(h), busy_h=np.zeros(h), union_h=np.zeros(h), wait_h=np.zeros(h),
                     grid=np.zeros(max(bins, 1), np.int64))


def _missing(ftr: np.ndarray, fs: np.ndarray, up_i: Sequence[int]) -> np.ndarray | None:
    """Per stage: items that have a stage downstream of it but not it (None: > 52 stages,
    beyond a float's exact bit mask)."""
    n_st = len(up_i)
    if n_st > 52:
        return None
    mask = np.bincount(ftr, weights=np.ldexp(1.0, fs)).astype(np.int64)
    mask = mask[mask != 0]
    below = [0] * n_st
    for j in range(n_st - 1, -1, -1):  # flow order: a stage's upstream is listed before it
        if up_i[j] >= 0:
            below[up_i[j]] |= (1 << j) | below[j]
    return np.array([int(np.sum(((mask & below[k]) != 0) & ((mask & (1 << k)) == 0))) for k in range(n_st)])


def _stage(rows: np.ndarray, ftr: np.ndarray, k: int, n_st: int, children: Sequence[int], names: Sequence[str],
           present: np.ndarray, flags: GroupFlags, cols: Mapping[str, np.ndarray], completed: np.ndarray,
           window: tuple[float, float], has_upstream: bool) -> StageSums:
    """One stage's sums from its primary rows ``rows`` of the trace frame."""
    item = ftr[rows]
    err, retr, rework, delivery = flags.at(item * n_st + k)
    # Attempts on one hand-over span in item paths of their own are one item: the first kept.
    dkey = np.where(delivery >= 0, delivery, -1 - np.arange(rows.size))
    order = np.lexsort((cols["start"][rows], dkey))
    first = np.r_[True, dkey[order][1:] != dkey[order][:-1]] if rows.size else np.array([], bool)
    heads = np.flatnonzero(first)
    gid = np.cumsum(first) - 1

    def any_of(x: np.ndarray) -> np.ndarray:
        return np.bincount(gid, weights=x[order], minlength=heads.size) > 0

    several = np.bincount(gid, minlength=heads.size) > 1
    e, r = any_of(err), any_of(retr) | several
    reach = {names[d]: any_of(_has(present, item * n_st + d)) for d in children}
    anyout = np.zeros(heads.size, bool)
    for v in reach.values():
        anyout |= v
    kept = rows[order[heads]]
    done = np.bincount(gid, weights=completed[item[order]], minlength=heads.size) > 0
    rw = np.bincount(gid, weights=rework[order], minlength=heads.size)
    start, process = cols["start"], cols["process"]
    wait = cols["wait"][kept]
    has = ~np.isnan(wait)
    b = start[kept][has]
    a = b - np.maximum(wait[has], 0.0)
    edges = hour_edges(window)
    ws, we = window
    hour_of = np.clip(np.searchsorted(edges, start[rows], side="right") - 1, 0, edges.size - 2)
    step = grid_step(window)
    n_bins = max(math.ceil((we - ws) / step), 1)
    to_bin = lambda t: np.clip(((t - ws) / step).astype(np.int64), 0, n_bins - 1)  # noqa: E731
    grid = (np.bincount(to_bin(a), minlength=n_bins) - np.bincount(to_bin(b), minlength=n_bins)).astype(np.int64)
    late = e & ~r & (start[kept] > we - flags.retry_delay_max) if flags.retry_delay_max > 0 else e & False
    # busy once per span: a batch consumer's span is on the path of every item of its batch
    once = (np.unique(cols["span_row"][rows], return_index=True)[1] if "span_row" in cols
            else np.arange(rows.size))
    return StageSums(
        items_in=int(heads.size), handed={d: int(v.sum()) for d, v in reach.items()}, out=int(anyout.sum()),
        failed=int(e.sum()), retried=int(r.sum()), not_first_pass=int((e | r).sum()),
        rework_s=float(rw.sum()), rework_completed_s=float(rw[done].sum()),
        waits=int(has.sum()), wait_s=float((b - a).sum()),
        no_producer=int((~has).sum()) if has_upstream else 0,
        process_n=int(rows.size), process_s=float(process[rows[once]].sum()),
        arrivals_h=np.bincount(hour_of[order[heads]], minlength=edges.size - 1).astype(np.float64),
        busy_h=np.bincount(hour_of[once], weights=process[rows[once]], minlength=edges.size - 1),
        wait_h=_integral(a, b, edges), wait_slices=_integral(a, b, np.linspace(ws, we, SLICES + 1)),
        grid=grid, peak=_peak(a, b), failed_late=int(late.sum()))


def _has(present: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each (item, stage) key is in the sorted ``present``."""
    if not present.size:
        return np.zeros(keys.size, bool)
    pos = np.minimum(np.searchsorted(present, keys), present.size - 1)
    return present[pos] == keys
