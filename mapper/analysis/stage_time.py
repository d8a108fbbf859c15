"""The per-(trace, stage) kernels of :mod:`mapper.analysis.traces`: each group's first span
and latest end, and each stage's self time, as flat array operations over millions of spans
(value sorts, scatter reductions, one running sum), never a loop per span or per trace.
"""

from __future__ import annotations

import numpy as np

from mapper.analysis.sorting import stable_order

NS = 1e-9


def self_time(trace: np.ndarray, stage_i: np.ndarray, start: np.ndarray, end: np.ndarray,
               n_stages: int, n_traces: int, tmin: np.ndarray) -> np.ndarray:
    """Seconds per (stage, trace) covered by the stage's spans and by no downstream stage.

    One sweep over start/end events sorted by (trace, time), starts before ends at equal
    times: a running sum of +1/-1 gives, between consecutive events, whether the stage and
    any later stage are active. Each trace's events balance, so one global cumulative sum
    serves every trace. The sort key is one int64 (trace, time relative to the trace's
    first start, end flag, stage) sorted by value when it fits (then the fields are read
    back from the sorted keys: no permutation, no gathers) and the stages' counts are fields
    of one running sum (:func:`_top_stage_time`); else an argsort or lexsort and one
    running sum per stage.
    """
    t = np.concatenate([start, end])
    d = np.concatenate([np.ones(start.size, np.int8), -np.ones(end.size, np.int8)])
    tr = np.concatenate([trace, trace])
    st = np.concatenate([stage_i, stage_i])
    rel = t - tmin[tr]
    if rel.size and int(rel.min()) < 0:  # an end before its trace's first start: from its earliest event, or
        # its key would fall among the previous trace's keys
        low = tmin.copy()
        np.minimum.at(low, tr, t)
        rel = t - low[tr]
    w = 2 * int(rel.max(initial=0)) + 2
    field_bits = _field_bits(trace, stage_i, start, end, n_stages)
    if field_bits and w * n_traces * n_stages < 2**62:
        # Every field in the sort key: a value sort (SIMD) and no gathers. Equal keys are
        # events of one kind at one instant of one trace and stage: their order is moot.
        key = ((tr * w + 2 * rel + (d < 0)) * n_stages + st)
        del t, d, tr, st, rel
        key.sort()
        st = key % n_stages
        key //= n_stages
        tr = key // w
        d = 1 - 2 * (key & 1)
        dt = np.diff((key % w) >> 1).astype(np.float64) * NS  # within a trace: the times' differences
        same = tr[1:] == tr[:-1]
        return _top_stage_time(d, st, dt, same, tr[:-1], n_stages, n_traces, field_bits)
    fits = w * n_traces < 2**62
    # Equal keys are events of one kind at one instant of one trace: their order is moot.
    order = np.argsort(tr * w + 2 * rel + (d < 0)) if fits else np.lexsort((-d, t, tr))
    t, d, tr, st = t[order], d[order], tr[order], st[order]
    dt = np.diff(t).astype(np.float64) * NS
    same = tr[1:] == tr[:-1]
    tr_head = tr[:-1]
    out = np.zeros((n_stages, n_traces))
    # From the last stage back: "downstream active" is the running sum of the later stages.
    down = np.zeros(t.size - 1, dtype=np.int32)
    for k in range(n_stages - 1, -1, -1):
        own = np.cumsum(np.where(st == k, d, np.int8(0)), dtype=np.int32)[:-1]
        counted = same & (own > 0) & (down == 0)
        out[k] = np.bincount(tr_head[counted], weights=dt[counted], minlength=n_traces)
        down += own
    return out


def _field_bits(trace: np.ndarray, stage_i: np.ndarray, start: np.ndarray, end: np.ndarray,
                n_stages: int) -> int:
    """Bits per stage that hold the count of a stage's open spans in any trace, when every
    stage's field fits one int64 together and no span ends before it starts (a count that
    dips below zero would borrow from the next field); else 0."""
    if trace.size == 0 or bool(np.any(end < start)):
        return 0
    most = int(np.bincount(trace * n_stages + stage_i).max())
    bits = (most + 1).bit_length()  # counts <= 2**bits - 2: a field never reads as full
    return bits if bits * n_stages <= 62 else 0


def _top_stage_time(d: np.ndarray, st: np.ndarray, dt: np.ndarray, same: np.ndarray, tr_head: np.ndarray,
                    n_stages: int, n_traces: int, bits: int) -> np.ndarray:
    """:func:`self_time`'s sums in one sweep instead of one per stage: every stage's open
    span count is a ``bits``-wide field of one int64 running sum, and an interval counts for
    the highest stage open in it (a stage's time with no later stage open), which is the
    field of the sum's highest set bit. The float64 exponent gives that bit: a field is never
    full, so the sum is at least 2**-bits below the next field's start and rounding cannot
    carry it there. The same intervals are summed per (stage, trace) in the same order as the
    per-stage sweep, so the seconds are identical."""
    shifts = (st * bits).astype(np.int64, copy=False)
    packed = np.cumsum(np.left_shift(d.astype(np.int64, copy=False), shifts))[:-1]
    counted = same & (packed > 0)
    _, exp = np.frexp(packed[counted].astype(np.float64))
    top = (exp.astype(np.int64) - 1) // bits
    idx = top * n_traces + tr_head[counted]
    out = np.bincount(idx, weights=dt[counted], minlength=n_stages * n_traces)
    return out.reshape(n_stages, n_traces)


def self_time_parallel(trace: np.ndarray, stage_i: np.ndarray, start: np.ndarray, end: np.ndarray,
                        n_stages: int, n_traces: int, tmin: np.ndarray, min_spans: int = 400_000) -> np.ndarray:
    """:func:`self_time` over halves of the traces in two threads (numpy's sorts and
    cumulative sums release the GIL, so the halves run on two cores); small inputs in one."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    if trace.size < min_spans or (os.cpu_count() or 1) < 2:
        return self_time(trace, stage_i, start, end, n_stages, n_traces, tmin)
    mid = n_traces // 2
    low = trace < mid
    halves = [(np.flatnonzero(low), 0, mid), (np.flatnonzero(~low), mid, n_traces)]

    def run(part: tuple[np.ndarray, int, int]) -> np.ndarray:
        rows, lo, hi = part
        return self_time(trace[rows] - lo, stage_i[rows], start[rows], end[rows], n_stages, hi - lo, tmin[lo:hi])

    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.map(run, halves)
    return np.concatenate([a, b], axis=1)


def stage_groups(grp: np.ndarray, n_groups: int, start: np.ndarray, end: np.ndarray,
            tmin: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (trace, stage) groups present, in key order: each group's key, its first row (its
    earliest span; ties: the first row) and its latest end.

    When the keys are dense enough (at most a few per span), three scatter reductions over a
    key-indexed array, no sort (a stable sort of millions of int64 keys costs seconds); else
    one stable sort by (group, start relative to the trace's first start)."""
    n = grp.size
    if n_groups <= 4 * n + 1024:
        big = np.iinfo(np.int64).max
        g_min = np.full(n_groups, big, np.int64)
        np.minimum.at(g_min, grp, start)
        g_max = np.full(n_groups, np.iinfo(np.int64).min, np.int64)
        np.maximum.at(g_max, grp, end)
        at_min = np.flatnonzero(start == g_min[grp])
        first = np.full(n_groups, n, np.int64)
        np.minimum.at(first, grp[at_min], at_min)
        gkey = np.flatnonzero(first < n)
        return gkey, first[gkey], g_max[gkey]
    rel = start - tmin
    w = int(rel.max(initial=0)) + 1
    fits = n_groups * w < 2**62
    order = stable_order(grp * w + rel, (n_groups * w).bit_length()) if fits else np.lexsort((start, grp))
    g_sorted = grp[order]
    bounds = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1]])
    return g_sorted[bounds], order[bounds], np.maximum.reduceat(end[order], bounds)
