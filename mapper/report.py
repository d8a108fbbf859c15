"""Renderers of the latency map: ``report.json`` (the machine contract), Markdown, table.

``report.json`` schema (version 1), documented in the README:

* ``stream``, ``owner``, ``schema_version``, ``generated_at``
* ``window``: ``{start, end}`` (RFC 3339) and ``seconds``
* ``stages``: each ``{name, owner, wait, process, total}``; ``wait``/``process`` are latency
  objects or ``null`` when the spec defines none
* ``hops``: each ``{from, to, latency}``
* ``end_to_end``: a latency object (``null`` when a stage on the path has no data), ``path``
* ``flow_efficiency``: ``{value, method, process_seconds, lead_seconds}`` or ``null``
* ``bottleneck``: ``{stage, percentile, value, low, high}`` or ``null``
* ``objectives``: each ``{target, percentile, threshold, status, value, low, high}``
* ``checks``: each ``{level, code, message, stage, part}``
* ``attribution`` (per tail ``p99``, ``p99.99``: method, extra_seconds, contributions largest
  first ``{stage, part, extra_seconds, share}``), ``time_shares``, ``comparison`` (with a
  baseline: regressions and improvements beyond the intervals, else null)
* ``segments``: hour-of-day and weekday profiles per stage part, label slices, event windows
  against their quiet hours (flagged only when the intervals do not overlap), or null
* ``future_state`` (only when the spec lists planned changes): ``{current, future, changes,
  method}``, or ``{changes, error}`` when they do not apply to the map

A latency object: ``{"count": n, "unit": "s", "source": provenance|null, "mean": s|null,
"method": str, "p50": {"value", "low", "high", "note"}, ...}`` with a key per asked
percentile; ``value`` is ``null`` when the data cannot support a number (``note`` says why).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mapper.analysis import LatencyMap, StageResult

if TYPE_CHECKING:
    from mapper.findings import Findings
from mapper.convolve import ConvolvedDistribution
from mapper.distribution import (
    Distribution,
    Estimate,
    HistogramDistribution,
    HostAggregateDistribution,
    SampleDistribution,
    SketchDistribution,
    SummaryDistribution,
    percentile_label,
)
from mapper.durations import format_duration, format_time
from mapper.model import MeasurementResult
from mapper.segments import to_json as segments_json

SCHEMA_VERSION = 1


def _num(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.9g}")


def method_of(d: Distribution) -> str:
    """How a distribution's percentiles were computed, in words for the report."""
    if isinstance(d, HistogramDistribution):
        return "histogram: interval = bucket bounds; estimate = monotone interpolation in the bucket"
    if isinstance(d, SampleDistribution):
        return "samples: interval = 95% order-statistic confidence interval"
    if isinstance(d, SummaryDistribution):
        return f"client-computed quantiles ({d.origin}); not aggregatable"
    if isinstance(d, SketchDistribution):
        return (f"{d.origin}: percentiles computed by the back end over the whole window; interval = "
                f"its relative accuracy ({d.relative_accuracy:.2%}); percentiles it does not serve: not available")
    if isinstance(d, HostAggregateDistribution):
        return f"{d.origin}: not combinable; interval = smallest..largest per-host value, no point estimate"
    if isinstance(d, ConvolvedDistribution):
        if "metric histograms" in d.origin:
            return f"convolution of independent parts ({d.origin}); interval from bucket bounds"
        return (f"convolution of independent parts ({d.origin}); interval: the parts' resolution only, "
                "not the dependence between them")
    return type(d).__name__


def _convolved_origin(lm: LatencyMap) -> str:
    return lm.end_to_end.origin if isinstance(lm.end_to_end, ConvolvedDistribution) else "metrics"


def end_to_end_source(lm: LatencyMap) -> str | None:
    """Where the end-to-end numbers come from, naming only what the run used."""
    if lm.end_to_end_method == "traces":
        unit = "item (traces joined by span links)" if lm.traces is not None and lm.traces.link_edges else "trace"
        return f"traces: lead time per complete {unit}, first stage start to last stage end"
    if lm.end_to_end_method == "convolution":
        return f"{_convolved_origin(lm)}: convolution of the hop distributions, assuming independence"
    return None


def estimate_json(e: Estimate) -> dict[str, Any]:
    return {"value": _num(e.value), "low": _num(e.low), "high": _num(e.high), "note": e.note}


def latency_json(d: Distribution | None, qs: tuple[float, ...],
                 source: str | None = None) -> dict[str, Any] | None:
    """The latency object of the schema, or ``None`` when there is no distribution."""
    if d is None:
        return None
    out: dict[str, Any] = {
        "count": _num(d.count),
        "unit": "s",
        "mean": _num(d.mean),
        "method": method_of(d),
        "source": source,
    }
    for q in qs:
        out[percentile_label(q)] = estimate_json(d.quantile(q))
    return out


def _part_json(r: MeasurementResult | None, qs: tuple[float, ...]) -> dict[str, Any] | None:
    if r is None:
        return None
    if r.distribution is None:
        return {"count": 0, "unit": "s", "mean": None, "method": "no data", "source": r.provenance,
                **{percentile_label(q): {"value": None, "low": None, "high": None,
                                          "note": "no data in the window"} for q in qs}}
    return latency_json(r.distribution, qs, r.provenance)


def total_source(s: StageResult) -> str | None:
    """Where a stage's hop (wait + process) comes from, in words."""
    if s.total is None:
        return None
    parts = [(p, r) for p in ("wait", "process") if (r := s.part(p)) is not None and r.distribution is not None]
    traced_only = s.stage.traces is not None and s.stage.wait is None and s.stage.process is None
    if isinstance(s.total, SampleDistribution) and traced_only:
        return f"traces: wait + process of {s.stage.name} per traced item"
    if len(parts) == 1:
        return f"{parts[0][0]} of {s.stage.name} alone: {parts[0][1].provenance}"
    return f"wait + process of {s.stage.name}: {method_of(s.total)}"


def to_json(lm: LatencyMap, findings: Findings | None = None) -> dict[str, Any]:
    """The ``report.json`` document (see the module docstring for the schema); with
    ``findings``, also the ``attribution``, ``time_shares`` and ``comparison`` sections."""
    qs = lm.spec.percentiles
    by_name = {s.stage.name: s for s in lm.stages}
    stages = []
    for s in lm.stages:
        stages.append({
            "name": s.stage.name,
            "owner": s.stage.owner,
            "wait": _part_json(s.wait, qs),
            "process": _part_json(s.process, qs),
            "total": latency_json(s.total, qs, total_source(s)),
        })
    e2e = latency_json(lm.end_to_end, qs, end_to_end_source(lm))
    fe = lm.flow_efficiency
    b = lm.bottleneck
    return {
        "schema_version": SCHEMA_VERSION,
        "stream": lm.spec.name,
        "owner": lm.spec.owner,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "window": {"start": format_time(lm.window.start), "end": format_time(lm.window.end),
                   "seconds": _num(lm.window.seconds)},
        "percentiles": [percentile_label(q) for q in qs],
        "stages": stages,
        "hops": [{"from": h.source, "to": h.target,
                  "latency": latency_json(h.latency, qs, total_source(by_name[h.target]))}
                 for h in lm.hops],
        "end_to_end": e2e,
        "path": list(lm.path),
        "flow_efficiency": None if fe is None else {
            "value": _num(fe.value), "method": fe.method,
            "process_seconds": _num(fe.process), "lead_seconds": _num(fe.lead)},
        "bottleneck": None if b is None else {
            "stage": b.stage, "percentile": percentile_label(b.q), **estimate_json(b.estimate)},
        "objectives": [{
            "target": o.objective.target, "percentile": percentile_label(o.objective.q),
            "threshold": _num(o.objective.threshold), "status": o.status,
            **({"value": None, "low": None, "high": None, "note": "no data"} if o.estimate is None
               else estimate_json(o.estimate)),
        } for o in lm.objectives],
        "checks": [{"level": c.level, "code": c.code, "message": c.message,
                    "stage": c.stage, "part": c.part}
                   for c in (*lm.checks, *(findings.checks if findings else ()))],
        **(findings.to_json() if findings else {}),
        "segments": None if lm.segments is None else segments_json(lm.segments, qs),
        **_future_state_json(lm),
    }


def _future_state_json(lm: LatencyMap) -> dict[str, Any]:
    """``future_state`` when the spec plans changes (see :func:`mapper.whatif.report_section`)."""
    if not lm.spec.future:
        return {}
    from mapper.whatif import report_section  # lazy: whatif renders with this module's latency_json

    return {"future_state": report_section(lm)}


def dumps(doc: Any) -> str:
    """JSON as latmap writes it: sorted keys, indent 2, final newline (diffs cleanly)."""
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- text


def cell(e: Estimate) -> str:
    """One percentile for people: ``12.3ms [10ms..25ms]``, or why there is no number."""
    if e.value is None:
        if e.note and "+Inf" in e.note and e.low is not None:
            return f">{format_duration(e.low)} (+Inf bucket)"
        if e.note and e.note.startswith("too few"):
            return f"n/a (n={e.count:,.0f} too few)"
        if e.low is not None and e.high is not None:  # only bounded (per-host, per-chunk values)
            why = e.note.split(":")[0] if e.note else "bounded"
            return f"n/a [{format_duration(e.low)}..{format_duration(e.high)}] ({why})"
        return "n/a" if not e.note else f"n/a ({e.note.split(':')[0]})"
    hi = format_duration(e.high) if e.high is not None else "∞"
    lo = format_duration(e.low) if e.low is not None else "-∞"
    return f"{format_duration(e.value)} [{lo}..{hi}]"


def short_cell(e: Estimate) -> str:
    """A percentile in a few characters (maps, labels): the value, ``>bound`` in the +Inf
    bucket, or ``n/a``."""
    if e.value is not None:
        return format_duration(e.value)
    if e.note and "+Inf" in e.note and e.low is not None:
        return f">{format_duration(e.low)}"
    return "n/a"


def _part_cells(r: MeasurementResult | None, qs: tuple[float, ...]) -> list[str]:
    if r is None:
        return ["-"] * (len(qs) + 1)
    if r.distribution is None:
        return ["no data"] + [""] * len(qs)
    d = r.distribution
    return [f"{d.count:,.0f}"] + [cell(d.quantile(q)) for q in qs]


def _rows(lm: LatencyMap) -> tuple[list[str], list[list[str]]]:
    qs = lm.spec.percentiles
    labels = [percentile_label(q) for q in qs]
    head = ["stage", "owner", "part", "n", *labels]
    rows: list[list[str]] = []
    for s in lm.stages:
        for i, part in enumerate(("wait", "process")):
            r: MeasurementResult | None = s.wait if part == "wait" else s.process
            name = s.stage.name + (" *" if lm.bottleneck and lm.bottleneck.stage == s.stage.name else "")
            rows.append([name if i == 0 else "", (s.stage.owner or "-") if i == 0 else "", part,
                         *_part_cells(r, qs)])
    if lm.end_to_end is not None:
        d = lm.end_to_end
        rows.append(["end to end", lm.spec.owner or "-", "lead time", f"{d.count:,.0f}",
                     *[cell(d.quantile(q)) for q in qs]])
    else:
        rows.append(["end to end", lm.spec.owner or "-", "lead time", "no data", *[""] * len(qs)])
    return head, rows


def _summary_lines(lm: LatencyMap) -> list[str]:
    out = []
    fe = lm.flow_efficiency
    if fe:
        out.append(f"flow efficiency: {fe.value:.1%} (process {format_duration(fe.process)} of "
                   f"lead time {format_duration(fe.lead)}, by {fe.method})")
    if lm.bottleneck:
        b = lm.bottleneck
        out.append(f"bottleneck: {b.stage} (largest hop {percentile_label(b.q)}: {cell(b.estimate)})")
    if lm.end_to_end is not None and lm.end_to_end_method == "traces":
        unit = "item (traces joined by span links)" if lm.traces is not None and lm.traces.link_edges else "trace"
        out.append(f"end to end from traces: lead time per {unit} ({lm.end_to_end.count:,.0f} complete)")
    elif lm.end_to_end is not None and lm.end_to_end_method == "convolution":
        out.append(f"end to end from {_convolved_origin(lm)}: convolution of the hops, assuming independence")
    for o in lm.objectives:
        est = cell(o.estimate) if o.estimate else "no data"
        out.append(f"objective {o.objective.label} <= {format_duration(o.objective.threshold)}: "
                   f"{o.status.upper()} ({est})")
    return out


def to_table(lm: LatencyMap, findings: Findings | None = None) -> str:
    """The map as an aligned plain-text table with a summary and the checks."""
    head, rows = _rows(lm)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i < 3 else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [f"{lm.spec.name}: {format_time(lm.window.start)} .. {format_time(lm.window.end)} "
             f"({format_duration(lm.window.seconds)})", fmt.format(*head),
             "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*r) for r in rows]
    lines.append("")
    lines += _summary_lines(lm)
    if findings:
        lines += findings.to_lines()
    checks = (*lm.checks, *(findings.checks if findings else ()))
    if checks:
        lines.append("checks:")
        lines += [f"  {c.level}: [{c.code}] {c.message}" for c in checks]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def to_markdown(lm: LatencyMap, findings: Findings | None = None) -> str:
    """``report.md``: the same content as the table, as GitHub-flavoured Markdown."""
    head, rows = _rows(lm)
    lines = [f"# Latency map: {_md_escape(lm.spec.name)}", "",
             f"Window: {format_time(lm.window.start)} .. {format_time(lm.window.end)} "
             f"({format_duration(lm.window.seconds)}). Intervals in brackets: histogram bucket "
             "bounds, 95% confidence for samples, or the accuracy a back end states for its own "
             "percentiles (Datadog's DDSketch). `*` marks the bottleneck.", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
    lines.append("")
    lines += [f"- {_md_escape(s)}" for s in _summary_lines(lm)]
    if findings:
        found = findings.to_lines()
        if found:
            lines += ["", "## Where the time goes", "", "```", *found, "```"]
    lines += _segment_lines(lm)
    checks = (*lm.checks, *(findings.checks if findings else ()))
    if checks:
        lines += ["", "## Checks", ""]
        lines += [f"- **{c.level}** `{c.code}`: {_md_escape(c.message)}" for c in checks]
    from mapper.vsm_text import to_mermaid  # lazy: it renders cells with this module

    lines += ["", "## The value stream", "", "```mermaid", to_mermaid(lm).rstrip("\n"), "```"]
    lines += ["", "## Where the numbers come from", ""]
    for s in lm.stages:
        for part in ("wait", "process"):
            r = s.part(part)
            if r is not None:
                lines.append(f"- {_md_escape(s.stage.name)} {part}: `{r.provenance.replace('`', chr(39))}`")
    return "\n".join(lines) + "\n"


def dependencies(lm: LatencyMap, stage: str) -> str:
    """A stage's suppliers (hops into it) and consumers (hops out of it), for people."""
    qs = lm.spec.percentiles
    head = "  ".join(percentile_label(q) for q in qs)
    owner = lm.spec.stage(stage).owner or "-"
    lines = [f"{stage} (owner {owner})", f"  consumes from ({head}):"]
    ins = [h for h in lm.hops if h.target == stage]
    outs = [h for h in lm.hops if h.source == stage]
    for hops, other, title in ((ins, "source", None), (outs, "target", f"  supplies ({head}):")):
        if title:
            lines.append(title)
        if not hops:
            lines.append("    (none)")
        for h in hops:
            name = getattr(h, other)
            cells = "  ".join(cell(h.latency.quantile(q)) for q in qs) if h.latency else "no data"
            lines.append(f"    {name} ({lm.spec.stage(name).owner or '-'}): {cells}")
    return "\n".join(lines) + "\n"


def _segment_lines(lm: LatencyMap) -> list[str]:
    """report.md's segments: the daily peak and each event window against its quiet hours."""
    if lm.segments is None or not (lm.segments.events or lm.segments.checks):
        return []
    out = ["", "## Segments", ""]
    out += [f"- {_md_escape(c.message)}" for c in lm.segments.checks if c.code == "daily-peak"]
    for c in lm.segments.events:
        out.append(f"- **{_md_escape(c.name)}** ({c.stage} {c.part}, {len(c.occurrences)} occurrence(s); "
                   f"quiet: {c.basis})")
        out += [f"  - {'**flagged** ' if d.flagged else ''}{_md_escape(d.message)}" for d in c.differences]
    return out
