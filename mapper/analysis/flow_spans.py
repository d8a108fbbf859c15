"""Errors and retries of each (item, stage) from its spans: what first-pass yield counts.

Per span of a stage (the spans :func:`~mapper.analysis.traces.match_stages` gives it):

* **error**: span status ERROR (``status == 2``) or at least one exception event
  (``exceptions > 0``; ``-1`` is "not read", never an error);
* **attempt**: a span of the stage whose parent, else first link, is a span of its upstream
  stage (the hand-over span: a PRODUCER, or the CLIENT call of a synchronous hop). Several
  attempts on one hand-over span are a **redelivery**: the message consumed again (or the
  call served again); every attempt after the first is extra;
* **client retry**: CLIENT spans of the stage with the same trace, parent and name (the same
  call made again by the stage) after one of them failed (error): the same call repeated
  without a failure before it is a loop of calls (one per recipient), not a retry.

An (item, stage) is *retried* when any of its spans is in a group of several attempts or
client calls, *failed* when any is an error. The rework time of a group is the time from its
first attempt's start to its last attempt's start: the failed attempts' process and the waits
before their retries. Redeliveries in traces of their own (each attempt a new trace linked to
the producer) make an item path per attempt: :func:`group_flags` gives each (item, stage) its
hand-over span (``delivery``) so that :mod:`mapper.analysis.flow` counts them as one item.

Array work throughout (sorts, searches, bincounts), never a loop per span.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mapper.analysis.items import first_of_each, id_key
from mapper.analysis.traces import ItemTraces
from mapper.core.spans import KIND_CLIENT, SpanBatch

STATUS_ERROR = 2


@dataclass(frozen=True)
class GroupFlags:
    """Per (item, stage) group key (``item * n_stages + stage``, sorted, unique): whether any
    span errored, whether any was retried, the rework seconds, and the hand-over span (a row
    of the stage-matched spans; -1: none) its first attempt took the item from."""

    key: np.ndarray
    error: np.ndarray
    retried: np.ndarray
    rework: np.ndarray
    delivery: np.ndarray
    #: The longest rework of one group (seconds): how late a retry came at most.
    retry_delay_max: float = 0.0

    def at(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The flags of ``keys`` (error, retried, rework, delivery; absent keys: none)."""
        if not self.key.size:
            z = np.zeros(keys.size, dtype=bool)
            return z, z, np.zeros(keys.size), np.full(keys.size, -1, np.int64)
        pos = np.minimum(np.searchsorted(self.key, keys), self.key.size - 1)
        hit = self.key[pos] == keys
        return (hit & self.error[pos], hit & self.retried[pos], np.where(hit, self.rework[pos], 0.0),
                np.where(hit, self.delivery[pos], -1))


def _finder(hi: np.ndarray, lo: np.ndarray, span: np.ndarray):  # type: ignore[no-untyped-def]
    """A lookup of rows by (trace id, span id): one sort, then verified binary searches."""
    key = id_key(hi, lo, span)
    order = np.argsort(key, kind="stable")
    keys = key[order]

    def find(qh: np.ndarray, ql: np.ndarray, qs: np.ndarray) -> np.ndarray:
        if not keys.size or not qs.size:
            return np.full(qs.size, -1, np.int64)
        needles = id_key(qh, ql, qs)
        by = np.argsort(needles)  # sorted needles: each binary search starts near the last one
        at = np.empty(needles.size, np.int64)
        at[by] = np.searchsorted(keys, needles[by])
        cand = order[np.minimum(at, keys.size - 1)]
        ok = (span[cand] == qs) & (hi[cand] == qh) & (lo[cand] == ql) & (qs != 0)
        return np.where(ok, cand, -1)

    return find


def _groups(key: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by (key, start); per row whether its group has more than one row; per row
    the group's rework (last start - first start, ns) on the group's first row, else 0."""
    order = np.lexsort((start, key))
    if not key.size:
        return order, np.zeros(0, bool), np.zeros(0, np.int64)
    k = key[order]
    first = np.r_[True, k[1:] != k[:-1]]
    gid = np.cumsum(first) - 1
    size = np.bincount(gid)
    s = start[order]
    heads = np.flatnonzero(first)
    last = np.r_[heads[1:], k.size] - 1
    span_ns = s[last] - s[heads]
    several = size[gid] > 1
    rework = np.zeros(k.size, np.int64)
    rework[heads] = np.where(size > 1, span_ns, 0)
    return order, several, rework


def group_flags(batch: SpanBatch, stage_i: np.ndarray, upstream_i: Sequence[int], ids: ItemTraces,
                n_st: int) -> GroupFlags:
    """The :class:`GroupFlags` of every (item, stage) of a trace table built from ``batch``
    with stage indices ``stage_i`` (-1: in no stage; ``upstream_i`` the upstream stage index
    of each stage, -1 for a first) and item map ``ids`` (its rows index the matched spans)."""
    used = np.flatnonzero(stage_i >= 0)
    n = used.size
    st = stage_i[used].astype(np.int64)
    hi, lo, sid = batch.trace_hi[used], batch.trace_lo[used], batch.span_id[used]
    pid, start = batch.parent_id[used], batch.start_ns[used]
    find = _finder(hi, lo, sid)
    up = np.asarray(upstream_i, np.int64)[st]
    p = np.full(n, -1, np.int64)
    child = np.flatnonzero(pid != 0)
    p[child] = find(hi[child], lo[child], pid[child])
    target = np.where((p >= 0) & (up >= 0) & (st[np.maximum(p, 0)] == up), p, -1)
    # every (span, hand-over span) pair: its parent, and each of its links, on its upstream stage
    by_parent = np.flatnonzero(target >= 0)
    cand_r, cand_c = by_parent, target[by_parent]
    links = batch.all_links
    if len(links):
        pos = np.full(len(batch), -1, np.int64)
        pos[used] = np.arange(n)
        lr = pos[links.row]
        t = find(links.trace_hi, links.trace_lo, links.span_id)
        ok = np.flatnonzero((lr >= 0) & (t >= 0))
        ok = ok[(up[lr[ok]] >= 0) & (st[t[ok]] == up[lr[ok]])]
        cand_r, cand_c = np.r_[cand_r, lr[ok]], np.r_[cand_c, t[ok]]
        ok = ok[target[lr[ok]] < 0]
        ok = ok[first_of_each(lr[ok])]  # links in their order: the first one to the upstream stage
        target[lr[ok]] = t[ok]
    retried = np.zeros(n, bool)
    rework = np.zeros(n, np.int64)
    # a copy of a span (an export sent twice; the live stream keeps copies) is no second attempt
    me = find(hi, lo, sid)
    copy = (me >= 0) & (me != np.arange(n))
    att = np.flatnonzero((target >= 0) & ~copy)
    order, several, rw = _groups(st[att] * max(n, 1) + target[att], start[att])
    retried[att[order]] = several
    rework[att[order]] += rw
    error = (batch.status[used] == STATUS_ERROR) | (batch.exceptions[used] > 0)
    cl = np.flatnonzero((batch.kind[used] == KIND_CLIENT) & (pid != 0) & ~copy)
    if cl.size:
        name = pd.factorize(batch.name[used][cl])[0].astype(np.int64)
        k = np.asarray(pd.factorize(pd.MultiIndex.from_arrays([hi[cl], lo[cl], pid[cl], name, st[cl]]))[0],
                       np.int64)
        order, several, rw = _groups(k, start[cl])
        # the same call made again after an attempt failed: a retry. Calls repeated with no
        # failure before them are a loop (a query per recipient), not rework
        ks, failed = k[order], error[cl[order]]
        last = np.r_[ks[1:] != ks[:-1], True]
        gid = np.cumsum(np.r_[True, ks[1:] != ks[:-1]]) - 1
        redo = (np.bincount(gid, weights=failed & ~last) > 0)[gid]
        retried[cl[order]] |= several & redo
        rework[cl[order]] += np.where(redo, rw, 0)
    rows = np.arange(ids.unit.size) if ids.row is None else ids.row
    g = ids.unit.astype(np.int64) * n_st + st[rows]
    key, inv = np.unique(g, return_inverse=True)
    m = key.size
    delivery = np.full(m, np.iinfo(np.int64).max, np.int64)
    has = target[rows] >= 0
    np.minimum.at(delivery, inv[has], target[rows][has])
    own = _own_delivery(ids.unit.astype(np.int64), rows, n, st, cand_r, cand_c, key, n_st)
    delivery = np.where(own >= 0, own, delivery)
    return GroupFlags(key, np.bincount(inv, weights=error[rows], minlength=m) > 0,
                      np.bincount(inv, weights=retried[rows], minlength=m) > 0,
                      np.bincount(inv, weights=rework[rows], minlength=m) * 1e-9,
                      np.where(delivery == np.iinfo(np.int64).max, -1, delivery),
                      float(rework.max(initial=0)) * 1e-9)


def _own_delivery(unit: np.ndarray, rows: np.ndarray, n: int, st: np.ndarray, cand_r: np.ndarray,
                  cand_c: np.ndarray, key: np.ndarray, n_st: int) -> np.ndarray:
    """Per group of ``key`` (item x stage): the hand-over span of its own item path that its
    spans took the item from (-1: none in the path). A batch consumer linked to several
    producers is in each producer's item path: each of those items was handed over by its own
    producer, not by the consumer's first link (which would make them one redelivered item)."""
    out = np.full(key.size, -1, np.int64)
    if not cand_r.size or not rows.size:
        return out
    member = np.unique(unit * n + rows)  # (item path, span) pairs
    by_row = np.argsort(rows, kind="stable")
    sorted_rows = rows[by_row]
    first = np.searchsorted(sorted_rows, cand_c, "left")
    count = np.searchsorted(sorted_rows, cand_c, "right") - first
    pair = np.repeat(np.arange(cand_c.size), count)  # (candidate, an item path holding its hand-over span)
    offset = np.arange(pair.size) - np.repeat(np.cumsum(count) - count, count)
    u = unit[by_row[first[pair] + offset]]
    r, c = cand_r[pair], cand_c[pair]
    at = np.minimum(np.searchsorted(member, u * n + r), member.size - 1)
    keep = member[at] == u * n + r  # the span is on that item path too
    g = u[keep] * n_st + st[r[keep]]
    pos = np.searchsorted(key, g)
    best = np.full(key.size, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(best, pos, c[keep])
    return np.where(best == np.iinfo(np.int64).max, -1, best)


def instances_of(batch: SpanBatch, stage_i: np.ndarray, n_st: int) -> tuple[list[frozenset[str]], np.ndarray]:
    """Per stage: the distinct ``service.instance.id`` of its spans, and how many of its spans
    have none (unknown)."""
    used = np.flatnonzero(stage_i >= 0)
    codes, names = pd.factorize(batch.instance[used])  # None: code -1
    st = stage_i[used].astype(np.int64)
    unknown = np.bincount(st[codes < 0], minlength=n_st)
    pairs = np.unique(st[codes >= 0] * max(len(names), 1) + codes[codes >= 0])
    out: list[frozenset[str]] = [frozenset() for _ in range(n_st)]
    for k in range(n_st):
        mine = pairs[pairs // max(len(names), 1) == k] % max(len(names), 1)
        out[k] = frozenset(str(names[i]) for i in mine.tolist())
    return out, unknown


def upstream_indices(stages: Sequence[str], upstream: Mapping[str, str | None]) -> list[int]:
    """The upstream stage index of each of ``stages`` (-1: a first stage)."""
    at = {s: i for i, s in enumerate(stages)}
    return [at.get(upstream.get(s) or "", -1) for s in stages]



def busy_intervals(batch: SpanBatch, stage_i: np.ndarray, window: tuple[float, float]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """When each stage's instances were busy: per instance, its spans' intervals merged (a
    worker serving several items at once is busy once, not once per item) and clipped to
    ``window``; as ``(stage, start, end)`` arrays of disjoint-per-instance intervals (Unix
    seconds). Spans without a ``service.instance.id`` are left out (their stage's workers
    are unknown, so it gets no utilisation from instances)."""
    used = np.flatnonzero(stage_i >= 0)
    codes = pd.factorize(batch.instance[used])[0].astype(np.int64)
    used, codes = used[codes >= 0], codes[codes >= 0]
    if not used.size:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    ws, we = window
    st = stage_i[used].astype(np.int64)
    a = np.clip(batch.start_ns[used] * 1e-9, ws, we) - ws
    b = np.clip(batch.end_ns[used] * 1e-9, ws, we) - ws
    group = st * (int(codes.max()) + 1) + codes
    order = np.lexsort((a, group))
    g, a, b = group[order], a[order], b[order]
    # a running maximum of the ends within each group: the groups shifted apart on one axis
    shift = g.astype(np.float64) * (we - ws + 1.0)
    reach = np.maximum.accumulate(b + shift) - shift
    new = np.r_[True, (g[1:] != g[:-1]) | (a[1:] > reach[:-1])]
    heads = np.flatnonzero(new)
    return st[order][heads], a[heads] + ws, np.maximum.reduceat(b, heads) + ws
