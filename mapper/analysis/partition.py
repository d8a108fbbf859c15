"""Partitions that keep every item whole, and the per-partition kernel.

An item is the spans tied by parents *and* span links, across traces
(:mod:`mapper.analysis.items`), so bucketing spans by trace id alone would split the items
whose consumer trace links to its producer. The trace-to-item map comes first
(:func:`linked_groups`, a cheap pass over the trace ids and the link targets only: the
traces joined by links, grouped by connected components); every trace of a group goes to
the partition of the group's smallest trace key, every other trace to the partition of its
own key (:func:`partition_of`). A superset of the links the analysis follows (links from
spans in no stage, links to spans outside the window) only puts more traces together:
items stay whole, the results do not change.

:func:`partition_vectors` runs today's array kernel (:func:`~mapper.analysis.traces.build_trace_table`)
on one partition and returns its samples (per stage wait, process and hop; the lead time)
with the counts the checks need; :mod:`mapper.analysis.merge` merges them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mapper.analysis.attribution import MEDIAN_BAND, TAILS, item_parts
from mapper.analysis.examples import data_range
from mapper.analysis.flow import FlowSums, flow_sums
from mapper.analysis.merge import MergedSamples
from mapper.analysis.traces import StageMatch, TraceTable, build_trace_table, incomplete_check
from mapper.analysis.whatif import replay_hops
from mapper.core.distribution import Distribution, percentile_label
from mapper.core.model import Check, MeasurementResult
from mapper.core.spans import SpanBatch

LEAD = ("", "lead")
#: The lead time as the tail attribution reads it (first start to last end of the path's
#: stages, in seconds as the trace table holds them), one per item of :data:`ItemParts`.
PARTS_LEAD = ("", "parts_lead")
_MIX = np.uint64(0x9E3779B97F4A7C15)
#: The trace table's columns the tail attribution of a path reads (``attribution.item_parts``).
FRAME_COLUMNS = ("trace", "stage", "start", "end", "process", "wait")


def trace_hash(trace_lo: np.ndarray) -> np.ndarray:
    """A well-mixed 64-bit hash of the low half of a trace id (sequential ids spread too)."""
    with np.errstate(over="ignore"):
        return (np.asarray(trace_lo, np.uint64) * _MIX) >> np.uint64(17)


def group_key(trace_lo: np.ndarray) -> np.ndarray:
    """A 32-bit key per trace for grouping. Two traces that share one (about 1 in 10^9 per
    pair) only go to the same partition: items stay whole, nothing changes but the balance.
    Half the memory of the 64-bit ids for the trace-to-item map."""
    return (trace_hash(trace_lo) >> np.uint64(15)).astype(np.uint32)


def linked_groups(src: np.ndarray, dst: np.ndarray, chunk: int = 2_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Union-find over trace group keys joined by links (``src[i]`` links to ``dst[i]``).

    Returns the distinct linked keys (sorted) and, for each, its group's smallest key.
    Connected components by hooking and pointer jumping over int32 arrays (each round links
    every edge's larger root to its smaller, then every node to its root), so the memory is
    a few int32 per edge and per key (scipy's csgraph needs CSR copies several times that).
    Consumes ``src`` and ``dst`` (the caller drops its references to save their memory).
    """
    keys = np.concatenate([src, dst]).astype(np.uint32, copy=False)
    keys.sort()
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]] if keys.size else keys
    if not keys.size:
        return keys, keys
    si = _codes(keys, src)
    del src
    di = _codes(keys, dst)
    del dst
    label = np.arange(keys.size, dtype=np.int32)
    while True:
        hooked = False
        for at in range(0, si.size, chunk):  # in chunks: the temporaries stay small
            a, b = label[si[at:at + chunk]], label[di[at:at + chunk]]
            live = a != b
            if live.any():
                hooked = True
                a, b = a[live], b[live]
                np.minimum.at(label, np.maximum(a, b), np.minimum(a, b))
        if not hooked:
            break
        while True:  # pointer jumping: every node straight to its root
            up = label[label]
            if np.array_equal(up, label):
                break
            label = up
    # Hooking always goes to the smaller index, so a group's root is its smallest key.
    return keys, keys[label]


def _codes(keys: np.ndarray, values: np.ndarray, chunk: int = 4_000_000) -> np.ndarray:
    """The index of each value in sorted ``keys``, as int32, in chunks (searchsorted gives int64)."""
    out = np.empty(values.size, np.int32)
    for at in range(0, values.size, chunk):
        out[at:at + chunk] = np.searchsorted(keys, values[at:at + chunk])
    return out


def partition_of(trace_lo: np.ndarray, linked: np.ndarray, group: np.ndarray, n_parts: int) -> np.ndarray:
    """The partition of each row, by its trace (the low 64 bits of its id): the partition
    of its group's key when links join it to other traces (:func:`linked_groups`), else of
    its own."""
    key = group_key(trace_lo)
    if linked.size:
        at = np.minimum(np.searchsorted(linked, key), linked.size - 1)
        key = np.where(linked[at] == key, group[at], key)
    with np.errstate(over="ignore"):
        mixed = key.astype(np.uint64) * _MIX
    return ((mixed >> np.uint64(20)) % np.uint64(n_parts)).astype(np.int64)


@dataclass(frozen=True)
class PartVectors:
    """One partition's samples and counts (every field adds up across partitions)."""

    vectors: Mapping[tuple[str, str], np.ndarray]
    traces: int = 0
    spans_used: int = 0
    link_edges: int = 0
    stage_rows: Mapping[str, int] = field(default_factory=dict)
    negative_waits: Mapping[str, int] = field(default_factory=dict)
    min_wait: Mapping[str, float] = field(default_factory=dict)
    skewed_links: Mapping[str, int] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()
    #: With a ``path``: per item of the path, its lead and parts (``attribution.item_parts``).
    items: pd.DataFrame | None = None
    #: First and last start of the partition's stage rows (Unix seconds; None: no rows): the
    #: window's range the examples' time slices cut (``examples.data_range``).
    starts: tuple[float, float] | None = None
    #: Per ``(stage, "process" | "wait")``: each sample's time (the stage's start, unix
    #: seconds), aligned with ``vectors``: what the segments slot them by.
    times: Mapping[tuple[str, str], np.ndarray] = field(default_factory=dict)
    #: With ``replay``: the complete items' lead times and every stage's hop, one column
    #: each in the stages' order (``whatif.replay_hops``), for the what-if trace replay.
    replay: np.ndarray | None = None
    #: With ``frame``: the trace table's rows as ``attribution.item_parts`` reads them, for a
    #: path chosen after the merge (a stream of several paths).
    frame: pd.DataFrame | None = None
    #: Repeated spans (retried exports) dropped before the analysis: counted in spans-set-aside.
    duplicates: int = 0
    #: With a ``window``: the flow's sums (items in and out, rework, inventory, busy time),
    #: which add up across partitions (:meth:`~mapper.analysis.flow.FlowSums.merge`).
    flow: FlowSums | None = None


#: The check of a partitioned window whose spans were probability-sampled (see :func:`_unweighted`).
UNWEIGHTED = "sampled-traces-not-weighted"


def _unweighted(table: TraceTable, stages: Sequence[str]) -> list[Check]:
    """Partitions merge plain order statistics: the adjusted counts of probability-sampled
    spans (OTel ``th`` above 0) are not applied here, as the in-memory route applies them, so
    the counts are of sampled items. Said per stage rather than left as a silent difference."""
    f = table.frame
    if "th" not in f or not len(f):
        return []
    th = f["th"].to_numpy()
    out = []
    for s in stages:
        if np.any((th > 0) & (f["stage"].to_numpy() == s)):
            out.append(Check("warning", UNWEIGHTED, (
                f"{s}: items come from probability-sampled traces (OTel th); a window analysed "
                "partition by partition counts the sampled items and does not weight them by their adjusted "
                "count (a window within engine.memory_budget does); prefer the stage's metrics for its count"), s))
    return out


def partition_vectors(batch: SpanBatch, matches: Sequence[StageMatch],
                      upstream: Mapping[str, str | None], path: Sequence[str] | None = None,
                      on_table: Callable[[TraceTable], None] | None = None,
                      replay: bool = False, frame: bool = False,
                      window: tuple[float, float] | None = None) -> PartVectors:
    """The samples of one partition (whole items): ``(stage, part)`` -> seconds, part one of
    ``wait`` (NaN-free: items with a hand-over), ``process``, ``total``; ``LEAD`` the lead
    time of the complete items. ``on_table`` is given the partition's trace table (to keep
    it for a later pass); with ``window`` (Unix seconds) the flow's sums too."""
    table = build_trace_table(batch, matches, upstream)
    if on_table is not None:
        on_table(table)
    vectors: dict[tuple[str, str], np.ndarray] = {LEAD: np.asarray(table.lead, np.float64)}
    rows, neg, low, skew = {}, {}, {}, {}
    times = {}
    for m in matches:
        s = m.stage
        f = table.stage_frame(s)
        w = f["wait"].to_numpy(dtype=np.float64)
        has = ~np.isnan(w)
        start = f["start"].to_numpy(dtype=np.float64)
        times[(s, "process")], times[(s, "wait")] = start, start[has]
        vectors[(s, "process")] = f["process"].to_numpy(dtype=np.float64)
        vectors[(s, "wait")] = w[has]
        vectors[(s, "total")] = table.totals(s)
        rows[s] = int((table.frame["stage"] == s).sum())
        neg[s] = int(np.sum(w[has] < 0))
        low[s] = float(w[has].min()) if has.any() else 0.0
        skew[s] = int(np.sum(f["linked"].to_numpy()[has] & (w[has] < 0))) if "linked" in f else 0
    items = item_parts(table, path) if path else None
    if items is not None:
        vectors[PARTS_LEAD] = items["lead"].to_numpy(dtype=np.float64)
    starts = data_range(table) if len(table.frame) else None
    hops = None
    if replay:  # every stage's hop: the replay picks the map's path (known after the merge)
        lead, by_hop = replay_hops(table, table.stages)
        hops = (np.column_stack([lead, *(by_hop[s] for s in table.stages)]) if lead.size
                else np.zeros((0, len(table.stages) + 1)))
    checks = (*table.checks, *_unweighted(table, [m.stage for m in matches]))
    return PartVectors(vectors, table.traces, table.spans_used, table.link_edges, rows, neg, low, skew,
                       checks, items, starts=starts, times=times, replay=hops,
                       frame=table.frame[list(FRAME_COLUMNS)] if frame else None,
                       flow=flow_sums(table, batch, matches, upstream, window) if window is not None else None)


def set_sums(items: pd.DataFrame, thresholds: Mapping[str, tuple[float, float]]) -> dict[str, tuple[int, np.ndarray]]:
    """Per named set of items (lead within ``[low, high]``), its count and the sums of every
    column of ``items``: the tail attribution's means, added up across partitions."""
    lead = items["lead"].to_numpy()
    values = items.to_numpy(dtype=np.float64)
    out = {}
    for name, (low, high) in thresholds.items():
        sel = (lead >= low) & (lead <= high)
        out[name] = (int(sel.sum()), values[sel].sum(axis=0))
    return out


def merged_part_results(stage: str, provenance: str, dists: Mapping[tuple[str, str], Distribution],
                        sums: PartVectors) -> dict[str, MeasurementResult]:
    """:func:`~mapper.analysis.traces.part_results` from merged partitions: the same
    results and checks, the counts summed, the distributions merged."""
    process = dists.get((stage, "process"))
    if process is None or process.count == 0:
        msg = f"{stage}: no spans match the stage in the window"
        return {"process": MeasurementResult(None, provenance, (Check("warning", "no-data", msg, stage),))}
    share = sums.stage_rows.get(stage, 0) / sums.traces if sums.traces else 0.0
    flow = sums.flow.stages.get(stage) if sums.flow is not None else None
    checks = incomplete_check(stage, share, sums.traces, sums.link_edges, flow.missing if flow else None)
    out = {"process": MeasurementResult(process, provenance, tuple(checks))}
    wait = dists.get((stage, "wait"))
    if wait is not None and wait.count:
        wchecks = []
        neg = sums.negative_waits.get(stage, 0)
        if neg:
            # Partitions keep counts, not the hand-over spans' starts: both causes are named.
            wchecks.append(Check("warning", "negative-wait",
                                 f"{stage} wait: {neg:,} of {int(wait.count):,} items start before their hand-over, "
                                 f"by up to {-sums.min_wait[stage]:.3g}s: a consumer that starts before its "
                                 "producer's span ends (one host), or clock skew between hosts; kept, not clamped",
                                 stage, "wait"))
            skew = sums.skewed_links.get(stage, 0)
            if skew:
                wchecks.append(Check("warning", "link-clock-skew",
                                     f"{stage} wait: {skew:,} consumers linked to a producer in another "
                                     "trace start before the producer ends (clock skew across the link); "
                                     "kept, not clamped", stage, "wait"))
        out["wait"] = MeasurementResult(wait, provenance, tuple(wchecks))
    return out


def sum_parts(parts: Sequence[PartVectors], n_parts: int) -> PartVectors:
    """The partitions' counts added up (vectors empty), their checks named by partition."""
    def add(field: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for pv in parts:
            for k, v in getattr(pv, field).items():
                out[k] = out.get(k, 0) + v
        return out

    low: dict[str, float] = {}
    for pv in parts:
        for k, v in pv.min_wait.items():
            low[k] = min(low.get(k, 0.0), v)
    # A first stage's wait check says the same of every partition: the first partition's is kept.
    seen: set[tuple[str, str | None]] = set()
    kept: list[Check] = []
    for i, pv in enumerate(parts):
        for c in pv.checks:
            if c.code.startswith("first-stage-") or c.code == UNWEIGHTED:
                if (c.code, c.stage) in seen:
                    continue
                seen.add((c.code, c.stage))
            kept.append(Check(c.level, c.code, f"partition {i + 1}/{n_parts}: {c.message}", c.stage, c.part))
    checks = tuple(kept)
    return PartVectors({}, sum(pv.traces for pv in parts), sum(pv.spans_used for pv in parts),
                       sum(pv.link_edges for pv in parts), add("stage_rows"), add("negative_waits"), low,
                       add("skewed_links"), checks, duplicates=sum(pv.duplicates for pv in parts),
                       flow=FlowSums.merge([pv.flow for pv in parts]))


def tail_sets(lead: MergedSamples) -> dict[str, tuple[float, float]]:
    """The item sets the tail attribution averages, as lead-time ranges with exact bounds
    (merged order statistics): ``"median"`` (the median band) and each tail's label."""
    lo, hi = (lead.exact(q) for q in MEDIAN_BAND)
    return {"median": (lo, hi), **{percentile_label(q): (lead.exact(q), math.inf) for q in (*TAILS, 0.99)}}


def mean_parts(sums: Sequence[tuple[Sequence[str] | None, Mapping[str, tuple[int, np.ndarray]]]],
               sets: Mapping[str, tuple[float, float]]) -> dict[str, tuple[pd.Series, int]] | None:
    """The mean lead and parts of each of ``sets``, from every partition's (columns, per set
    the item count and the column sums); None when no partition had items of the path."""
    columns = next((c for c, _ in sums if c), None)
    if columns is None:
        return None
    out = {}
    for name in sets:
        n = sum(s[name][0] for _, s in sums if name in s)
        total = sum((s[name][1] for _, s in sums if name in s), np.zeros(len(columns)))
        out[name] = (pd.Series(total / n if n else np.full(len(columns), np.nan), index=columns), n)
    return out
