"""Items across traces: spans connected by parent edges *and* span links are one item.

A message-driven consumer usually starts a new trace with a span link to the producer (the
OpenTelemetry messaging conventions; every batch receive does). The unit of the value
stream is therefore not a trace but an **item path**: a chain of traces joined by links,
from a *root* trace (one that links to no other trace in the data) to a trace nothing links
to. Traces are nodes, a link from a span of trace C to a span of trace P is an edge P -> C.

* A trace linked from one consumer trace is one path: the two traces are one item.
* A **batch** consumer span links to many producers: each linked producer's path continues
  into the consumer's trace, so the consumer trace belongs to every one of those items (its
  span's duration is each item's process time; each producer is one item handed over).
* **Fan-out** by links (one tick, several alert traces linked to it) gives one path per
  branch: one lead-time sample per path that reaches the last stage. (Fan-out by parent
  edges inside one trace stays one trace, one sample: the trace's first start to its last
  end.) Stage samples of a trace shared by the branches of one root are counted once.
* A path leaves a trace only through producers at or below the span it entered by (the
  deepest span linked to its producer), so per-message spans under a batch span keep each
  message on its own path; when none is below it, through every producer of the trace,
  unless the entry span has PRODUCER spans of its own below it whose consumers are not in the
  data: then the path ends there (it is not paired with the other messages' consumers).

Everything is array work: the link targets are found by a sorted 64-bit key and verified
against the full ids, cycles by :func:`scipy.sparse.csgraph.connected_components`, and the
paths are grown one link level at a time over whole arrays (the depth is the number of
link hops, not the number of spans).

Bad input is counted with stable check codes, never dropped silently: ``link-malformed``
(a link whose id was malformed on the wire), ``link-target-missing`` (the linked span is not
in the data: producer not sampled, outside the window, or in no stage), ``link-cycle``
(traces that link to each other in a circle: their links are not followed),
``link-fan-in`` (a consumer span linked to more than :data:`MAX_FAN_IN` producers),
``link-duplicate`` (the same link listed twice on a span: followed once),
``link-paths-capped`` (links forking into more than :data:`PATHS_PER_TRACE` paths per trace
and link: growth stops, so bad data cannot exhaust memory).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapper.analysis.sorting import stable_order
from mapper.core.model import Check
from mapper.core.spans import KIND_PRODUCER, SpanBatch

#: Links of one span beyond which a ``link-fan-in`` check is raised (each is still an item).
MAX_FAN_IN = 1000
#: Link hops followed from a root; deeper chains are cut and counted (``link-cycle``).
MAX_DEPTH = 256
#: Parent levels walked inside one trace (a parent cycle in bad data stops here).
MAX_TREE_DEPTH = 256
#: Item paths allowed per trace and link (fan-out and ambiguous batches multiply paths);
#: beyond, paths are not forked further and ``link-paths-capped`` says so.
PATHS_PER_TRACE = 4

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Items:
    """The item paths of a batch, as an expansion of its rows.

    ``rows`` (None: the identity, no link joins traces) gives for each expanded row the
    batch row it copies; ``unit`` its item path (dense codes ``0..n_units-1``); ``root``
    each path's root trace code. ``edges`` counts the span links between traces followed.
    ``index`` is the batch's :class:`SpanIndex` when one was built (links were followed),
    so that the hand-over lookup need not sort the spans again.
    """

    rows: np.ndarray | None
    unit: np.ndarray
    n_units: int
    root: np.ndarray
    edges: int
    checks: tuple[Check, ...] = ()
    index: SpanIndex | None = None


def id_key(hi: np.ndarray, lo: np.ndarray, span: np.ndarray) -> np.ndarray:
    """A 64-bit key of a (trace id, span id); not unique in theory, so hits are verified."""
    with np.errstate(over="ignore"):
        return (np.asarray(span, np.uint64) ^ (np.asarray(hi, np.uint64) * _GOLDEN)
                ^ ((np.asarray(lo, np.uint64) + np.uint64(1)) * np.uint64(0xC2B2AE3D27D4EB4F)))


class SpanIndex:
    """The rows of a batch by (trace id, span id): one sort, then binary searches."""

    def __init__(self, b: SpanBatch) -> None:
        self.b = b
        key = id_key(b.trace_hi, b.trace_lo, b.span_id)
        self.order = stable_order(key)
        self.keys = key[self.order]
        self._parent = np.full(len(b), -2, dtype=np.int64)  # -2: not looked up yet
        self._above_producer: np.ndarray | None = None

    def find(self, hi: np.ndarray, lo: np.ndarray, span: np.ndarray) -> np.ndarray:
        """Row holding each (trace id, span id), or -1. The first of duplicates wins."""
        b = self.b
        if len(b) == 0 or span.size == 0:
            return np.full(span.size, -1, dtype=np.int64)
        needles = id_key(hi, lo, span)
        # Sorted needles let each binary search start where the previous one ended.
        by_needle = stable_order(needles)
        at = np.empty(needles.size, dtype=np.int64)
        at[by_needle] = np.searchsorted(self.keys, needles[by_needle])
        cand = self.order[np.minimum(at, self.keys.size - 1)]
        ok = (b.span_id[cand] == span) & (b.trace_hi[cand] == hi) & (b.trace_lo[cand] == lo) & (span != 0)
        return np.where(ok, cand, -1)

    def parent(self, rows: np.ndarray) -> np.ndarray:
        """The parent's row of each row (-1: none in the data), looked up once per row."""
        todo = rows[self._parent[rows] == -2]
        if todo.size:
            b = self.b
            root = b.parent_id[todo] == 0
            self._parent[todo[root]] = -1
            todo = todo[~root]
            self._parent[todo] = self.find(b.trace_hi[todo], b.trace_lo[todo], b.parent_id[todo])
        return self._parent[rows]

    def is_within(self, rows: np.ndarray, top: np.ndarray) -> np.ndarray:
        """Whether each row is ``top`` or below it in its trace's parent tree."""
        hit = rows == top
        cur = rows.copy()
        live = np.flatnonzero(~hit)
        for _ in range(MAX_TREE_DEPTH):
            if not live.size:
                break
            up = self.parent(cur[live])
            cur[live] = up
            found = up == top[live]
            hit[live[found]] = True
            live = live[~found & (up >= 0)]
        return hit

    def above_producer(self, rows: np.ndarray) -> np.ndarray:
        """Whether each row has a PRODUCER span below it in its trace (computed once for all)."""
        if self._above_producer is None:
            above = np.zeros(len(self.b), dtype=bool)
            cur = np.flatnonzero(self.b.kind == KIND_PRODUCER)
            for _ in range(MAX_TREE_DEPTH):
                if not cur.size:
                    break
                up = self.parent(cur)
                up = np.unique(up[up >= 0])
                cur = up[~above[up]]
                above[cur] = True
            self._above_producer = above
        return self._above_producer[rows]

    def depth(self, rows: np.ndarray) -> np.ndarray:
        """Ancestors of each row in the data (capped at :data:`MAX_TREE_DEPTH`)."""
        out = np.zeros(rows.size, dtype=np.int64)
        cur = rows.copy()
        live = np.arange(rows.size)
        for _ in range(MAX_TREE_DEPTH):
            up = self.parent(cur[live])
            live, cur_up = live[up >= 0], up[up >= 0]
            if not live.size:
                break
            out[live] += 1
            cur[live] = cur_up
        return out


def find_spans(b: SpanBatch, hi: np.ndarray, lo: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Row of ``b`` holding each (trace id, span id), or -1 (see :class:`SpanIndex`)."""
    return SpanIndex(b).find(hi, lo, span)


def first_of_each(key: np.ndarray) -> np.ndarray:
    """Index of the first occurrence of each distinct value of ``key``."""
    order = stable_order(key)
    k = key[order]
    return order[np.r_[True, k[1:] != k[:-1]]] if k.size else order


def expand_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ranges ``starts[i] .. starts[i]+counts[i]-1``."""
    total = int(counts.sum())
    if total == 0:
        return np.array([], dtype=np.int64)
    head = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + (np.arange(total) - head)


def build_items(b: SpanBatch, trace: np.ndarray, n_tr: int) -> Items:
    """The item paths of ``b`` whose rows have dense trace codes ``trace`` (``0..n_tr-1``)."""
    links = b.all_links
    checks: list[Check] = []
    identity = Items(None, trace, n_tr, np.arange(n_tr), 0)
    if len(links) == 0:
        return identity
    malformed = (links.span_id == 0) | ((links.trace_hi == 0) & (links.trace_lo == 0))
    if malformed.any():
        checks.append(Check("warning", "link-malformed",
                            f"{int(malformed.sum()):,} span links had a malformed trace or span id "
                            f"(on {np.unique(links.row[malformed]).size:,} spans); not followed"))
    per_span = links.counts(len(b))
    if per_span.max(initial=0) > MAX_FAN_IN:
        big = per_span > MAX_FAN_IN
        checks.append(Check("warning", "link-fan-in",
                            f"{int(big.sum()):,} spans link to more than {MAX_FAN_IN:,} producers each "
                            f"(up to {int(per_span.max()):,}); each linked producer is one item, its "
                            "duration that item's process time"))
    good = np.flatnonzero(~malformed)
    index = SpanIndex(b)
    target = index.find(links.trace_hi[good], links.trace_lo[good], links.span_id[good])
    missing = target < 0
    if missing.any():
        checks.append(Check("info", "link-target-missing",
                            f"{int(missing.sum()):,} span links name a span that is not in the data (producer "
                            "not sampled, outside the window, or in no stage); those consumers start their "
                            "own item"))
    src = links.row[good][~missing]
    tgt = target[~missing]
    cross = trace[tgt] != trace[src]
    # (linking row, target row) listed twice is one hand-over
    dup_key = np.sort(src.astype(np.int64) * len(b) + tgt)
    n_dup = int(np.sum(dup_key[1:] == dup_key[:-1]))
    if n_dup:
        checks.append(Check("info", "link-duplicate",
                            f"{n_dup:,} span links repeat another link of the same span; followed once"))
    if not cross.any():
        return Items(None, trace, n_tr, np.arange(n_tr), 0, tuple(checks), index)
    # span-level edges (producer row -> linking row), each once
    ekey = first_of_each(src[cross].astype(np.int64) * len(b) + tgt[cross])
    q, r = tgt[cross][ekey], src[cross][ekey]
    # Paths first: when every trace is on a path and no path hit the depth limit there is no
    # cycle, and the strongly connected components need not be computed.
    cap = PATHS_PER_TRACE * (n_tr + int(q.size)) + 1000
    items, acyclic = _paths(trace, n_tr, q, r, index, tuple(checks), cap, final=False)
    if acyclic:
        return items
    keep, cut = _break_cycles(trace[q], trace[r], n_tr)
    if cut:
        checks.append(Check("warning", "link-cycle",
                            f"{cut:,} traces link to each other in a circle; the links among them are not "
                            "followed (each starts its own item)"))
    return _paths(trace, n_tr, q[keep], r[keep], index, tuple(checks), cap, final=True)[0]


def _break_cycles(p_tr: np.ndarray, c_tr: np.ndarray, n_tr: int) -> tuple[np.ndarray, int]:
    """Which edges are outside every strongly connected group of traces, and how many
    traces are in such groups."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(p_tr.size, np.int8), (p_tr, c_tr)), shape=(n_tr, n_tr)).tocsr()
    n_comp, label = connected_components(graph, directed=True, connection="strong")
    if n_comp == n_tr:
        return np.ones(p_tr.size, dtype=bool), 0
    size = np.bincount(label, minlength=n_comp)
    inside = (label[p_tr] == label[c_tr]) & (size[label[p_tr]] > 1)
    return ~inside, int(np.sum(size[size > 1]))


def _paths(trace: np.ndarray, n_tr: int, q: np.ndarray, r: np.ndarray, index: SpanIndex,
           checks: tuple[Check, ...], cap: int, final: bool) -> tuple[Items, bool]:
    """Grow every path from its root trace one link hop at a time; expand the rows.

    Edges are span links: producer row ``q`` (trace P) -> linking row ``r`` (trace C). A
    path remembers the span it entered its last trace by (the linking span, the deepest one
    when several link to its producer) and leaves that trace only through producers at or
    below that span, so per-message spans under a batch span keep each message's own path;
    when no producer of the trace is below it (the batch span alone links, its producers are
    siblings), every producer of the trace continues the path. Also returns whether the
    graph is certainly acyclic (every trace on a path, no path cut). More than ``cap``
    paths (a cycle followed round, or many forks) stop the growth: a first attempt
    (``final`` False) gives up so that cycles can be broken, the final one keeps the
    paths grown so far and says so.
    """
    edges = _Edges.of(trace, n_tr, q, r)
    roots = np.flatnonzero(~(np.bincount(edges.child, minlength=n_tr) > 0))
    paths = _Paths(roots)
    f_u, f_t, f_e = paths.pair_u[0], roots, np.full(roots.size, -1, dtype=np.int64)
    depth = 0
    extra: list[Check] = []
    while f_t.size:
        k = edges.deg[f_t]
        go = k > 0
        if not go.any():
            break
        stop = _stop(go, depth, paths.n, cap, final)
        if stop is not None:
            extra.append(stop)
            break
        depth += 1
        cand, cf = _next_hops(edges, index, n_tr, f_t[go], f_e[go], k[go])
        child = edges.child[cand]
        f_u, f_t, f_e = paths.step(f_u[go], cf, child), child, edges.r[cand]
    traces = np.concatenate(paths.pair_t)
    rows, unit = _expand_rows(trace, n_tr, np.concatenate(paths.pair_u), traces)
    acyclic = not extra and bool(np.all(np.bincount(traces, minlength=n_tr) > 0))
    return Items(rows, unit, paths.n, np.concatenate(paths.root_of), int(q.size), checks + tuple(extra)), acyclic


@dataclass(frozen=True, eq=False)
class _Edges:
    """The span links to follow, sorted by producer trace: producer row ``q``, linking row
    ``r`` and its (consumer) trace ``child``; trace ``t``'s edges are ``start[t]`` onwards,
    ``deg[t]`` of them."""

    q: np.ndarray
    r: np.ndarray
    child: np.ndarray
    deg: np.ndarray
    start: np.ndarray

    @classmethod
    def of(cls, trace: np.ndarray, n_tr: int, q: np.ndarray, r: np.ndarray) -> _Edges:
        p_all = trace[q]
        by_p = np.argsort(p_all)
        deg = np.bincount(p_all, minlength=n_tr)
        return cls(q[by_p], r[by_p], trace[r][by_p], deg, np.cumsum(deg) - deg)


class _Paths:
    """The item paths grown so far: ``(path, trace)`` pairs (``pair_u``, ``pair_t``, one
    array per step), each path's root trace (``root_of``, in path order) and the count ``n``."""

    def __init__(self, roots: np.ndarray) -> None:
        self.pair_u = [np.arange(roots.size)]
        self.pair_t = [roots]
        self.root_of = [roots]
        self.n = int(roots.size)

    def step(self, fu: np.ndarray, cf: np.ndarray, child: np.ndarray) -> np.ndarray:
        """Frontier path ``fu[cf[i]]`` steps into trace ``child[i]`` (``cf`` sorted); a path
        stepping into several traces forks: its first step keeps its code, the others are new
        paths that carry a copy of the traces before the fork. Returns each step's path."""
        fk2 = np.bincount(cf, minlength=fu.size)
        from_u = fu[cf]
        branch = np.arange(cf.size) - np.repeat(np.cumsum(fk2) - fk2, fk2)
        forks = branch > 0
        new_u = from_u.copy()
        n_new = int(forks.sum())
        if n_new:
            new_u[forks] = self.n + np.arange(n_new)
            self.n += n_new
            all_u, all_t = np.concatenate(self.pair_u), np.concatenate(self.pair_t)
            by_u = np.argsort(all_u, kind="stable")
            cnt = np.bincount(all_u, minlength=self.n)
            head = np.cumsum(cnt) - cnt
            old = from_u[forks]
            self.pair_u.append(np.repeat(new_u[forks], cnt[old]))
            self.pair_t.append(all_t[by_u][expand_ranges(head[old], cnt[old])])
            self.root_of.append(np.concatenate(self.root_of)[old])
        self.pair_u.append(new_u)
        self.pair_t.append(child)
        return new_u


def _stop(go: np.ndarray, depth: int, n_units: int, cap: int, final: bool) -> Check | None:
    """Why growth stops before the next hop (``go``: the frontier paths that would go on), or
    None: a first attempt gives up at the depth or path limit (there may be a cycle to break);
    the final one says which limit cut the paths."""
    if not final and (depth == MAX_DEPTH or n_units > cap):
        return Check("warning", "link-cycle", "paths cut")
    if n_units > cap:
        return Check("warning", "link-paths-capped",
                     f"span links fork into more than {cap:,} item paths (fan-out, or batches whose "
                     "messages cannot be told apart); the paths are not followed further")
    if depth == MAX_DEPTH:
        return Check("warning", "link-cycle",
                     f"{int(go.sum()):,} item paths are longer than {MAX_DEPTH} link hops; cut there")
    return None


def _next_hops(edges: _Edges, index: SpanIndex, n_tr: int, ft: np.ndarray, fe: np.ndarray,
               fk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The next hop of each frontier path (in trace ``ft``, entered by span row ``fe``, -1 at
    a root; ``fk`` edges out): the edges it follows, and for each the frontier path's index,
    sorted by it. One step per (path, consumer trace), entered by its deepest linking span."""
    cand = expand_ranges(edges.start[ft], fk)
    cf = np.repeat(np.arange(ft.size), fk)
    entered = fe[cf] >= 0
    below = np.ones(cand.size, dtype=bool)
    if entered.any():
        at = np.flatnonzero(entered)
        below[at] = index.is_within(edges.q[cand[at]], fe[cf[at]])
    some = np.bincount(cf, weights=below, minlength=ft.size) > 0
    keep = below | ~some[cf]
    # No producer below the entry span links on, but the entry span has PRODUCER spans of
    # its own below it (a per-message span whose publish nobody in the data consumed: the
    # consumer not sampled, outside the window, not arrived yet): the message went there,
    # so the path ends; following every producer of the trace would pair it with the
    # other messages' consumers, items that do not exist.
    fallback = np.flatnonzero(entered & ~some[cf])
    if fallback.size:
        keep[fallback] = ~index.above_producer(fe[cf[fallback]])
    cand, cf = cand[keep], cf[keep]
    child = edges.child[cand]
    order = np.argsort(cf * n_tr + child, kind="stable")
    cand, cf, child = cand[order], cf[order], child[order]
    first = np.r_[True, (cf[1:] != cf[:-1]) | (child[1:] != child[:-1])]
    if not first.all():  # several spans of one trace link into the path: the deepest enters
        group = np.cumsum(first) - 1
        order = np.lexsort((-index.depth(edges.r[cand]), group))
        cand, cf = cand[order], cf[order]
    return cand[first], cf[first]


def _expand_rows(trace: np.ndarray, n_tr: int, units: np.ndarray, traces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The batch rows of each ``(unit, trace)`` pair's trace, copied once per pair, and the
    unit of each copy."""
    by_trace = np.argsort(trace, kind="stable")
    cnt = np.bincount(trace, minlength=n_tr)
    first = np.cumsum(cnt) - cnt
    rows = by_trace[expand_ranges(first[traces], cnt[traces])]
    return rows, np.repeat(units, cnt[traces])
