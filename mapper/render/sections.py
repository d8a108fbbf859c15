"""The analysis sections of the reports: tail attribution, time shares, the baseline
comparison, segments and the future state, as report.json sections and as lines for people.

Analysis modules return data; this module is where that data becomes JSON (keys as docs/report-json.md's
report schema) or text. Latency objects and cells come from :mod:`mapper.render.cells`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mapper.analysis.attribution import StageShare, TailAttribution, overlapping, share_text, signed
from mapper.analysis.baseline import Change, Comparison
from mapper.analysis.findings import Findings
from mapper.analysis.latency import LatencyMap
from mapper.analysis.profiles import PROFILE_PERCENTILES, WEEKDAYS
from mapper.analysis.segments import SegmentReport
from mapper.analysis.whatif import TRACE_REPLAY, FutureState, future_state
from mapper.core.distribution import Distribution, percentile_label
from mapper.core.durations import format_duration, format_time
from mapper.core.errors import DataError, UsageError
from mapper.render.cells import cell, estimate_json, latency_json


def attribution_json(attributions: Sequence[TailAttribution], stage_shares: Sequence[StageShare]) -> dict[str, object]:
    """The ``attribution`` and ``time_shares`` sections of report.json."""
    def num(x: float | None) -> float | None:
        return None if x is None or not np.isfinite(x) else float(f"{x:.6g}")

    return {
        "attribution": {
            percentile_label(a.q): {
                "method": a.method, "extra_seconds": num(a.extra_seconds), "tail_items": a.items,
                "note": a.note, "headline": a.headline(),
                "contributions": [{"stage": c.stage, "part": c.part, "extra_seconds": num(c.extra_seconds),
                                   "share": num(c.share), "low": num(c.low), "high": num(c.high)}
                                  for c in a.contributions],
                "overlapping": [f"{c.stage} {c.part}" for c in overlapping(a.contributions)],
            } for a in attributions
        },
        "time_shares": [{
            "stage": s.stage, "flow_efficiency": num(s.flow_efficiency),
            "p50": {"wait": num(s.wait_share_p50), "process": num(s.process_share_p50)},
            "p99": {"wait": num(s.wait_share_p99), "process": num(s.process_share_p99)},
        } for s in stage_shares],
    }


def attribution_lines(attributions: Sequence[TailAttribution]) -> list[str]:
    """For people: the headline of each tail and its top three contributions."""
    lines = []
    for a in attributions:
        lines.append(a.headline())
        for c in a.contributions[:3]:
            lines.append(f"  {c.stage} {c.part}: {signed(c.extra_seconds)} ({share_text(c)})")
        if a.note and a.method == "traces":
            lines.append(f"  note: {a.note}")
    return lines


def comparison_json(c: Comparison) -> dict[str, Any]:
    def row(ch: Change) -> dict[str, Any]:
        return {"what": ch.what, "percentile": ch.percentile, "before": ch.before, "after": ch.after,
                "ratio": float(f"{ch.ratio:.4g}") if ch.before > 0 else None, "message": ch.message()}

    return {"baseline": c.baseline, "baseline_generated_at": c.generated_at,
            "regressions": [row(x) for x in c.regressions], "improvements": [row(x) for x in c.improvements]}


def segments_json(report: SegmentReport, qs: tuple[float, ...],
            profile_qs: tuple[float, ...] = PROFILE_PERCENTILES) -> dict[str, Any]:
    """The ``segments`` section of ``report.json``.

    ``{"hour_of_day": {stage: {part: [{"hour", "count", "p50", "p99"}, ...]}}, "weekday":
    {stage: {part: [{"weekday", "name", "count", ...}]}}, "labels": {label: {value: {stage:
    {part: latency}}}}, "events": [{"name", "stage", "part", "occurrences": [[start, end]],
    "basis", "note", "event": latency, "quiet": latency, "flagged": [{"percentile",
    "ratio", "difference", "message"}]}]}``; times RFC 3339, latencies as elsewhere.
    """
    def slots(ds: Sequence[Distribution], key: str, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        out = []
        for i, d in enumerate(ds):
            row: dict[str, Any] = {key: i, "count": int(d.count) if float(d.count).is_integer() else float(d.count)}
            if names:
                row["name"] = names[i]
            row.update({percentile_label(q): estimate_json(d.quantile(q)) for q in profile_qs})
            out.append(row)
        return out

    hours: dict[str, dict[str, Any]] = {}
    days: dict[str, dict[str, Any]] = {}
    for (stage, part), p in sorted(report.profiles.items()):
        if report.hours:
            hours.setdefault(stage, {})[part] = slots(p.hours, "hour")
        if report.weekdays:
            days.setdefault(stage, {})[part] = slots(p.weekdays, "weekday", WEEKDAYS)
    labels: dict[str, Any] = {}
    for label, values in report.labels.items():
        for value, per_key in values.items():
            for (stage, part), d in per_key.items():
                labels.setdefault(label, {}).setdefault(value, {}).setdefault(stage, {})[part] = latency_json(d, qs)
    return {
        "hour_of_day": hours,
        "weekday": days,
        "labels": labels,
        "events": [{
            "name": c.name, "stage": c.stage, "part": c.part, "basis": c.basis, "note": c.note,
            "occurrences": [[format_time(s), format_time(e)] for s, e in c.occurrences],
            "event": latency_json(c.event, qs), "quiet": latency_json(c.quiet, qs),
            "flagged": [{"percentile": d.label,
                         "ratio": None if d.ratio is None else float(f"{d.ratio:.6g}"),
                         "difference": None if d.difference is None else float(f"{d.difference:.9g}"),
                         "message": d.message} for d in c.flagged],
        } for c in report.events],
    }


def _future_source(fs: FutureState, which: str) -> str:
    if fs.method == TRACE_REPLAY:
        return ("traces: lead time per complete trace" if which == "current"
                else "traces: lead time per complete trace with the changed hops replayed")
    origin = str(getattr(fs.current, "origin", "metrics"))  # what the hops were: never a source not used
    return (f"{origin}: convolution of the hop distributions, assuming independence" if which == "current"
            else f"{origin}: convolution of the changed hop distributions, assuming independence")


def future_json(fs: FutureState, qs: tuple[float, ...]) -> dict[str, Any]:
    """``{"current": latency, "future": latency, "changes": [...], "method": ...}``; latency
    objects as in the report schema (see :mod:`mapper.render.report`)."""
    return {
        "current": latency_json(fs.current, qs, _future_source(fs, "current")),
        "future": latency_json(fs.future, qs, _future_source(fs, "future")),
        "changes": [c.describe() for c in fs.changes],
        "method": fs.method,
    }


def future_state_section(lm: LatencyMap, findings: Findings | None = None) -> dict[str, Any] | None:
    """``report.json``'s ``future_state``: the spec's planned changes applied, ``None`` when
    the spec plans none, ``{"changes", "error"}`` when they cannot be applied to this map.
    The findings' future state is used when they hold one, so it is computed once per run."""
    if not lm.spec.future:
        return None
    if findings is not None and findings.future is not None:
        return future_json(findings.future, lm.spec.percentiles)
    if findings is not None and findings.future_error is not None:
        return {"changes": [c.describe() for c in lm.spec.future], "error": findings.future_error}
    try:
        return future_json(future_state(lm, lm.spec.future), lm.spec.percentiles)
    except (UsageError, DataError) as err:
        return {"changes": [c.describe() for c in lm.spec.future], "error": str(err)}


def _change_pct(now: float | None, then: float | None) -> str:
    if now is None or then is None or now == 0:
        return "-"
    return f"{(then - now) / now:+.1%}"


def future_table(fs: FutureState, qs: tuple[float, ...]) -> str:
    """Current vs future per percentile, with intervals and the change in %."""
    head = ["percentile", "current", "future", "change"]
    rows = [["n", f"{fs.current.count:,.0f}", f"{fs.future.count:,.0f}", ""]]
    for q in qs:
        now, then = fs.current.quantile(q), fs.future.quantile(q)
        rows.append([percentile_label(q), cell(now), cell(then), _change_pct(now.value, then.value)])
    if fs.current.mean is not None and fs.future.mean is not None:
        rows.append(["mean", format_duration(fs.current.mean), format_duration(fs.future.mean),
                     _change_pct(fs.current.mean, fs.future.mean)])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    lines = ["what-if: " + "; ".join(c.describe() for c in fs.changes), f"end to end by {fs.method}",
             fmt.format(*head), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines) + "\n"


def future_lines(f: Findings, qs: Sequence[float]) -> list[str]:
    """One line per asked percentile: the spec's planned changes, current -> future."""
    if f.future_error is not None:
        return [f"future state: cannot apply the planned changes: {f.future_error}"]
    fs = f.future
    if fs is None:
        return []
    changes = "; ".join(c.describe() for c in fs.changes)
    out = [f"future state ({changes}; {fs.method}):"]
    out += [f"  {percentile_label(q)}: {cell(fs.current.quantile(q))} -> {cell(fs.future.quantile(q))}" for q in qs]
    return out


def findings_json(f: Findings) -> dict[str, Any]:
    """The ``attribution``, ``time_shares`` and ``comparison`` sections, plus any the app added."""
    out: dict[str, Any] = dict(attribution_json(f.attribution, f.shares)) if f.attribution else {}
    out["comparison"] = comparison_json(f.comparison) if f.comparison else None
    out.update(f.sections)
    return out


def findings_lines(f: Findings, qs: Sequence[float]) -> list[str]:
    """For people: the tails' headlines, the baseline comparison, the future state, the app's lines."""
    lines = attribution_lines(f.attribution)
    if f.comparison is not None:
        c = f.comparison
        lines.append(f"vs baseline {c.baseline}: {len(c.regressions)} regression(s), "
                     f"{len(c.improvements)} improvement(s) beyond the intervals")
        lines += [f"  {ch.message()}" for ch in c.changes]
    return lines + future_lines(f, qs) + list(f.lines)
