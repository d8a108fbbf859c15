"""From spans to the value stream: per trace and stage, process time and wait time.

Everything here is array operations over a :class:`~mapper.core.spans.SpanBatch` (pandas
group-bys, numpy), never a Python loop per span, so a million spans map in seconds.

The unit is an **item**: the spans connected by parent edges and by span links, across
traces (:mod:`mapper.analysis.items`); without links between traces an item is one trace.

Definitions (per item, per stage):

* **process time**: the stage's self time: the union of its span intervals (nested spans of
  the same stage are not counted twice) minus the time covered by downstream stages' spans
  (a synchronous call into the next stage is the next stage's work, not this one's);
* **wait time** before the stage: from the hand-over to the start of the stage's first span.
  The hand-over is the parent, else the first of its links (in any trace of the item), of
  that first span that belongs to the upstream stage: the *end* of a PRODUCER (or any
  non-CLIENT) span (so a CONSUMER linked to a PRODUCER in another trace waits from the
  producer's end), the *start* of a CLIENT span (a synchronous call: the upstream stage
  waits inside its own span). Without such a parent or link, the hand-over is the end of
  the upstream stage's last span;
* **lead time**: from the first stage's start to the last stage's end, for items that
  contain every stage of the path.

Items that miss a stage are counted (completeness per stage) and left out of the lead
time; negative waits are counted, never clamped, with their cause (a consumer that starts
before its producer's span ends, or clock skew between hosts: :mod:`mapper.analysis.waits`;
across a link, also as ``link-clock-skew``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mapper.analysis.items import SpanIndex, build_items, expand_ranges, first_of_each
from mapper.analysis.sampling import (
    sampled_count,
    sampling_checks,
    tail_sampling_suspected,
    weighted_parts,
    weighted_samples,
)
from mapper.analysis.sorting import stable_order
from mapper.analysis.stage_time import self_time_parallel, stage_groups
from mapper.analysis.waits import first_stage_checks, handover_columns, negative_wait_checks
from mapper.core.distribution import Distribution, percentile_label
from mapper.core.model import Check, MeasurementResult
from mapper.core.spans import SpanBatch, trace_id_hex

NS = 1e-9
#: The columns of :attr:`TraceTable.frame`.
TABLE_COLUMNS = ("trace", "stage", "start", "end", "process", "wait", "linked", "primary", "th", "tail_policy",
                 "span_row")
#: Observations beyond a percentile that both sources need before they are compared on it.
MIN_TAIL_FOR_COMPARISON = 10


@dataclass(frozen=True)
class StageMatch:
    """Which spans belong to a stage: by service, optionally span name and attributes.

    ``attributes`` keys are the span columns of :data:`mapper.core.spans.ATTRIBUTE_COLUMNS`.
    """

    stage: str
    service: str
    span_name: str | None = None
    attributes: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ItemTraces:
    """Which traces each item spans, kept as references to arrays the table was built from
    (nothing is computed until :meth:`trace_ids` is asked, for a few items).

    ``unit`` is the item code of each (expanded) row, ``row`` its batch row (None: the
    identity), ``hi``/``lo`` the batch's trace id halves.
    """

    unit: np.ndarray
    row: np.ndarray | None
    hi: np.ndarray
    lo: np.ndarray

    def trace_ids(self, items: np.ndarray, n_items: int) -> dict[int, tuple[str, ...]]:
        """Every trace id (32 hex digits, sorted) of each item code in ``items``: one
        gather over the rows, whatever the number of items asked."""
        want = np.zeros(n_items, dtype=bool)
        want[np.asarray(items, dtype=np.int64)] = True
        at = np.flatnonzero(want[self.unit])
        rows = at if self.row is None else self.row[at]
        out: dict[int, set[str]] = {}
        for u, h, lo in zip(self.unit[at].tolist(), self.hi[rows].tolist(), self.lo[rows].tolist(), strict=True):
            out.setdefault(u, set()).add(trace_id_hex(h, lo))
        return {u: tuple(sorted(ids)) for u, ids in out.items()}


@dataclass(frozen=True)
class TraceTable:
    """One row per (item, stage) present: times in seconds, waits possibly negative.

    An item is a path of traces joined by span links (:mod:`mapper.analysis.items`), one trace when
    no link joins traces; ``trace`` codes and ``traces`` count items.
    ``frame`` columns: ``trace`` (int code), ``stage``, ``start``, ``end``, ``process``,
    ``wait`` (NaN for the first stage or when the upstream stage is missing), ``linked``
    (the hand-over crossed a span link into another trace), ``primary`` (False for a copy of
    a stage's spans shared by fan-out branches of one root: :meth:`stage_frame` leaves it out),
    ``th`` and ``tail_policy`` (the sampling of the group's first span: :mod:`mapper.analysis.sampling`),
    ``span_row`` (that first span's row in :attr:`spans`: what ``latmap explain`` reads its attributes from).
    ``lead`` holds one lead time per complete item (seconds), ``lead_traces`` their codes.
    ``labels`` maps a span column (e.g. ``destination``) to each item's value, read from
    the item's first span of its first stage, for slicing by label (:meth:`where`).
    ``checks`` are the link checks of :func:`mapper.items.build_items`; ``link_edges`` the
    number of span links between traces followed (0: every item is one trace).
    """

    frame: pd.DataFrame
    stages: tuple[str, ...]
    traces: int
    lead: np.ndarray
    spans_used: int
    lead_traces: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    labels: Mapping[str, np.ndarray] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()
    link_edges: int = 0
    #: The trace ids behind each item (None: a table built without them).
    ids: ItemTraces | None = None
    #: The spans the table was built from (the stages' spans only; None: not kept), which the
    #: frame's ``span_row`` indexes: the attributes :mod:`mapper.analysis.explain` compares.
    #: A reference, not a copy (the table's ``ids`` hold two of its columns already).
    spans: SpanBatch | None = None
    #: :meth:`stage_frame`'s answers, kept: the analysis asks for each stage's rows many
    #: times, and each answer copies every column of the stage's rows (read-only by contract).
    _stage_frames: dict[str, pd.DataFrame] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def can_replay(self) -> bool:
        """Every what-if can be replayed from the rows."""
        return True

    def items(self) -> TraceTable:
        """The per-item rows: this table (see :class:`~mapper.analysis.evidence.TraceEvidence`)."""
        return self

    def path_means(self, path: Sequence[str]) -> None:
        """None: the tail attribution reads the rows."""
        return None

    def replay(self, path: Sequence[str], changes: object) -> None:
        """None: a what-if is replayed from the rows."""
        return None

    def trace_ids(self, items: np.ndarray) -> dict[int, tuple[str, ...]]:
        """Every trace id of each item code in ``items`` (an item joined across traces by
        span links lists all of its traces); empty without :attr:`ids`."""
        if self.ids is None or not len(items):
            return {}
        return self.ids.trace_ids(items, int(self.ids.unit.max(initial=-1)) + 1)

    def where(self, column: str, value: object) -> TraceTable:
        """The traces whose ``column`` label equals ``value``: a mask, no recomputation."""
        per_trace = self.labels[column] == value
        rows = per_trace[self.frame["trace"].to_numpy()]
        keep_lead = per_trace[self.lead_traces]
        return TraceTable(self.frame[rows], self.stages, int(per_trace.sum()), self.lead[keep_lead],
                          self.spans_used, self.lead_traces[keep_lead],
                          {k: v for k, v in self.labels.items()}, self.checks, self.link_edges, self.ids,
                          self.spans)

    def stage_frame(self, stage: str) -> pd.DataFrame:
        """The stage's rows, each sample once (fan-out copies left out). The same frame is
        returned on each call: read it, do not change it."""
        kept = self._stage_frames.get(stage)
        if kept is not None:
            return kept
        sel = self.frame["stage"] == stage
        if "primary" in self.frame:
            sel &= self.frame["primary"]
        out = self._stage_frames[stage] = self.frame[sel]
        return out

    def completeness(self, stage: str) -> float:
        """Share of traces (that touch any stage) in which ``stage`` appears."""
        if self.traces == 0:
            return 0.0
        return float((self.frame["stage"] == stage).sum()) / self.traces

    def totals(self, stage: str) -> np.ndarray:
        """Per trace: the hop into ``stage`` (wait + process), or process for a first stage."""
        f = self.stage_frame(stage)
        w = f["wait"].to_numpy()
        return np.where(np.isnan(w), 0.0, w) + f["process"].to_numpy()

    def negative_waits(self, stage: str) -> int:
        w = self.stage_frame(stage)["wait"].to_numpy()
        return int(np.sum(w < 0))


def match_stages(batch: SpanBatch, matches: Sequence[StageMatch]) -> np.ndarray:
    """Stage index of every span (-1: no stage). The first matching stage wins."""
    out = np.full(len(batch), -1, dtype=np.int32)
    # Services dictionary-encoded once: each stage compares small integers, not strings.
    codes, uniques = pd.factorize(batch.service) if len(matches) > 1 else (None, None)
    for i, m in enumerate(matches):
        if codes is None:
            sel = (batch.service == m.service) & (out < 0)
        else:
            hit = np.flatnonzero(uniques == m.service)
            sel = (codes == (hit[0] if hit.size else -2)) & (out < 0)
        if m.span_name is not None:
            sel &= batch.name == m.span_name
        for key, value in (m.attributes or {}).items():
            sel &= getattr(batch, key) == value
        out[sel] = i
    return out


def _mix(trace: np.ndarray, span_id: np.ndarray) -> np.ndarray:
    """A 64-bit key for (trace code, span id): the span id xor a multiplicative hash of the
    trace code. Not unique in theory, so lookups verify what they find."""
    with np.errstate(over="ignore"):
        return np.asarray(span_id, dtype=np.uint64) ^ (trace.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))


def trace_codes(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """A dense integer per distinct 128-bit trace id, in C: each half factorized on its own,
    then the pair of codes (a tuple per row would cost a Python object each)."""
    lo_codes, lo_uniques = pd.factorize(lo)
    hi_codes, _ = pd.factorize(hi)
    codes, _ = pd.factorize(hi_codes.astype(np.int64) * len(lo_uniques) + lo_codes)
    return np.asarray(codes)


def build_trace_table(batch: SpanBatch, matches: Sequence[StageMatch],
                      upstream: Mapping[str, str | None], label_columns: Sequence[str] = ()) -> TraceTable:
    """Per-item stage timings for the stages in ``matches`` (in flow order).

    An item is a path of traces joined by span links (:mod:`mapper.analysis.items`); without links
    between traces it is one trace. ``upstream`` maps each stage to the stage that hands
    items over to it (None: first). ``label_columns`` (span columns) are kept per item for
    slicing (:meth:`TraceTable.where`). Flat int64 keys and sorts throughout (no pandas
    group-by): a million spans of five stages take seconds.
    """
    names = tuple(m.stage for m in matches)
    n_st = len(names)
    stage_i = match_stages(batch, matches)
    used = stage_i >= 0
    if not used.any():
        return TraceTable(pd.DataFrame(columns=list(TABLE_COLUMNS)), names, 0, np.array([]), 0)
    all_used = bool(used.all())
    b = batch if all_used else batch.take(np.flatnonzero(used))
    si_b = (stage_i if all_used else stage_i[used]).astype(np.int64)
    trace_b = trace_codes(b.trace_hi, b.trace_lo).astype(np.int64)
    items = build_items(b, trace_b, int(trace_b.max()) + 1)
    rows = items.rows
    n_tr = items.n_units
    # From here on a "trace" code is an item path (a copy of each span per path it is on).
    if rows is None:
        trace, si, start, end, span_id, kind = trace_b, si_b, b.start_ns, b.end_ns, b.span_id, b.kind
    else:
        trace, si = items.unit, si_b[rows]
        start, end, span_id, kind = b.start_ns[rows], b.end_ns[rows], b.span_id[rows], b.kind[rows]
    tmin = np.full(n_tr, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(tmin, trace, start)
    gkey, firsts, g_end = stage_groups(trace * n_st + si, n_tr * n_st, start, end, tmin[trace])
    g_trace, g_stage = gkey // n_st, gkey % n_st
    g_start = start[firsts]
    process = self_time_parallel(trace, si, start, end, n_st, n_tr, tmin)[g_stage, g_trace]
    stage_of = {n: i for i, n in enumerate(names)}
    up_i = np.array([stage_of.get(upstream.get(n) or "", -1) for n in names])[g_stage]
    brow = firsts if rows is None else rows[firsts]  # the batch row of each group's first span
    prow, linked = _handover_rows(b, brow, rows, trace, span_id, si, g_trace, trace_b, up_i, items.index)
    hand = handover_columns(kind, start, end, prow, g_start, g_end, gkey, g_trace, up_i, n_st)
    primary = _primary(g_trace, None if rows is None else items.root[g_trace] * len(b) + brow)
    frame = pd.DataFrame({
        "trace": g_trace,
        "stage": pd.Categorical.from_codes(g_stage, categories=list(names)),
        "start": g_start / 1e9,
        "end": g_end / 1e9,
        "process": process,
        **hand,
        "linked": linked,
        "primary": primary,
        "th": b.sampling_th[brow], "tail_policy": b.tail_policy[brow],  # the sampling of the group's first span
        "span_row": brow,
    })
    tb, lead, lead_items = _lead_times(g_trace, g_start, g_end, n_st)
    labels = {}
    for col in label_columns:
        per_trace = np.full(n_tr, None, dtype=object)
        per_trace[g_trace[tb]] = getattr(b, col)[brow[tb]]
        labels[col] = per_trace
    checks = (*items.checks, *first_stage_checks(batch, stage_i, names, upstream))
    return TraceTable(frame, names, int(tb.size), lead, int(used.sum()), lead_items, labels,
                      checks, items.edges, ItemTraces(trace, rows, b.trace_hi, b.trace_lo), b)


def _primary(g_trace: np.ndarray, shared_key: np.ndarray | None) -> np.ndarray:
    """Which groups are a stage's sample: all of them, unless items were expanded per path
    (``shared_key``: root and batch row), where a stage's spans shared by the branches of one
    root (fan-out) are one sample, the first."""
    primary = np.ones(g_trace.size, dtype=bool) if shared_key is None else np.zeros(g_trace.size, dtype=bool)
    if shared_key is not None:
        primary[first_of_each(shared_key)] = True
    return primary


def _lead_times(g_trace: np.ndarray, g_start: np.ndarray, g_end: np.ndarray,
                n_st: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each item's first group (groups are sorted by item), and the lead time (seconds) and
    item code of every item that contains all ``n_st`` stages."""
    tb = np.flatnonzero(np.r_[True, g_trace[1:] != g_trace[:-1]])
    complete = np.diff(np.r_[tb, g_trace.size]) == n_st
    lead = (np.maximum.reduceat(g_end, tb) - np.minimum.reduceat(g_start, tb))[complete].astype(np.float64) * NS
    return tb, lead, g_trace[tb][complete]


def _handover_rows(b: SpanBatch, brow: np.ndarray, rows: np.ndarray | None, trace: np.ndarray,
                   span_id: np.ndarray, si: np.ndarray, g_trace: np.ndarray, trace_b: np.ndarray,
                   up_i: np.ndarray, index: SpanIndex | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per group, the (expanded) row of the span that handed its item over, or -1, and
    whether that hand-over crossed a span link into another trace.

    Candidates are the group's first span's parent, then every one of its links; the first
    candidate that is a span of the upstream stage in the same item wins. Found by binary
    search over the spans sorted by a 64-bit mix of (item, span id); every hit is verified
    against the item, the span id and the trace id, so a mix collision cannot pick a wrong span.
    """
    n_g = brow.size
    links = b.all_links
    par = b.parent_id[brow]
    has_par = np.flatnonzero(par != 0)
    per_row = links.counts(len(b))
    count = per_row[brow]
    lo_at = (np.cumsum(per_row) - per_row)[brow]
    at = expand_ranges(lo_at, count)
    cand_g = np.concatenate([has_par, np.repeat(np.arange(n_g), count)])
    cand_span = np.concatenate([par[has_par], links.span_id[at]])
    cand_hi = np.concatenate([b.trace_hi[brow[has_par]], links.trace_hi[at]])
    cand_lo = np.concatenate([b.trace_lo[brow[has_par]], links.trace_lo[at]])
    is_link = np.r_[np.zeros(has_par.size, bool), np.ones(at.size, bool)]
    prow = np.full(n_g, -1, dtype=np.int64)
    linked = np.zeros(n_g, dtype=bool)
    if cand_g.size == 0:
        return prow, linked
    if rows is None and index is not None:
        # Items are traces: the batch's span index (built for the links) finds the spans.
        found = index.find(cand_hi, cand_lo, cand_span)
        cand = np.maximum(found, 0)
        cand_span = np.where(found >= 0, cand_span, 0)  # not found: no hit below
    else:
        cand = _find_in_items(trace, span_id, g_trace[cand_g], cand_span)
    crow = cand if rows is None else rows[cand]
    hit = ((cand_span != 0) & (span_id[cand] == cand_span) & (trace[cand] == g_trace[cand_g])
           & (b.trace_hi[crow] == cand_hi) & (b.trace_lo[crow] == cand_lo)
           & (si[cand] == up_i[cand_g]) & (up_i[cand_g] >= 0))
    ok = np.flatnonzero(hit)  # in candidate order: parents before links, links in their order
    chosen = ok[first_of_each(cand_g[ok])]
    first_g = cand_g[chosen]
    prow[first_g] = cand[chosen]
    linked[first_g] = is_link[chosen] & (trace_b[crow[chosen]] != trace_b[brow[first_g]])
    return prow, linked


def _find_in_items(trace: np.ndarray, span_id: np.ndarray, item: np.ndarray, span: np.ndarray) -> np.ndarray:
    """The (expanded) row of each (item, span id), verified by the caller: a binary search
    over the rows sorted by a 64-bit mix of the pair (the first of equal keys wins)."""
    mix = _mix(trace, span_id)
    by_key = stable_order(mix)
    sorted_keys = mix[by_key]
    # Sorted needles let the binary search start where the previous one ended.
    needles = _mix(item, span)
    by_needle = stable_order(needles)
    pos = np.empty(needles.size, dtype=np.int64)
    pos[by_needle] = np.searchsorted(sorted_keys, needles[by_needle])
    return by_key[np.minimum(pos, sorted_keys.size - 1)]


def incomplete_check(stage: str, share: float, traces: int, link_edges: int, missing: int | None) -> list[Check]:
    """``incomplete-traces``: items without the stage. With ``missing`` (items that reach a
    stage after this one without this one: :mod:`mapper.analysis.flow`) only those are, an
    item that stopped before the stage is complete for the stages it passed; without it
    (unknown) every item that lacks the stage is counted."""
    unit = "items (traces joined by span links)" if link_edges else "traces"
    if missing is None:
        if share >= 1.0:
            return []
        return [Check("info", "incomplete-traces", f"{stage}: present in {share:.1%} of {traces:,} {unit}; "
                      "those without it are left out of the lead time", stage)]
    if not missing:
        return []
    return [Check("info", "incomplete-traces", f"{stage}: {missing:,} of {traces:,} {unit} reach a later stage "
                  "without it (its spans missing: not sampled, outside the window, or not matched); they are "
                  "left out of the lead time", stage)]


def part_results(table: TraceTable, stage: str, provenance: str,
                 missing: int | None = None) -> dict[str, MeasurementResult]:
    """The stage's wait and process from traces, as collector results with their checks
    (``missing``: see :func:`incomplete_check`)."""
    f = table.stage_frame(stage)
    checks: list[Check] = []
    if f.empty:
        msg = f"{stage}: no spans match the stage in the window"
        return {"process": MeasurementResult(None, provenance, (Check("warning", "no-data", msg, stage),))}
    checks += incomplete_check(stage, table.completeness(stage), table.traces, table.link_edges, missing)
    process, th = weighted_parts(f, "process")
    if th is not None:
        checks += sampling_checks(stage, th, f["tail_policy"].to_numpy() if "tail_policy" in f else None)
    out = {"process": MeasurementResult(weighted_samples(process, th), provenance, tuple(checks))}
    waits, wait_th = weighted_parts(f, "wait")
    if waits.size:
        has = ~np.isnan(f["wait"].to_numpy())
        cols = [f[c].to_numpy()[has] if c in f else None for c in ("after_span_start", "wait_from")]
        wchecks = negative_wait_checks(stage, waits, cols[0], cols[1])
        if wchecks and "linked" in f:
            # Across a link only a start before the producer began is certainly skew (see waits).
            skewed = waits < 0 if cols[0] is None else cols[0] < 0
            skew = int(np.sum(f["linked"].to_numpy()[has] & skewed))
            if skew:
                wchecks.append(Check("warning", "link-clock-skew",
                                     f"{stage} wait: {skew:,} consumers linked to a producer in another "
                                     "trace start before the producer began (clock skew across the link); "
                                     "kept, not clamped", stage, "wait"))
        out["wait"] = MeasurementResult(weighted_samples(waits, wait_th), provenance, tuple(wchecks))
    return out


def compare(stage: str, part: str, metric: Distribution, traced: Distribution,
            qs: Sequence[float]) -> list[Check]:
    """Checks where a metric and a trace measurement of the same part disagree.

    Percentiles disagree when their intervals do not overlap. A percentile is compared only
    when both sides have at least :data:`MIN_TAIL_FOR_COMPARISON` observations beyond it:
    with one or two, its 95% interval misses by chance too often to call it a disagreement
    (and many parts x percentiles are compared at once; sampled traces count their sampled
    items here, not their weighted count). Counts are not compared as equal because traces are
    usually sampled, only reported; weighted trace items far fewer than the metric's
    observations are ``tail-sampling-suspected`` (:mod:`mapper.analysis.sampling`).
    """
    out = []
    for q in qs:
        if min(metric.count, sampled_count(traced)) * (1 - q) < MIN_TAIL_FOR_COMPARISON:
            continue
        a, b = metric.quantile(q), traced.quantile(q)
        if a.value is None or b.value is None or a.low is None or b.low is None:
            continue
        a_hi = a.high if a.high is not None else float("inf")
        b_hi = b.high if b.high is not None else float("inf")
        if a_hi < b.low or b_hi < a.low:
            out.append(Check("warning", "metrics-traces-disagree",
                             f"{stage} {part} {percentile_label(q)}: metrics say {a.value:.4g}s "
                             f"[{a.low:.4g}..{a_hi:.4g}], traces {b.value:.4g}s [{b.low:.4g}..{b_hi:.4g}]",
                             stage, part))
    if metric.count and traced.count:
        counts = (f"{stage} {part}: {metric.count:,.0f} observations in metrics, {traced.count:,.0f} traced items "
                  f"({traced.count / metric.count:.1%}")
        if traced.count < metric.count:
            out.append(Check("info", "metrics-traces-count", counts + "; sampling?)", stage, part))
        elif traced.count > metric.count:
            out.append(Check("warning", "traces-exceed-metrics",
                             counts + "): more traced items than the metric observed; the metric misses "
                             "observations (scrape gaps, a narrow selector, another window) or spans are "
                             "matched to this stage that the metric does not time", stage, part))
        else:
            out.append(Check("info", "metrics-traces-count", counts + "; the counts agree)", stage, part))
    return out + tail_sampling_suspected(stage, part, metric, traced)
