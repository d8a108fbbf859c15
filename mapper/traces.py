"""From spans to the value stream: per trace and stage, process time and wait time.

Everything here is array operations over a :class:`~collectors.spans.SpanBatch` (pandas
group-bys, numpy), never a Python loop per span, so a million spans map in seconds.

Definitions (per trace, per stage):

* **process time**: the stage's self time: the union of its span intervals (nested spans of
  the same stage are not counted twice) minus the time covered by downstream stages' spans
  (a synchronous call into the next stage is the next stage's work, not this one's);
* **wait time** before the stage: from the hand-over to the start of the stage's first span.
  The hand-over is the parent (or first link) of that first span when it belongs to the
  upstream stage: the *end* of a PRODUCER (or any non-CLIENT) span, the *start* of a CLIENT
  span (a synchronous call: the upstream stage waits inside its own span). Without such a
  parent or link, the hand-over is the end of the upstream stage's last span;
* **lead time**: from the first stage's start to the last stage's end, for traces that
  contain every stage of the path.

Traces that miss a stage are counted (completeness per stage) and left out of the lead
time; negative waits (clock skew between hosts) are counted, never clamped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from collectors.spans import KIND_CLIENT, SpanBatch
from mapper.distribution import Distribution, SampleDistribution, percentile_label
from mapper.model import Check, MeasurementResult

NS = 1e-9


@dataclass(frozen=True)
class StageMatch:
    """Which spans belong to a stage: by service, optionally span name and attributes.

    ``attributes`` keys are the span columns of :data:`collectors.spans.ATTRIBUTE_COLUMNS`.
    """

    stage: str
    service: str
    span_name: str | None = None
    attributes: Mapping[str, str] | None = None


@dataclass(frozen=True)
class TraceTable:
    """One row per (trace, stage) present: times in seconds, waits possibly negative.

    ``frame`` columns: ``trace`` (int code), ``stage``, ``start``, ``end``, ``process``,
    ``wait`` (NaN for the first stage or when the upstream stage is missing).
    ``lead`` holds one lead time per complete trace (seconds).
    """

    frame: pd.DataFrame
    stages: tuple[str, ...]
    traces: int
    lead: np.ndarray
    spans_used: int

    def stage_frame(self, stage: str) -> pd.DataFrame:
        return self.frame[self.frame["stage"] == stage]

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
    for i, m in enumerate(matches):
        sel = (batch.service == m.service) & (out < 0)
        if m.span_name is not None:
            sel &= batch.name == m.span_name
        for key, value in (m.attributes or {}).items():
            sel &= getattr(batch, key) == value
        out[sel] = i
    return out


def _self_time(trace: np.ndarray, stage_i: np.ndarray, start: np.ndarray, end: np.ndarray,
               n_stages: int) -> dict[int, pd.Series]:
    """Per stage: seconds per trace covered by the stage's spans and by no downstream stage.

    One sweep over start/end events sorted by (trace, time): a running sum of +1/-1 gives,
    between consecutive events, whether the stage and any later stage are active. Each
    trace's events balance, so one global cumulative sum serves every trace.
    """
    t = np.concatenate([start, end])
    d = np.concatenate([np.ones(start.size, np.int64), -np.ones(end.size, np.int64)])
    tr = np.concatenate([trace, trace])
    st = np.concatenate([stage_i, stage_i])
    order = np.lexsort((-d, t, tr))  # starts before ends at equal times
    t, d, tr, st = t[order], d[order], tr[order], st[order]
    dt = np.diff(t).astype(np.float64) * NS
    same = tr[1:] == tr[:-1]
    out: dict[int, pd.Series] = {}
    for k in range(n_stages):
        own = np.cumsum(np.where(st == k, d, 0))[:-1]
        down = np.cumsum(np.where(st > k, d, 0))[:-1]
        counted = same & (own > 0) & (down == 0)
        out[k] = pd.Series(np.where(counted, dt, 0.0)).groupby(tr[:-1]).sum()
    return out


def _trace_codes(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """A dense integer per distinct 128-bit trace id, in C: each half factorized on its own,
    then the pair of codes (a tuple per row would cost a Python object each)."""
    lo_codes, lo_uniques = pd.factorize(lo)
    hi_codes, _ = pd.factorize(hi)
    codes, _ = pd.factorize(hi_codes.astype(np.int64) * len(lo_uniques) + lo_codes)
    return np.asarray(codes)


def build_trace_table(batch: SpanBatch, matches: Sequence[StageMatch],
                      upstream: Mapping[str, str | None]) -> TraceTable:
    """Per-trace stage timings for the stages in ``matches`` (in flow order).

    ``upstream`` maps each stage to the stage that hands items over to it (None: first).
    """
    names = tuple(m.stage for m in matches)
    stage_i = match_stages(batch, matches)
    used = stage_i >= 0
    if not used.any():
        empty = pd.DataFrame(columns=["trace", "stage", "start", "end", "process", "wait"])
        return TraceTable(empty, names, 0, np.array([]), 0)
    all_used = bool(used.all())
    b = batch if all_used else batch.take(np.flatnonzero(used))
    si = stage_i if all_used else stage_i[used]
    trace_code = _trace_codes(b.trace_hi, b.trace_lo)
    spans = pd.DataFrame({"trace": trace_code, "stage_i": si, "start_ns": b.start_ns, "end_ns": b.end_ns,
                          "span_id": b.span_id, "parent_id": b.parent_id, "link": b.link_span_id,
                          "kind": b.kind})
    g = spans.groupby(["trace", "stage_i"], sort=True)
    per = g.agg(start_ns=("start_ns", "min"), end_ns=("end_ns", "max"))
    self_time = _self_time(trace_code, si, b.start_ns, b.end_ns, len(names))
    idx_trace = per.index.get_level_values("trace").to_numpy()
    idx_stage = per.index.get_level_values("stage_i").to_numpy()
    process = np.zeros(len(per))
    for k, series in self_time.items():
        sel = idx_stage == k
        process[sel] = series.reindex(idx_trace[sel]).fillna(0.0).to_numpy()
    per["process"] = process
    # The first span of each (trace, stage) and what it hangs off.
    first = spans.loc[g["start_ns"].idxmin()].set_index(["trace", "stage_i"])
    per["parent"] = first["parent_id"].where(first["parent_id"] != 0, first["link"])
    # Hand-over candidates: every span, keyed by (trace, span id), with its stage and kind.
    by_id = spans.set_index(["trace", "span_id"])[["stage_i", "start_ns", "end_ns", "kind"]]
    by_id = by_id[~by_id.index.duplicated()]
    per = per.reset_index()
    key = pd.MultiIndex.from_arrays([per["trace"], per["parent"].astype(np.uint64)])
    # fill_value keeps the int64 nanoseconds exact (a NaN would turn them into floats,
    # which cannot hold today's epoch nanoseconds to better than 256 ns).
    parent = by_id.reindex(key, fill_value=-1)
    stage_of = {n: i for i, n in enumerate(names)}
    up_i = np.array([stage_of.get(upstream.get(n) or "", -1) for n in names])[per["stage_i"].to_numpy()]
    parent_ok = (parent["stage_i"].to_numpy() == up_i) & (up_i >= 0)
    handover = np.where(parent["kind"].to_numpy() == KIND_CLIENT, parent["start_ns"].to_numpy(),
                        parent["end_ns"].to_numpy())
    # Fallback: the end of the upstream stage in the same trace.
    up_end = per.set_index(["trace", "stage_i"])["end_ns"]
    up_key = pd.MultiIndex.from_arrays([per["trace"], up_i])
    found = up_key.isin(up_end.index)
    fallback = up_end.reindex(up_key, fill_value=0).to_numpy()
    hand = np.where(parent_ok, handover, fallback)
    has = parent_ok | found
    wait = np.where(has, (per["start_ns"].to_numpy() - hand).astype(np.float64) * NS, np.nan)
    frame = pd.DataFrame({
        "trace": per["trace"].to_numpy(),
        "stage": np.array(names, dtype=object)[per["stage_i"].to_numpy()],
        "start": per["start_ns"].to_numpy() / 1e9,
        "end": per["end_ns"].to_numpy() / 1e9,
        "process": per["process"].to_numpy(),
        "wait": wait.astype(float),
    })
    # Lead time: traces that contain every stage.
    counts = per.groupby("trace")["stage_i"].nunique()
    complete = counts.index[counts.to_numpy() == len(names)]
    pc = per[per["trace"].isin(complete)]
    agg = pc.groupby("trace").agg(s=("start_ns", "min"), e=("end_ns", "max"))
    lead = (agg["e"] - agg["s"]).to_numpy().astype(np.float64) * NS
    return TraceTable(frame, names, int(counts.size), lead, int(used.sum()))


def part_results(table: TraceTable, stage: str, provenance: str) -> dict[str, MeasurementResult]:
    """The stage's wait and process from traces, as collector results with their checks."""
    f = table.stage_frame(stage)
    checks: list[Check] = []
    if f.empty:
        msg = f"{stage}: no spans match the stage in the window"
        return {"process": MeasurementResult(None, provenance, (Check("warning", "no-data", msg, stage),))}
    share = table.completeness(stage)
    if share < 1.0:
        checks.append(Check("info", "incomplete-traces",
                            f"{stage}: present in {share:.1%} of {table.traces:,} traces; traces without it "
                            "are left out of the lead time", stage))
    out = {"process": MeasurementResult(SampleDistribution(f["process"].to_numpy()), provenance, tuple(checks))}
    waits = f["wait"].to_numpy()
    waits = waits[~np.isnan(waits)]
    if waits.size:
        wchecks = []
        neg = int(np.sum(waits < 0))
        if neg:
            wchecks.append(Check("warning", "negative-wait",
                                 f"{stage} wait: {neg:,} of {waits.size:,} items start before their hand-over "
                                 f"(clock skew between hosts, by up to {-waits.min():.3g}s); kept, not clamped",
                                 stage, "wait"))
        out["wait"] = MeasurementResult(SampleDistribution(waits), provenance, tuple(wchecks))
    return out


def compare(stage: str, part: str, metric: Distribution, traced: Distribution,
            qs: Sequence[float]) -> list[Check]:
    """Checks where a metric and a trace measurement of the same part disagree.

    Percentiles disagree when their intervals do not overlap; counts are not compared as
    equal because traces are usually sampled, only reported.
    """
    out = []
    for q in qs:
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
        out.append(Check("info", "metrics-traces-count",
                         f"{stage} {part}: {metric.count:,.0f} observations in metrics, {traced.count:,.0f} "
                         f"traced items ({traced.count / metric.count:.1%}; sampling?)", stage, part))
    return out
