"""The wait into a stage from spans, and what a negative one means.

A wait is measured from a *hand-over*: the end of the stage's parent (or first linked) span in
the upstream stage, the start of that span when it is a CLIENT call, else the end of the
upstream stage's last span (:data:`WAIT_FROM` names them). A negative wait has two causes the
spans can tell apart without a host column (:class:`~mapper.core.spans.SpanBatch` carries no
``host.name``): on one clock a consumer can start before its producer's span *ends* (a Celery
``apply_async`` span that waits for the broker's ack) but never before that span *began*; a
consumer that starts before the hand-over span began needs clocks that disagree (skew between
hosts). Skew smaller than the hand-over span cannot be told from an early consumer; the
check says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mapper.core.model import Check
from mapper.core.spans import KIND_CLIENT, KIND_PRODUCER, SpanBatch

NS = 1e-9
#: What a wait is measured from, by the code in the trace frame's ``wait_from`` column.
WAIT_FROM = {0: "no hand-over", 1: "the end of its parent or linked span in the upstream stage",
             2: "the start of its parent CLIENT span in the upstream stage",
             3: "the end of the upstream stage's last span (no parent or link into it)"}


def handover_columns(kind: np.ndarray, start: np.ndarray, end: np.ndarray, prow: np.ndarray,
                     g_start: np.ndarray, g_end: np.ndarray, gkey: np.ndarray, g_trace: np.ndarray,
                     up_i: np.ndarray, n_st: int) -> dict[str, np.ndarray]:
    """Per (item, stage) group: ``wait`` (seconds, NaN without a hand-over), ``wait_from`` (a
    :data:`WAIT_FROM` code) and ``after_span_start`` (seconds from the hand-over span's start
    to the stage's start: below zero only when clocks disagree)."""
    parent_ok = prow >= 0
    safe = np.maximum(prow, 0)
    client = kind[safe] == KIND_CLIENT
    handover = np.where(client, start[safe], end[safe])
    # Fallback: the end of the upstream stage in the same item.
    up_g = g_trace * n_st + up_i
    j = np.clip(np.searchsorted(gkey, up_g), 0, gkey.size - 1)
    found = (up_i >= 0) & (gkey[j] == up_g)
    has = parent_ok | found
    hand = np.where(parent_ok, handover, np.where(found, g_end[j], 0))
    span_start = np.where(parent_ok, start[safe], g_start[j])
    return {
        "wait": np.where(has, (g_start - hand).astype(np.float64) * NS, np.nan),
        "wait_from": np.where(parent_ok, np.where(client, 2, 1), np.where(found, 3, 0)).astype(np.int8),
        "after_span_start": np.where(has, (g_start - span_start).astype(np.float64) * NS, np.nan),
    }


def negative_wait_checks(stage: str, waits: np.ndarray, after_start: np.ndarray | None,
                         wait_from: np.ndarray | None) -> list[Check]:
    """``negative-wait`` checks naming the cause: consumers that started before their hand-over
    span ended but after it began (possible on one host), and those that started before it
    began (clock skew between hosts). Arrays are the stage's items with a wait; ``after_start``
    and ``wait_from`` ``None`` (a route that does not keep them) gives one check of both causes."""
    neg = waits < 0
    if not neg.any():
        return []
    total = f"{waits.size:,}"
    if after_start is None or wait_from is None:
        return [Check("warning", "negative-wait",
                      f"{stage} wait: {int(neg.sum()):,} of {total} items start before their hand-over, by up "
                      f"to {-waits.min():.3g}s: a consumer that starts before its producer's span ends (one "
                      "host), or clock skew between hosts; kept, not clamped", stage, "wait")]
    out = []
    skew = neg & (after_start < 0)
    early = neg & ~skew
    if early.any():
        e = -waits[early]
        froms = "; ".join(f"{WAIT_FROM[c]} ({int(np.sum(early & (wait_from == c))):,})"
                          for c in (1, 2, 3) if np.any(early & (wait_from == c)))
        out.append(Check("warning", "negative-wait", (
            f"{stage} wait: {int(early.sum()):,} of {total} items start before their hand-over span ends "
            f"(by a median {np.median(e):.3g}s, up to {e.max():.3g}s) but after it began: possible on one host "
            f"(a consumer such as Celery starts while its producer's publish span still waits for the "
            f"broker), or skew smaller than that span. The wait is measured from {froms}; kept, not clamped"),
            stage, "wait"))
    if skew.any():
        s = -after_start[skew]
        out.append(Check("warning", "negative-wait", (
            f"{stage} wait: {int(skew.sum()):,} of {total} items start before their hand-over span even began "
            f"(by up to {s.max():.3g}s): clock skew between hosts (the spans carry no host; on one clock a "
            "consumer cannot start before its producer began); kept, not clamped"), stage, "wait"))
    return out


def first_stage_checks(batch: SpanBatch, stage_i: np.ndarray, names: Sequence[str],
                       upstream: Mapping[str, str | None]) -> list[Check]:
    """Why each first stage (no upstream) has no wait, one check per stage with spans.

    When its spans have a PRODUCER or CLIENT parent (or link) in a service that is no stage,
    the hand-over into the stream is in the data: ``first-stage-wait-not-measured`` names that
    service and proposes it as a stage before this one (which then measures the wait). Else
    ``first-stage-no-wait``: nothing traced hands items over to it."""
    out = []
    # Only spans outside the stream that hand over (PRODUCER, CLIENT) can be the source.
    outside = np.flatnonzero((stage_i < 0) & np.isin(batch.kind, (KIND_PRODUCER, KIND_CLIENT)))
    keys = pd.DataFrame({"th": batch.trace_hi[outside], "tl": batch.trace_lo[outside], "ref": batch.span_id[outside],
                         "p_service": batch.service[outside], "p_kind": batch.kind[outside],
                         "p_start": batch.start_ns[outside], "p_end": batch.end_ns[outside]})
    links = batch.all_links
    for i, name in enumerate(names):
        if upstream.get(name) is not None:
            continue
        rows = np.flatnonzero(stage_i == i)
        if rows.size == 0:
            continue
        with_parent = rows[batch.parent_id[rows] != 0]
        lk = np.isin(links.row, rows)
        refs = pd.DataFrame({"row": np.r_[with_parent, links.row[lk]],
                             "th": np.r_[batch.trace_hi[with_parent], links.trace_hi[lk]],
                             "tl": np.r_[batch.trace_lo[with_parent], links.trace_lo[lk]],
                             "ref": np.r_[batch.parent_id[with_parent], links.span_id[lk]]})
        hits = refs.merge(keys, on=["th", "tl", "ref"])
        hits = hits.drop_duplicates("row")
        if hits.empty:
            out.append(Check("info", "first-stage-no-wait", (
                f"{name} wait: not measured: it is a first stage and none of its {rows.size:,} spans has a "
                "PRODUCER or CLIENT parent or link outside the stream (the hand-over into the stream is not "
                "traced); its lead time starts at its first span"), name, "wait"))
            continue
        by = hits["p_service"].value_counts()
        top = str(by.index[0])
        mine = hits[hits["p_service"] == top]
        hand = np.where(mine["p_kind"] == KIND_CLIENT, mine["p_start"], mine["p_end"])
        wait = np.median(batch.start_ns[mine["row"].to_numpy()] - hand) * NS
        others = f" (also {', '.join(map(str, by.index[1:]))})" if by.size > 1 else ""
        out.append(Check("info", "first-stage-wait-not-measured", (
            f"{name} wait: not measured, though {int(by.iloc[0]):,} of its {rows.size:,} spans are handed over "
            f"by spans of {top!r}{others}, which is not a stage (median hand-over {wait:.3g}s); add "
            f"{{name: {top}, traces: {{service: {top}}}}} as a stage before {name} to measure this wait"),
            name, "wait"))
    return out
