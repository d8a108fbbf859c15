"""The whole trace analysis over a million traces: latmap against a naive pandas-groupby baseline.

Issue requirement: the analysis of 1,000,000 traces over 5 stages (per-stage wait and process,
lead time, tail attribution, time shares, hour-of-day and weekday segments, an event window and
a label slice with 3 values) completes in under 8 s and 1.5 GiB peak RSS on the 2-core machine
(issue 29; it was 15 s), measured next to a naive pandas baseline in the same run; the ratio
is printed, and so is the floor (one value sort of the spans by trace and start, one read of
each column: no trace analysis does less) with latmap's ratio to it.

Data (built vectorised with numpy, no source, as ``tests/analysis/test_attribution.py`` does): N traces
of the stream ``gateway -> pricing -> risk -> alerting -> notify``, spread uniformly over 7 days
(a UTC-midnight-aligned week) plus a burst of 12% of the traces at 14:00-14:30 UTC every day,
during which the ``risk`` queue wait is 5x longer. Per trace:

* ``gateway`` (SERVER) with a nested PRODUCER span; ``pricing`` (CONSUMER) hangs off that
  PRODUCER span by parent id (async hand-over: it can start before the gateway span ends);
* ``pricing`` has a nested INTERNAL span (a db call) in half of the traces, ``alerting`` in 30%;
* ``risk`` -> parent ``pricing``; ``alerting`` is handed over by a *link* (no parent) to
  ``risk``; 0.1% of its waits are negative (clock skew); ``notify`` -> parent ``alerting``,
  missing in 2% of the traces (incomplete traces: left out of the lead time);
* 1% of the ``risk`` waits get +200 ms (the tail cause the attribution must find).

The span rows are shuffled, as an export would interleave them.

**Linked variant** (measured in the same run, same draws): every consumer (``pricing``,
``risk``, ``alerting``, ``notify``) starts a new trace with a span link to the span that
handed it over (no parent), as message consumers instrumented by the OpenTelemetry
messaging conventions do; 10% of the ``notify`` consumers are batches of 2-50 items: one
span, started when the last of its items is ready, linked to each item's ``alerting`` span.
latmap must join the traces into items (``mapper.analysis.items``); its time is printed next to the
parent variant's with the ratio (target: at most 1.3x), and every part of the four first
stages must equal the parent variant's (the batches change only ``notify`` and the lead).
Batches sit at the last stage: links *out of* a batch's trace cannot tell which message
became which (see docs/scale.md), so a mid-stream batch with linked consumers after it would
multiply the paths rather than measure the same data.

**Region label.** Spans have no free label column, so the region (``eu``/``us``/``apac``, 50/30/20%,
``apac`` pricing 1.5x slower) is put into the ``destination`` column of every span of the trace.
That column is what a spec selects on (``traces: {attributes: {messaging.destination.name: eu}}``
becomes ``StageMatch(attributes={"destination": "eu"})``), so the slice is expressed as latmap
expresses it, and the main map is untouched. Deriving the region from service names instead
(``pricing-eu`` ...) would need 3 services per stage, which one ``StageMatch`` per stage cannot
select, so the main map itself would change. The trace table keeps each trace's value of
that column (``label_columns``), and the slice is a mask on it (``TraceTable.where``): the
stage distributions per region without recomputing any trace.

latmap phases (each timed): ``build_trace_table``; ``part_results`` + per-stage totals;
``analyse``; ``find`` (attribution, time shares); segments (``trace_samples`` +
``build_segments``: hourly and weekday profiles, one cron event ``0 14 * * *`` for 30 min);
the region slice. Every percentile the report would show is computed inside the phases.

Baseline: the same answers with pandas ``groupby("trace").apply(python function)`` (per trace,
a Python loop over its spans: self time by interval union, wait by parent/link lookup, lead
time), then ``np.quantile`` per stage / hour / weekday / event / region group. It is run on
the first ``--baseline-traces`` traces (default 50,000); when that is fewer than N its time is
extrapolated linearly to N and the output says so. On that sample latmap is run as well
(untimed) and the per-stage p50/p99 of process and wait (and the lead time) must agree to
1e-9 relative.

Usage::

    python benchmarks/analysis.py [--traces N] [--quick] [--baseline-traces S] [--seed K] [--no-linked]

``--quick`` is 50,000 traces. Exit code 1 when the cross-check fails; the 8 s target is
printed, met or not.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from naive import merge_intervals  # benchmarks/ is on sys.path when these run

from mapper.analysis.findings import Findings, find
from mapper.analysis.latency import LatencyMap, MapInput, analyse
from mapper.analysis.segments import build_segments, trace_samples
from mapper.analysis.traces import StageMatch, TraceTable, build_trace_table, part_results
from mapper.core.distribution import Distribution, SampleDistribution
from mapper.core.model import MeasurementResult, Window
from mapper.core.spans import (
    KIND_CLIENT,
    KIND_CONSUMER,
    KIND_INTERNAL,
    KIND_PRODUCER,
    KIND_SERVER,
    SpanBatch,
    SpanLinks,
)
from mapper.core.spec import StreamSpec, loads_spec

FULL = 1_000_000
QUICK = 50_000
BASELINE_SAMPLE = 50_000
TARGET_S = 8.0
#: Peak RSS target (issue 29), the generated spans included.
TARGET_RSS_MIB = 1536
#: The linked variant's time over the parent variant's, at most.
TARGET_LINKED_RATIO = 1.3
REL_TOL = 1e-9

MS = 1_000_000  # ns
DAY_S = 86_400
WEEK0 = 20_718 * DAY_S  # a UTC midnight (2026-09-22), start of the 7-day window
STAGES = ("gateway", "pricing", "risk", "alerting", "notify")
UPSTREAM: dict[str, str | None] = {"gateway": None, "pricing": "gateway", "risk": "pricing",
                                   "alerting": "risk", "notify": "alerting"}
REGIONS = ("eu", "us", "apac")
EVENT_START_S, EVENT_LEN_S = 14 * 3600, 1800
QS = (0.5, 0.99, 0.9999)

SPEC = """\
name: bench
percentiles: [50, 99, 99.99]
sources: {spans: {kind: traces, path: /nonexistent}}
stages:
  - {name: gateway, owner: web, traces: {source: spans, service: gateway}}
  - {name: pricing, owner: quant, upstream: [gateway], traces: {source: spans, service: pricing}}
  - {name: risk, owner: quant, upstream: [pricing], traces: {source: spans, service: risk}}
  - {name: alerting, owner: ops, upstream: [risk], traces: {source: spans, service: alerting}}
  - {name: notify, owner: ops, upstream: [alerting], traces: {source: spans, service: notify}}
segments: {hours: true, weekdays: true}
events:
  - {name: burst, cron: "0 14 * * *", duration: 30m}
"""


# --------------------------------------------------------------------------- data


def make_batch(n: int, seed: int = 7, linked: bool = False) -> SpanBatch:
    """``n`` traces over the 5 stages as one shuffled SpanBatch (see the module docstring);
    ``linked``: the linked variant, from the same draws."""
    rng = np.random.default_rng(seed)
    i = np.arange(n, dtype=np.int64)
    burst = rng.random(n) < 0.12
    day = rng.integers(0, 7, n)
    sod = np.where(burst, EVENT_START_S + rng.random(n) * EVENT_LEN_S, rng.random(n) * DAY_S)
    t0 = (WEEK0 + day * DAY_S) * 10**9 + (sod * 1e9).astype(np.int64)
    region = rng.choice(3, n, p=[0.5, 0.3, 0.2])

    def ln(median_ms: float, sigma: float) -> np.ndarray:
        return np.maximum(rng.lognormal(np.log(median_ms), sigma, n) * MS, 1000).astype(np.int64)

    p0, p1, p2, p3, p4 = ln(3, 0.3), ln(4, 0.4), ln(6, 0.3), ln(2, 0.5), ln(5, 0.3)
    p1 = np.where(region == 2, (p1 * 1.5).astype(np.int64), p1)
    w1, w3, w4 = ln(1, 0.5), ln(2, 0.5), ln(0.5, 0.5)
    w2 = ln(5, 0.6) * np.where(burst, 5, 1) + (rng.random(n) < 0.01) * 200 * MS
    w3 = np.where(rng.random(n) < 0.001, -(ln(0.5, 0.3)), w3)  # clock skew: negative waits

    g0, g1 = t0, t0 + p0
    prod0, prod1 = t0 + p0 // 5, t0 + 2 * p0 // 5  # nested PRODUCER inside the gateway span
    s1 = prod1 + w1
    e1 = s1 + p1
    s2 = e1 + w2
    e2 = s2 + p2
    s3 = e2 + w3
    e3 = s3 + p3
    s4 = e3 + w4
    e4 = s4 + p4
    has_db = rng.random(n) < 0.5
    has_int3 = rng.random(n) < 0.3
    has_notify = rng.random(n) >= 0.02

    def sid(slot: int) -> np.ndarray:
        return (i * 8 + slot + 1).astype(np.uint64)

    zero = np.zeros(n, np.uint64)
    # (mask, service index, span slot, parent, link, start, end, kind)
    rows = [
        (None, 0, 0, zero, zero, g0, g1, KIND_SERVER),
        (None, 0, 1, sid(0), zero, prod0, prod1, KIND_PRODUCER),
        (None, 1, 2, sid(1), zero, s1, e1, KIND_CONSUMER),
        (has_db, 1, 3, sid(2), zero, s1 + p1 // 10, s1 + 3 * p1 // 5, KIND_INTERNAL),
        (None, 2, 4, sid(2), zero, s2, e2, KIND_CONSUMER),
        (None, 3, 5, zero, sid(4), s3, e3, KIND_CONSUMER),
        (has_int3, 3, 6, sid(5), zero, s3 + p3 // 4, s3 + p3 // 2, KIND_INTERNAL),
        (has_notify, 4, 7, sid(5), zero, s4, e4, KIND_CONSUMER),
    ]
    if linked:
        return _linked_batch(n, rng, rows, region, sid)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("trace_lo", "span_id", "parent_id", "link_span_id",
                                                          "start_ns", "end_ns", "kind", "svc", "region")}
    for mask, svc, slot, parent, link, start, end, kind in rows:
        sel = np.ones(n, bool) if mask is None else mask
        cols["trace_lo"].append((i[sel] + 1).astype(np.uint64))
        cols["span_id"].append(sid(slot)[sel])
        cols["parent_id"].append(parent[sel])
        cols["link_span_id"].append(link[sel])
        cols["start_ns"].append(start[sel])
        cols["end_ns"].append(end[sel])
        cols["kind"].append(np.full(int(sel.sum()), kind, np.int8))
        cols["svc"].append(np.full(int(sel.sum()), svc, np.int8))
        cols["region"].append(region[sel].astype(np.int8))
    flat = {k: np.concatenate(v) for k, v in cols.items()}
    order = rng.permutation(flat["trace_lo"].size)
    flat = {k: v[order] for k, v in flat.items()}
    m = flat["trace_lo"].size
    return SpanBatch.from_columns({
        "trace_hi": np.full(m, 0x5EED, np.uint64), "trace_lo": flat["trace_lo"],
        "span_id": flat["span_id"], "parent_id": flat["parent_id"],
        "link_trace_hi": np.where(flat["link_span_id"] != 0, np.uint64(0x5EED), np.uint64(0)),
        "link_trace_lo": np.where(flat["link_span_id"] != 0, flat["trace_lo"], np.uint64(0)),
        "link_span_id": flat["link_span_id"], "start_ns": flat["start_ns"], "end_ns": flat["end_ns"],
        "kind": flat["kind"], "service": np.array(STAGES, dtype=object)[flat["svc"]],
        "name": np.array(["handle", "publish", "consume", "db", "consume", "consume", "eval", "send"],
                         dtype=object)[flat["svc"]],
        "destination": np.array(REGIONS, dtype=object)[flat["region"]],
    })


#: Linked variant: the trace group (0: the item's first trace) of each span slot.
_TRACE_GROUP = (0, 0, 1, 1, 2, 3, 3, 4)


def _linked_batch(n: int, rng: np.random.Generator, rows: list[Any], region: np.ndarray,
                  sid: Any) -> SpanBatch:
    """The rows of :func:`make_batch` with every consumer in a new trace, linked to its
    hand-over span, and 10% of the ``notify`` consumers batched (2-50 links each)."""
    i = np.arange(n, dtype=np.int64)

    def trace_of(slot: int) -> np.ndarray:
        return (i + 1 + _TRACE_GROUP[slot] * n).astype(np.uint64)

    # notify batches: consecutive picked items, one span per batch, started when the last is ready
    picked = np.flatnonzero((rng.random(n) < 0.10) & (rows[7][0] if rows[7][0] is not None else True))
    sizes = []
    while sum(sizes) < picked.size:
        sizes.append(int(rng.integers(2, 51)))
    if sizes:
        sizes[-1] -= sum(sizes) - picked.size
    sizes_a = np.array([x for x in sizes if x > 0], dtype=np.int64)
    heads = np.cumsum(sizes_a) - sizes_a
    batch_of = np.repeat(np.arange(sizes_a.size), sizes_a)
    head_item = picked[heads]
    start7, end7 = rows[7][5].copy(), rows[7][6].copy()
    picked = picked[np.argsort(start7[picked], kind="stable")]  # a batch takes items ready about together
    head_item = picked[heads]
    ready = np.maximum.reduceat(start7[picked], heads) if picked.size else np.array([], np.int64)
    dur = (end7 - start7)[head_item]
    start7[head_item], end7[head_item] = ready, ready + dur
    keep7 = np.ones(n, bool) if rows[7][0] is None else rows[7][0].copy()
    keep7[picked] = False
    keep7[head_item] = True
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("trace_lo", "span_id", "parent_id", "link_lo", "link_span_id",
                                                          "start_ns", "end_ns", "kind", "svc", "region", "item")}
    for slot, (mask, svc, _slot, parent, link, start, end, kind) in enumerate(rows):
        sel = np.ones(n, bool) if mask is None else mask
        if slot == 7:
            sel, start, end = keep7, start7, end7
        # a consumer whose hand-over is in another trace group: no parent, a link instead
        handed = parent if slot in (0, 1, 3, 6) else link if slot == 5 else parent
        src_slot = {2: 1, 4: 2, 5: 4, 7: 5}.get(slot)
        cross = src_slot is not None
        cols["trace_lo"].append(trace_of(slot)[sel])
        cols["span_id"].append(sid(slot)[sel])
        cols["parent_id"].append(np.zeros(int(sel.sum()), np.uint64) if cross else handed[sel])
        cols["link_lo"].append(trace_of(src_slot)[sel] if cross else np.zeros(int(sel.sum()), np.uint64))
        cols["link_span_id"].append(handed[sel] if cross else np.zeros(int(sel.sum()), np.uint64))
        cols["start_ns"].append(start[sel])
        cols["end_ns"].append(end[sel])
        cols["kind"].append(np.full(int(sel.sum()), kind, np.int8))
        cols["svc"].append(np.full(int(sel.sum()), svc, np.int8))
        cols["region"].append(region[sel].astype(np.int8))
        cols["item"].append(i[sel])
    flat = {k: np.concatenate(v) for k, v in cols.items()}
    order = rng.permutation(flat["trace_lo"].size)
    flat = {k: v[order] for k, v in flat.items()}
    m = flat["trace_lo"].size
    # every link: the single ones, then each batch span's links to its items' alerting spans
    single = np.flatnonzero(flat["link_span_id"] != 0)
    is_batch_head = np.zeros(m, bool)
    svc7 = flat["svc"] == 4
    head_rows = np.flatnonzero(svc7 & np.isin(flat["item"], head_item))
    is_batch_head[head_rows] = True
    single = single[~is_batch_head[single]]
    row_of_head = np.full(n, -1, np.int64)
    row_of_head[flat["item"][head_rows]] = head_rows
    b_rows = row_of_head[head_item[batch_of]]
    links = SpanLinks(np.r_[single, b_rows], np.full(single.size + b_rows.size, 0x5EED, np.uint64),
                      np.r_[flat["link_lo"][single], trace_of(5)[picked]],
                      np.r_[flat["link_span_id"][single], sid(5)[picked]])
    first = np.searchsorted(links.row, np.arange(m))
    has = first < links.row.size
    has[has] = links.row[first[has]] == np.arange(m)[has]
    return SpanBatch.from_columns({
        "trace_hi": np.full(m, 0x5EED, np.uint64), "trace_lo": flat["trace_lo"],
        "span_id": flat["span_id"], "parent_id": flat["parent_id"],
        "link_trace_hi": np.where(has, np.uint64(0x5EED), np.uint64(0)),
        "link_trace_lo": np.where(has, links.trace_lo[np.minimum(first, links.row.size - 1)], np.uint64(0)),
        "link_span_id": np.where(has, links.span_id[np.minimum(first, links.row.size - 1)], np.uint64(0)),
        "start_ns": flat["start_ns"], "end_ns": flat["end_ns"],
        "kind": flat["kind"], "service": np.array(STAGES, dtype=object)[flat["svc"]],
        "name": np.array(["handle", "publish", "consume", "db", "consume", "consume", "eval", "send"],
                         dtype=object)[flat["svc"]],
        "destination": np.array(REGIONS, dtype=object)[flat["region"]],
    }, links=links)


def spec_and_window() -> tuple[StreamSpec, Window]:
    return loads_spec(SPEC), Window(float(WEEK0), float(WEEK0 + 7 * DAY_S))


MATCHES = [StageMatch(s, s) for s in STAGES]


# --------------------------------------------------------------------------- latmap


@dataclass
class LatmapRun:
    phases: dict[str, float] = field(default_factory=dict)
    table: TraceTable | None = None
    lm: LatencyMap | None = None
    findings: Findings | None = None
    segments: Any = None
    regions: dict[str, dict[tuple[str, str], Distribution]] = field(default_factory=dict)
    peak_rss_mib: float = 0.0


def _quantiles(d: Distribution | None) -> list[float | None]:
    return [None if d is None else d.quantile(q).value for q in QS]


def stage_results(table: TraceTable) -> dict[tuple[str, str], MeasurementResult]:
    results = {}
    for s in table.stages:
        for part, r in part_results(table, s, "bench").items():
            results[(s, part)] = r
    return results


def run_latmap(batch: SpanBatch, spec: StreamSpec, window: Window) -> LatmapRun:
    out = LatmapRun()
    clock = time.perf_counter

    t = clock()
    table = build_trace_table(batch, MATCHES, UPSTREAM, label_columns=("destination",))
    out.phases["build_trace_table"] = clock() - t

    t = clock()
    results = stage_results(table)
    totals: dict[str, Distribution] = {s: SampleDistribution(table.totals(s)) for s in STAGES}
    out.phases["part_results + totals"] = clock() - t

    t = clock()
    lm = analyse(spec, window, MapInput(results, table, totals=totals))
    for r in results.values():
        _quantiles(r.distribution)
    _quantiles(lm.end_to_end)
    out.phases["analyse"] = clock() - t

    t = clock()
    findings = find(lm)
    out.phases["find (attribution, shares)"] = clock() - t

    t = clock()
    samples = {(s, p): v for s in STAGES for p, v in trace_samples(table, s).items()}
    seg = build_segments(spec, window, samples=samples)
    for prof in seg.profiles.values():
        for d in (*prof.hours, *prof.weekdays):
            d.quantile(0.5), d.quantile(0.99)
    out.phases["segments (24 h, 7 d, event)"] = clock() - t

    t = clock()
    for value in REGIONS:
        rt = table.where("destination", value)
        dists = {k: r.distribution for k, r in stage_results(rt).items() if r.distribution is not None}
        dists.update({(s, "total"): SampleDistribution(rt.totals(s)) for s in STAGES})
        dists[("lead", "lead")] = SampleDistribution(rt.lead)
        for d in dists.values():
            _quantiles(d)
        out.regions[value] = dists
    out.phases["region slice (3 values)"] = clock() - t

    out.table, out.lm, out.findings, out.segments = table, lm, findings, seg
    out.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


# --------------------------------------------------------------------------- naive baseline


_union = merge_intervals


def _minus(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> int:
    """Nanoseconds of the union ``a`` not covered by the union ``b``."""
    total = 0
    for s, e in a:
        covered = 0
        for bs, be in b:
            lo, hi = max(s, bs), min(e, be)
            if hi > lo:
                covered += hi - lo
        total += (e - s) - covered
    return total


def _per_trace(g: pd.DataFrame) -> list[tuple[Any, ...]]:
    """One trace: per stage present (stage, start_s, process, wait, region); lead last."""
    spans = list(zip(g["stage"], g["span_id"], g["parent_id"], g["link_span_id"], g["start_ns"],
                     g["end_ns"], g["kind"], strict=True))
    by_id = {}
    per: dict[int, list[tuple[int, int]]] = {}
    first: dict[int, tuple[int, int, int]] = {}
    for st, sp, par, link, s, e, k in spans:
        by_id.setdefault(sp, (st, s, e, k))
        per.setdefault(st, []).append((s, e))
        if st not in first or s < first[st][0]:
            first[st] = (s, par, link)
    unions = {st: _union(iv) for st, iv in per.items()}
    rows = []
    for st in sorted(per):
        down = _union([x for d, iv in per.items() if d > st for x in iv])
        process = _minus(unions[st], down) * 1e-9
        s, par, link = first[st]
        wait = float("nan")
        up = st - 1
        if up >= 0:
            ref = par if par != 0 else link
            p = by_id.get(ref)
            if p is not None and p[0] == up:
                wait = (s - (p[1] if p[3] == KIND_CLIENT else p[2])) * 1e-9
            elif up in per:
                wait = (s - max(e for _, e in per[up])) * 1e-9
        rows.append((st, s / 1e9, process, wait))
    lead = float("nan")
    if len(per) == len(STAGES):
        lead = (max(e for iv in per.values() for _, e in iv) - min(s for iv in per.values() for s, _ in iv)) * 1e-9
    return [(*r, lead) for r in rows]


def run_naive(batch: SpanBatch) -> tuple[dict[str, float], dict[str, Any]]:
    """The same answers the straightforward pandas way; returns (phase seconds, answers)."""
    clock = time.perf_counter
    phases: dict[str, float] = {}
    ans: dict[str, Any] = {}

    t = clock()
    df = pd.DataFrame({k: getattr(batch, k) for k in ("trace_hi", "trace_lo", "span_id", "parent_id",
                                                        "link_span_id", "start_ns", "end_ns", "kind",
                                                        "service", "destination")})
    df["stage"] = df["service"].map({s: i for i, s in enumerate(STAGES)})
    df = df[df["stage"].notna()].astype({"stage": int})
    nested = df.groupby(["trace_hi", "trace_lo"], sort=True).apply(_per_trace, include_groups=False)
    region = df.groupby(["trace_hi", "trace_lo"], sort=True)["destination"].first()
    recs = [(n, *r) for n, rows in enumerate(nested) for r in rows]
    f = pd.DataFrame(recs, columns=["trace", "stage", "start", "process", "wait", "lead"])
    f["region"] = region.to_numpy()[f["trace"].to_numpy()]
    phases["groupby.apply per trace"] = clock() - t

    t = clock()
    per_stage = {}
    for st, g in f.groupby("stage"):
        w = g["wait"].dropna().to_numpy()
        per_stage[STAGES[st]] = {"process": np.quantile(g["process"].to_numpy(), QS),
                                 "wait": np.quantile(w, QS) if w.size else None,
                                 "total": np.quantile(g["wait"].fillna(0).to_numpy() + g["process"].to_numpy(), QS)}
    lead_by_trace = f.groupby("trace")["lead"].first().dropna()
    ans["per_stage"] = per_stage
    ans["lead"] = np.quantile(lead_by_trace.to_numpy(), QS)
    # tail attribution and time shares
    wide = f[f["trace"].isin(lead_by_trace.index)].pivot_table(index="trace", columns="stage",
                                                                values=["wait", "process"], aggfunc="first")
    wide = wide.fillna(0.0)
    lead = lead_by_trace.reindex(wide.index).to_numpy()
    lo, hi = np.quantile(lead, (0.45, 0.55))
    med = wide[(lead >= lo) & (lead <= hi)].mean()
    attribution = {}
    for q in (0.99, 0.9999):
        tail = wide[lead >= np.quantile(lead, q)].mean()
        extra = (tail - med).sort_values(ascending=False)
        attribution[q] = (extra.index[0], float(extra.iloc[0]))
    tail99 = wide[lead >= np.quantile(lead, 0.99)].mean()
    ans["attribution"] = attribution
    ans["shares"] = {"p50": med / lead[(lead >= lo) & (lead <= hi)].mean(), "p99": tail99}
    phases["per stage, lead, attribution, shares"] = clock() - t

    t = clock()
    f["hour"] = (f["start"] // 3600 % 24).astype(int)
    f["weekday"] = ((f["start"] // 86400 + 3) % 7).astype(int)
    sod = f["start"] % 86400
    f["event"] = np.where((sod >= EVENT_START_S) & (sod < EVENT_START_S + EVENT_LEN_S), "event",
                          np.where(((sod >= EVENT_START_S - 3600) & (sod < EVENT_START_S))
                                   | ((sod >= EVENT_START_S + EVENT_LEN_S)
                                      & (sod < EVENT_START_S + EVENT_LEN_S + 3600)), "quiet", "other"))
    segs = {}
    for by in ("hour", "weekday", "event"):
        for part in ("process", "wait"):
            segs[(by, part)] = f.dropna(subset=[part]).groupby(["stage", by])[part].apply(
                lambda v: np.quantile(v.to_numpy(), (0.5, 0.99)))
    ans["segments"] = segs
    phases["hour/weekday/event segments"] = clock() - t

    t = clock()
    regions = {}
    for part in ("process", "wait"):
        regions[part] = f.dropna(subset=[part]).groupby(["region", "stage"])[part].apply(
            lambda v: np.quantile(v.to_numpy(), QS))
    regions["lead"] = f.dropna(subset=["lead"]).groupby(["region", "trace"])["lead"].first().groupby(
        level=0).apply(lambda v: np.quantile(v.to_numpy(), QS))
    ans["regions"] = regions
    phases["region slice"] = clock() - t
    return phases, ans


# --------------------------------------------------------------------------- cross-check


def cross_check(table: TraceTable, naive: dict[str, Any]) -> list[tuple[str, float, float, bool]]:
    """Per stage p50/p99 of process and wait, and of the lead time: (what, latmap, naive, equal)."""
    rows = []
    results = stage_results(table)
    for s in STAGES:
        for part in ("process", "wait"):
            r = results.get((s, part))
            ref = naive["per_stage"][s][part]
            for qi, q in enumerate(QS[:2]):
                mine = r.distribution.quantile(q).value if r and r.distribution is not None else None
                theirs = None if ref is None else float(ref[qi])
                ok = (mine is None and theirs is None) or (
                    mine is not None and theirs is not None
                    and abs(mine - theirs) <= REL_TOL * max(abs(mine), abs(theirs), 1e-300))
                rows.append((f"{s} {part} p{q * 100:g}", mine, theirs, ok))
    for qi, q in enumerate(QS[:2]):
        mine = SampleDistribution(table.lead).quantile(q).value
        theirs = float(naive["lead"][qi])
        ok = mine is not None and abs(mine - theirs) <= REL_TOL * abs(theirs)
        rows.append((f"lead p{q * 100:g}", mine, theirs, ok))
    return rows


# --------------------------------------------------------------------------- run


def run_linked(n: int, seed: int, spec: StreamSpec, window: Window, parent: LatmapRun) -> dict[str, Any]:
    """The linked variant: time latmap on it and compare its parts with the parent variant's."""
    batch = make_batch(n, seed, linked=True)
    gc.collect()
    lat = run_latmap(batch, spec, window)
    seconds = sum(lat.phases.values())
    checks = []
    assert lat.lm is not None
    assert parent.lm is not None
    mine = {s.stage.name: s for s in lat.lm.stages}
    for s in parent.lm.stages:
        if s.stage.name == "notify":
            continue  # the batches change it
        for part in ("wait", "process"):
            a, b = s.part(part), mine[s.stage.name].part(part)
            qa = _quantiles(a.distribution if a else None)
            qb = _quantiles(b.distribution if b else None)
            for q, x, y in zip(QS[:2], qa, qb, strict=False):
                ok = (x is None and y is None) or (x is not None and y is not None
                                                    and abs(x - y) <= REL_TOL * max(abs(x), 1e-12))
                checks.append((f"{s.stage.name} {part} p{100 * q:g}", x, y, ok))
    table = lat.table
    assert table is not None
    return {"spans": len(batch), "phases": lat.phases, "seconds": seconds, "peak_rss_mib": lat.peak_rss_mib,
            "items": table.traces, "complete": int(table.lead.size), "link_edges": table.link_edges,
            "checks": checks, "checks_ok": all(ok for *_, ok in checks),
            "codes": sorted({c.code for c in table.checks})}


def floor_seconds(batch: SpanBatch) -> float:
    """The floor of any trace analysis of ``batch``: one value sort of its spans by trace and
    start (a per-trace analysis must at least bring each trace's spans together in time
    order) plus one read of every column the analysis reads (ids, times, kind, service); best of two."""
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        np.sort((batch.trace_lo.astype(np.int64) << np.int64(24)) ^ (batch.start_ns & 0xFFFFFF))
        for col in (batch.trace_hi, batch.span_id, batch.parent_id, batch.end_ns, batch.kind):
            col.max()
        np.unique(batch.service[:: max(1, len(batch) // 100_000)])
        best = min(best, time.perf_counter() - t)
    return best


def run(n: int, baseline_traces: int = BASELINE_SAMPLE, seed: int = 7, echo: bool = True,
        linked: bool = True) -> dict[str, Any]:
    """Build the data, time latmap on all of it and the baseline on a sample; the results.
    ``linked``: also the linked variant (``"linked"``: its figures and its cross-check)."""
    def say(msg: str) -> None:
        if echo:
            print(msg, flush=True)

    t = time.perf_counter()
    batch = make_batch(n, seed)
    spec, window = spec_and_window()
    say(f"data: {n:,} traces, {len(batch):,} spans over 5 stages, 7 days, built in {time.perf_counter() - t:.1f}s")
    gc.collect()
    floor = floor_seconds(batch)
    lat = run_latmap(batch, spec, window)
    latmap_total = sum(lat.phases.values())

    sample_n = min(n, baseline_traces)
    sample = batch if sample_n == n else batch.take(np.flatnonzero(batch.trace_lo <= sample_n))
    say(f"naive baseline on {sample_n:,} traces ({len(sample):,} spans)...")
    naive_phases, naive = run_naive(sample)
    naive_measured = sum(naive_phases.values())
    extrapolated = sample_n < n
    naive_total = naive_measured * n / sample_n
    sample_table = lat.table if not extrapolated else build_trace_table(sample, MATCHES, UPSTREAM)
    assert sample_table is not None
    checks = cross_check(sample_table, naive)
    # The attribution's top contribution must agree too (same traces, same definitions).
    top_naive = naive["attribution"][0.99][0]
    linked_result = None
    if linked:
        del sample, naive
        say("linked variant: every consumer in a new trace, 10% of notify in batches of 2-50 links...")
        linked_result = run_linked(n, seed, spec, window, lat)
    return {
        "linked": linked_result,
        "floor_seconds": floor, "load": os.getloadavg()[0],
        "traces": n, "spans": len(batch), "phases": lat.phases, "latmap_seconds": latmap_total,
        "peak_rss_mib": lat.peak_rss_mib, "naive_phases": naive_phases, "naive_sample": sample_n,
        "naive_measured_seconds": naive_measured, "naive_seconds": naive_total, "extrapolated": extrapolated,
        "ratio": naive_total / latmap_total, "target_met": latmap_total < TARGET_S, "checks": checks,
        "checks_ok": all(ok for *_, ok in checks) and (linked_result is None or linked_result["checks_ok"]),
        "attribution_top": (lat.findings.attribution[0].contributions[0] if lat.findings else None),
        "naive_attribution_top": (STAGES[top_naive[1]], top_naive[0]),
        "event_comparisons": len(lat.segments.events) if lat.segments else 0,
    }


def report(r: dict[str, Any]) -> str:
    lines = [f"{'phase':<40} {'seconds':>9}", "-" * 50]
    lines += [f"latmap {name:<33} {s:>9.2f}" for name, s in r["phases"].items()]
    lines.append(f"{'latmap total':<40} {r['latmap_seconds']:>9.2f}")
    lines += [f"naive  {name:<33} {s:>9.2f}" for name, s in r["naive_phases"].items()]
    how = (f"extrapolated x{r['traces'] / r['naive_sample']:g} from {r['naive_sample']:,} traces measured "
           f"in {r['naive_measured_seconds']:.2f}s" if r["extrapolated"] else "measured")
    lines.append(f"{'naive total':<40} {r['naive_seconds']:>9.2f}  ({how})")
    lines.append("-" * 50)
    lines.append(f"traces: {r['traces']:,}  spans: {r['spans']:,}")
    lines.append(f"ratio naive/latmap: {r['ratio']:.1f}x{' (naive extrapolated)' if r['extrapolated'] else ''}")
    lines.append(f"floor (one sort of the spans by trace and start, one read of each column): "
                 f"{r['floor_seconds']:.2f}s; latmap / floor: {r['latmap_seconds'] / r['floor_seconds']:.1f}x "
                 f"(load {r['load']:.1f} on {os.cpu_count()} CPUs)")
    rss_met = r["peak_rss_mib"] < TARGET_RSS_MIB
    lines.append(f"peak RSS (ru_maxrss, incl. the generated spans): {r['peak_rss_mib']:,.0f} MiB; target < "
                 f"{TARGET_RSS_MIB:,} MiB: {'MET' if rss_met else 'NOT MET'}")
    lines.append(f"target: latmap total < {TARGET_S:g}s: {'MET' if r['target_met'] else 'NOT MET'} "
                 f"({r['latmap_seconds']:.2f}s)")
    top = r["attribution_top"]
    if top is not None:
        lines.append(f"p99 tail: latmap top {top.stage} {top.part} (+{top.extra_seconds * 1e3:.1f} ms); "
                     f"naive top {' '.join(r['naive_attribution_top'])}")
    bad = [c for c in r["checks"] if not c[3]]
    lines.append(f"cross-check on {r['naive_sample']:,} traces (p50/p99 of process, wait per stage, lead; "
                 f"rel. {REL_TOL:g}): {'OK' if not bad else 'FAILED'} ({len(r['checks'])} values)")
    lines += [f"  MISMATCH {what}: latmap {a!r} naive {b!r}" for what, a, b, _ in bad]
    lk = r.get("linked")
    if lk:
        ratio = lk["seconds"] / r["latmap_seconds"]
        lines.append("-" * 50)
        lines += [f"linked {name:<33} {sec:>9.2f}" for name, sec in lk["phases"].items()]
        lines.append(f"{'linked total':<40} {lk['seconds']:>9.2f}")
        lines.append(f"linked variant: {lk['spans']:,} spans, {lk['items']:,} items ({lk['complete']:,} complete), "
                     f"{lk['link_edges']:,} trace-to-trace links; peak RSS {lk['peak_rss_mib']:,.0f} MiB")
        lines.append(f"linked / parent: {ratio:.2f}x ({lk['seconds']:.2f}s vs {r['latmap_seconds']:.2f}s): "
                     f"target <= {TARGET_LINKED_RATIO:g}x {'MET' if ratio <= TARGET_LINKED_RATIO else 'NOT MET'}")
        lbad = [c for c in lk["checks"] if not c[3]]
        lines.append(f"cross-check linked vs parent (p50/p99 of wait, process of the 4 unbatched stages): "
                     f"{'OK' if not lbad else 'FAILED'} ({len(lk['checks'])} values); link checks: "
                     f"{', '.join(lk['codes']) or 'none'}")
        lines += [f"  MISMATCH {what}: parent {a!r} linked {b!r}" for what, a, b, _ in lbad]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--traces", type=int, default=FULL)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK:,} traces")
    ap.add_argument("--baseline-traces", type=int, default=BASELINE_SAMPLE)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-linked", action="store_true", help="skip the linked variant")
    args = ap.parse_args(argv)
    n = QUICK if args.quick else args.traces
    r = run(n, args.baseline_traces, args.seed, linked=not args.no_linked)
    print(report(r), flush=True)
    return 0 if r["checks_ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
