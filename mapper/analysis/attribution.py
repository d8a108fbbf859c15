"""Where the time goes, and which hop makes the slow items slow.

* **Time shares**: per stage, the wait and process share of the lead time, for typical
  items (around the median lead time) and for tail items (the slowest 1%), and each
  stage's own flow efficiency (process / (wait + process)).
* **Tail attribution**: for the items in the slowest 1% (and 0.01%) end to end, how much
  more time each stage's wait and process take than for median items, ranked. From traces
  this is exact per item; from metrics it is approximated from the hop distributions (each
  part's own tail minus its median), which assumes every part's tail coincides, and the
  report says so.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mapper.analysis.latency import PARTS, LatencyMap
from mapper.analysis.traces import TraceTable
from mapper.core.distribution import Distribution, percentile_label
from mapper.core.durations import format_duration

#: Tails that get an attribution, and the band of "median items" they are compared with.
TAILS = (0.99, 0.9999)
MEDIAN_BAND = (0.45, 0.55)
#: Fewer tail items than this and the attribution is only indicative (said in its note).
MIN_TAIL_ITEMS = 10


@dataclass(frozen=True)
class Contribution:
    """One part's extra time in the tail. ``low``/``high`` bound it where the parts' intervals
    are known (metrics), ``None`` otherwise (traces: exact; or unbounded)."""

    stage: str
    part: str  # "wait" | "process"
    extra_seconds: float
    share: float
    low: float | None = None
    high: float | None = None


#: Extra time this close to zero (seconds) made no difference and is not ranked.
NO_DIFFERENCE = 1e-12


def signed(seconds: float) -> str:
    """``+1.2ms``, ``-44.1µs``, ``0s``: a difference with its sign."""
    return ("+" if seconds > 0 else "") + format_duration(seconds)


def share_text(c: Contribution) -> str:
    """``72%``, ``<1%``, or ``shorter in the tail`` for a negative part."""
    if c.extra_seconds < 0:
        return "shorter in the tail"
    return "<1%" if round(c.share * 100) == 0 else f"{c.share:.0%}"


def overlapping(contributions: Sequence[Contribution]) -> tuple[Contribution, ...]:
    """The top contribution and every other whose interval reaches the top's lower bound:
    the data cannot tell which of them adds most."""
    if not contributions:
        return ()
    top = contributions[0]
    if top.low is None:
        return (top,)
    return (top, *(c for c in contributions[1:] if c.extra_seconds > 0 and (c.high is None or c.high >= top.low)))


@dataclass(frozen=True)
class TailAttribution:
    """How the ``q`` tail's extra time over median items splits across stage parts."""

    q: float
    method: str  # "traces" | "metrics approximation"
    extra_seconds: float  # tail items' mean lead time minus median items' (traces), or sum of parts
    items: int  # tail items behind it (traces), 0 for metrics
    contributions: tuple[Contribution, ...]  # largest first
    note: str | None = None

    def headline(self) -> str:
        """``p99 items spend +180ms more than median ones; 72% of that is the alerting wait``."""
        if not self.contributions:
            return f"{percentile_label(self.q)}: no attribution ({self.note or 'no data'})"
        top = self.contributions[0]
        diff = (f"+{format_duration(self.extra_seconds)} more" if self.extra_seconds >= 0
                else f"{format_duration(-self.extra_seconds)} less")
        text = f"{percentile_label(self.q)} items spend {diff} than median ones"
        tied = overlapping(self.contributions)
        if top.extra_seconds <= 0:
            text += "; no part takes longer in the tail"
        elif len(tied) > 1:
            text += (f"; the largest part is the {' or '.join(f'{c.stage} {c.part}' for c in tied)}: "
                     "intervals overlap")
        else:
            text += f"; {share_text(top)} of that is the {top.stage} {top.part}"
        if self.method != "traces":
            text += " (approximation from metrics)"
        return text


@dataclass(frozen=True)
class StageShare:
    stage: str
    wait_share_p50: float | None
    process_share_p50: float | None
    wait_share_p99: float | None
    process_share_p99: float | None
    flow_efficiency: float | None


def trace_parts(lm: LatencyMap) -> pd.DataFrame | None:
    """One row per complete trace: lead time and each (stage, part) duration, seconds."""
    t = lm.traces.items() if lm.traces is not None else None
    if t is None or lm.end_to_end_method != "traces":
        return None
    return item_parts(t, lm.path)


def item_parts(t: TraceTable, path: Sequence[str]) -> pd.DataFrame | None:
    """:func:`trace_parts` of a trace table for the stages of ``path``."""
    f = t.frame[t.frame["stage"].isin(path)]
    wide = f.pivot_table(index="trace", columns="stage", values=["wait", "process"], aggfunc="first")
    wide = wide.dropna(subset=[("process", s) for s in path if ("process", s) in wide.columns])
    if wide.empty:
        return None
    first = f.groupby("trace")["start"].min()
    last = f.groupby("trace")["end"].max()
    out = pd.DataFrame(index=wide.index)
    out["lead"] = (last - first).reindex(wide.index)
    for s in path:
        for p in PARTS:
            if (p, s) in wide.columns:
                out[f"{s}\x00{p}"] = wide[(p, s)].fillna(0.0)
    return out


def attribute(lm: LatencyMap, tails: Sequence[float] = TAILS,
              parts: pd.DataFrame | None = None) -> tuple[TailAttribution, ...]:
    """The tail attribution for each of ``tails``, from traces when the lead time is, else
    approximated from the parts' distributions. ``parts``: :func:`trace_parts`, if at hand."""
    parts = trace_parts(lm) if parts is None else parts
    if parts is not None:
        return tuple(_from_traces(parts, q) for q in tails)
    merged = _merged_means(lm)
    if merged is not None and all(percentile_label(q) in merged for q in tails):
        return tuple(_from_means(q, merged["median"][0], *merged[percentile_label(q)]) for q in tails)
    return tuple(_from_metrics(lm, q) for q in tails)


def _merged_means(lm: LatencyMap) -> Mapping[str, tuple[pd.Series, int]] | None:
    """The per-item means a partitioned analysis merged for the map's path, if any."""
    t = lm.traces
    if t is None or lm.end_to_end_method != "traces":
        return None
    return t.path_means(tuple(lm.path))


def _from_traces(df: pd.DataFrame, q: float) -> TailAttribution:
    lead = df["lead"].to_numpy()
    lo, hi = np.quantile(lead, MEDIAN_BAND)
    median_items = df[(lead >= lo) & (lead <= hi)]
    tail_items = df[lead >= np.quantile(lead, q)]
    return _from_means(q, median_items.mean(), tail_items.mean(), len(tail_items))


def _from_means(q: float, median: pd.Series, tail: pd.Series, n_tail: int) -> TailAttribution:
    """The attribution from the median-band and tail items' mean lead and parts."""
    cols = [c for c in median.index if c != "lead"]
    extra = tail[cols] - median[cols]
    total = float(tail["lead"] - median["lead"])
    denom = float(extra[extra > 0].sum()) or 1.0
    contributions = sorted(
        (Contribution(c.split("\x00")[0], c.split("\x00")[1], float(v), float(v) / denom)
         for c, v in extra.items() if abs(float(v)) > NO_DIFFERENCE), key=lambda c: -c.extra_seconds)
    note = None
    if n_tail < MIN_TAIL_ITEMS:
        note = (f"only {n_tail} traced item(s) in the {percentile_label(q)} tail: indicative, "
                f"not significant")
    return TailAttribution(q, "traces", total, n_tail, tuple(contributions), note)


def _path_parts(lm: LatencyMap) -> Iterator[tuple[str, str, Distribution]]:
    """Each measured part (stage name, part, distribution) of the stages on the map's path."""
    for s in lm.stages:
        if s.stage.name not in lm.path:
            continue
        for p in PARTS:
            r = s.part(p)
            if r is not None and r.distribution is not None:
                yield s.stage.name, p, r.distribution


def _from_metrics(lm: LatencyMap, q: float) -> TailAttribution:
    rows = []
    for name, p, dist in _path_parts(lm):
        hi, med = dist.quantile(q), dist.quantile(0.5)
        top = hi.value if hi.value is not None else hi.low
        if top is None or med.value is None:
            continue
        low = hi.low - med.high if hi.low is not None and med.high is not None else None
        high = hi.high - med.low if hi.high is not None and med.low is not None else None
        rows.append((name, p, top - med.value, low, high))
    denom = sum(r[2] for r in rows if r[2] > 0) or 1.0
    contributions = sorted((Contribution(st, p, x, x / denom, lo, hi_) for st, p, x, lo, hi_ in rows
                            if abs(x) > NO_DIFFERENCE), key=lambda c: -c.extra_seconds)
    return TailAttribution(
        q, "metrics approximation", sum(r[2] for r in rows), 0, tuple(contributions),
        "approximation: each part's own tail minus its median, as if every part's tail coincided "
        "(an upper bound per part); traces give the exact attribution")


def shares(lm: LatencyMap, parts: pd.DataFrame | None = None) -> tuple[StageShare, ...]:
    """Per stage on the path: wait and process share of the lead time for median and tail
    items (traces: exact per item; metrics: from the parts' p50 and p99), and the stage's
    own flow efficiency from the mean wait and process."""
    parts = trace_parts(lm) if parts is None else parts
    out = []
    merged = _merged_means(lm) if parts is None else None
    if parts is not None:
        lead = parts["lead"].to_numpy()
        lo, hi = np.quantile(lead, MEDIAN_BAND)
        med = parts[(lead >= lo) & (lead <= hi)].mean()
        tail = parts[lead >= np.quantile(lead, 0.99)].mean()
    elif merged is not None and "p99" in merged:
        med, tail = merged["median"][0], merged["p99"][0]
    quantiles: dict[tuple[str, str, float], float] = {}  # (stage, part, q) -> value: once each, not once a stage
    totals = {0.5: 0.0, 0.99: 0.0}
    if parts is None:
        for name, p, dist in _path_parts(lm):
            for q in totals:
                v = dist.quantile(q).value
                if v is not None:
                    quantiles[(name, p, q)] = v
                    totals[q] += v
    for s in lm.stages:
        name = s.stage.name
        if name not in lm.path:
            continue
        means = {p: (r.distribution.mean if (r := s.part(p)) is not None and r.distribution is not None else None)
                 for p in PARTS}
        fe = None
        if means["process"] is not None:
            w = means["wait"] or 0.0
            total = w + means["process"]
            fe = means["process"] / total if total > 0 else None
        if parts is not None or (merged is not None and "p99" in merged):
            out.append(StageShare(name, _share(med, name, "wait"), _share(med, name, "process"),
                                  _share(tail, name, "wait"), _share(tail, name, "process"), fe))
        else:
            vals = {q: {p: (v / tot if (v := quantiles.get((name, p, q))) is not None and tot > 0 else None)
                        for p in PARTS} for q, tot in totals.items()}
            out.append(StageShare(name, vals[0.5]["wait"], vals[0.5]["process"], vals[0.99]["wait"],
                                  vals[0.99]["process"], fe))
    return tuple(out)


def _share(row: pd.Series, stage: str, part: str) -> float | None:
    key = f"{stage}\x00{part}"
    return float(row[key] / row["lead"]) if key in row and row["lead"] > 0 else None


def bottleneck_by_contribution(attributions: Sequence[TailAttribution]) -> Contribution | None:
    """The stage part contributing most to the p99 tail (the first attribution's top)."""
    for a in attributions:
        if a.contributions:
            return a.contributions[0]
    return None


