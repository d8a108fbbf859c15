"""How the live join store sees what it holds: spans grouped into items, and fast key lookups.

Traces joined by a span link in either direction are one **group** (the item, or the items
of a fan-out or a batch, exactly the paths :mod:`mapper.analysis.items` follows); a flush of
:class:`~mapper.analysis.live.JoinStore` decides per group. Vectorised throughout: one
connected-components pass over the links, one binary search per key against the store's
sorted rings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mapper.analysis.items import SpanIndex, id_key
from mapper.analysis.traces import trace_codes
from mapper.core.spans import SpanBatch


@dataclass(frozen=True, eq=False)
class Grouped:
    """What one flush works on: the held and new spans, their arrival times, each row's group
    (:func:`groups`), and per group its first and last arrival."""

    b: SpanBatch
    arrival: np.ndarray
    group: np.ndarray
    n: int
    first: np.ndarray
    last: np.ndarray
    fresh: int  # rows before this one were held by the last flush

    def rows(self, groups: np.ndarray) -> np.ndarray:
        """The rows of the groups in the mask ``groups``."""
        return np.flatnonzero(groups[self.group])


def grouped(chunks: Sequence[tuple[SpanBatch, np.ndarray]], fresh: int) -> Grouped:
    """``chunks`` (spans, arrival per span) as one batch grouped, the first ``fresh`` rows held before."""
    b = SpanBatch.concat([c[0] for c in chunks]) if len(chunks) > 1 else chunks[0][0]
    arrival = np.concatenate([c[1] for c in chunks]) if len(chunks) > 1 else chunks[0][1]
    group, n_groups = groups(b)
    first = np.full(n_groups, np.inf)
    np.minimum.at(first, group, arrival)
    last = np.full(n_groups, -np.inf)
    np.maximum.at(last, group, arrival)
    return Grouped(b, arrival, group, n_groups, first, last, fresh)


def truncated_groups(g: Grouped, truncated: Sequence[np.ndarray]) -> np.ndarray:
    """Groups with a span of a trace cut into at accept (``truncated``: trace keys)."""
    keys = np.sort(np.concatenate(truncated))
    hit = in_sorted(id_key(g.b.trace_hi, g.b.trace_lo, np.zeros(len(g.b), np.uint64)), keys)
    trunc = np.zeros(g.n, dtype=bool)
    trunc[g.group[hit]] = True
    return trunc


def in_sorted(keys: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Whether each key is in ``ring`` (sorted): the keys sorted first, then one binary search
    each (cache-friendly: 7 ms for 80k keys against 200k, against 80 ms for ``np.isin``)."""
    order = np.argsort(keys)
    k = keys[order]
    at = np.searchsorted(ring, k)
    at[at == ring.size] = 0
    out = np.empty(keys.size, dtype=bool)
    out[order] = ring[at] == k
    return out


def groups(b: SpanBatch) -> tuple[np.ndarray, int]:
    """Group code of every row: its trace's connected component over span links (both ways)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    trace = trace_codes(b.trace_hi, b.trace_lo).astype(np.int64)
    n_tr = int(trace.max()) + 1 if trace.size else 0
    links = b.all_links
    if len(links) == 0:
        return trace, n_tr
    good = np.flatnonzero(links.span_id != 0)
    target = SpanIndex(b).find(links.trace_hi[good], links.trace_lo[good], links.span_id[good])
    ok = target >= 0
    src = trace[links.row[good][ok]]
    dst = trace[target[ok]]
    cross = src != dst
    if not cross.any():
        return trace, n_tr
    graph = coo_matrix((np.ones(int(cross.sum()), np.int8), (src[cross], dst[cross])), shape=(n_tr, n_tr))
    n, label = connected_components(graph.tocsr(), directed=False)
    return label[trace].astype(np.int64), int(n)
