"""The flow of the live value stream: where an item stops, what waits before a stage, and
each stage's items by outcome, with the map's definitions (:mod:`mapper.analysis.flow`).

Most items of a stream need not reach its last stage (a tick that raises no alert stops at
alerting), so the join store cannot wait for every stage. It waits for **open hand-overs**
instead: a span of a stage that hands the item to a next stage (a stage whose upstream is this
one) and that no span of a next stage has taken yet (as parent or by a span link):

* a PRODUCER span of a stage that has next stages, sent to the destination of the first next
  stage whose selector accepts it (a next stage whose selector names a ``destination``
  accepts only that destination; one that names none accepts any), or to none (a message to a
  topic no stage of the stream consumes is not a hand-over);
* a CLIENT span whose ``peer.service`` is a next stage's service (a synchronous call).

A group with no open hand-over that has been quiet for ``settle`` is complete: each of its
items stopped at the last stage it reached. One with an open hand-over waits (the message is
in a queue: the item is **inventory** before the next stage) until the consumer's span comes
or ``ttl``. The inventory gauge counts the open hand-overs held, per next stage: the items
handed over and not yet seen at that stage. A span is exported when it ends, so an item being
processed is counted until its span comes (the gauge is the items waiting plus those in
process at the stage, an upper bound on the waiting ones, late by the exporters' delay).

A group is only emitted once its items came in through the stream's entry: every stage it
has, has its upstream stage too (:func:`reached`). A consumer whose producer never arrived
expires incomplete, as before.

Outcomes of the emitted items (:func:`stage_outcomes`) are :func:`mapper.analysis.flow.flow_sums`
of the emitted spans, so the live counts equal the map's for the same spans: ``passed``
(handed on to a next stage) and ``stopped`` (its last stage) partition the items that reached
a stage; ``failed`` (an attempt had span status ERROR or an exception event) and, of the
others, ``retried`` (processed more than once: a redelivery, several consumer spans taking one
producer span, or a client call repeated) count each item not right the first time once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mapper.analysis.flow import flow_sums
from mapper.analysis.flow_spans import upstream_indices
from mapper.analysis.items import SpanIndex
from mapper.analysis.traces import StageMatch, TraceTable
from mapper.core.spans import KIND_CLIENT, KIND_PRODUCER, SpanBatch

#: The ``outcome`` label values, as :data:`mapper.core.names.OUTCOMES` lists them.
PASSED, STOPPED, FAILED, RETRIED = "passed", "stopped", "failed", "retried"


def next_stage(b: SpanBatch, stage_i: np.ndarray, matches: Sequence[StageMatch],
               up_i: Sequence[int]) -> np.ndarray:
    """Per span: the index of the next stage it hands its item to (-1: not a hand-over span)."""
    to = np.full(len(b), -1, np.int64)
    for k in range(len(matches)):
        kids = [j for j, u in enumerate(up_i) if u == k]
        if not kids:
            continue
        mine = stage_i == k
        prod = mine & (b.kind == KIND_PRODUCER)
        client = mine & (b.kind == KIND_CLIENT)
        for j in kids:  # the first next stage that accepts it
            m = matches[j]
            dest = (m.attributes or {}).get("destination")
            accepts = prod if dest is None else prod & (b.destination == dest)
            accepts = accepts | (client & (b.peer_service == m.service))
            to[accepts & (to < 0)] = j
    return to


def open_handovers(b: SpanBatch, stage_i: np.ndarray, matches: Sequence[StageMatch],
                   upstream: Mapping[str, str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Per span: whether it is a hand-over no span of a next stage has taken yet, and the next
    stage it hands to (:func:`next_stage`). Taken: a span of a stage whose upstream is the
    hand-over's stage has it as parent or links to it (any copy of it: an export sent twice)."""
    up_i = upstream_indices([m.stage for m in matches], upstream)
    to = next_stage(b, stage_i, matches, up_i)
    cand = np.flatnonzero(to >= 0)
    if not cand.size:
        return np.zeros(len(b), bool), to
    idx = SpanIndex(b)
    up = np.asarray([*up_i, -1], np.int64)[stage_i]  # stage_i -1 (no stage): no upstream
    child = np.flatnonzero((up >= 0) & (b.parent_id != 0))
    parents = idx.find(b.trace_hi[child], b.trace_lo[child], b.parent_id[child])
    taker = [child]
    target = [parents]
    links = b.all_links
    if len(links):
        lrow = links.row
        keep = np.flatnonzero(up[lrow] >= 0)
        taker.append(lrow[keep])
        target.append(idx.find(links.trace_hi[keep], links.trace_lo[keep], links.span_id[keep]))
    by, t = np.concatenate(taker), np.concatenate(target)
    ok = t >= 0
    ok[ok] = stage_i[t[ok]] == up[by[ok]]
    taken = np.unique(t[ok])  # rows found first for their id: one per distinct span
    first = idx.find(b.trace_hi[cand], b.trace_lo[cand], b.span_id[cand])
    pending = np.zeros(len(b), bool)
    # one per distinct span: a copy of an export sent twice is not a second item waiting
    pending[cand[~np.isin(first, taken) & (first == cand)]] = True
    return pending, to


def reached(present: np.ndarray, up_i: Sequence[int]) -> np.ndarray:
    """Per group (rows of ``present``: group x stage): it has a stage, and every stage it has
    has its upstream stage too (its items came in through the stream's entry)."""
    ok = np.asarray(present.any(axis=1), dtype=bool)
    for k, u in enumerate(up_i):
        if u >= 0:
            ok &= ~present[:, k] | present[:, u]
    return ok


def pending_items(table: TraceTable, pending: np.ndarray, group: np.ndarray,
                  n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group: the items of ``table`` in it, and those with an open hand-over.
    ``pending`` and ``group`` are per span of the batch the table was built from."""
    ids = table.ids
    if ids is None or not ids.unit.size:
        return np.zeros(n_groups, np.int64), np.zeros(n_groups, np.int64)
    unit = ids.unit.astype(np.int64)
    row = np.arange(unit.size) if ids.row is None else ids.row
    item_group = np.full(int(unit.max()) + 1, -1, np.int64)
    item_group[unit] = group[row]
    items = np.unique(unit)
    waiting = np.unique(unit[pending[row]])
    return (np.bincount(item_group[items], minlength=n_groups),
            np.bincount(item_group[waiting], minlength=n_groups))


def stage_outcomes(table: TraceTable, b: SpanBatch, matches: Sequence[StageMatch],
                   upstream: Mapping[str, str | None]) -> dict[str, dict[str, int]]:
    """Per stage, the emitted items by outcome: :func:`mapper.analysis.flow.flow_sums` of the
    spans ``b`` the table was built from, so the counts are the map's for the same spans."""
    if not len(table.frame):
        return {}
    window = (float(b.start_ns.min()) / 1e9, float(b.end_ns.max()) / 1e9 + 1e-3)
    sums = flow_sums(table, b, matches, upstream, window)
    out = {}
    for stage, s in sums.stages.items():
        if s.items_in:
            out[stage] = {PASSED: s.out, STOPPED: s.items_in - s.out, FAILED: s.failed,
                          RETRIED: s.not_first_pass - s.failed}
    return out
