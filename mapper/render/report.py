"""Renderers of the latency map: ``report.json`` (the machine contract), Markdown, table.

``report.json`` schema (version 1), documented in docs/report-json.md and mapper/render/report.schema.json:

* ``stream``, ``owner``, ``schema_version``, ``generated_at``
* ``window``: ``{start, end}`` (RFC 3339) and ``seconds``
* ``stages``: each ``{name, owner, wait, process, total, flow}``; ``wait``/``process`` are latency
  objects or ``null`` when the spec defines none; ``flow`` the stage's items, yield, rework,
  inventory and utilisation (:func:`mapper.render.flow.stage_flow_json`) or ``null``
* ``flow``: ``{items_completed}`` (the items that reached the stream's end) or ``null``
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
With examples (:mod:`mapper.analysis.examples`: traces or Prometheus exemplars), each
percentile object of a stage part, hop and the lead time also has ``examples`` (items at or
beyond its ``low``) and the latency object ``median_examples`` (see
:func:`mapper.render.examples.example_json` and docs/report-json.md for the example's keys).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mapper.analysis.examples import END_TO_END
from mapper.analysis.findings import Findings
from mapper.analysis.latency import LatencyMap, StageResult
from mapper.analysis.merge import MergedSamples
from mapper.core.convolve import ConvolvedDistribution
from mapper.core.distribution import (
    SampleDistribution,
    percentile_label,
)
from mapper.core.durations import format_duration, format_time
from mapper.core.escape import markdown_code, markdown_text
from mapper.core.model import MeasurementResult
from mapper.render.cells import cell, estimate_json, latency_json, method_of, num
from mapper.render.examples import add_examples, markdown_lines
from mapper.render.explain import explanations_json
from mapper.render.explain import markdown_lines as why_lines
from mapper.render.flow import FLOW_HEAD, flow_lines, flow_rows, flow_table, stage_flow_json, stream_flow_json
from mapper.render.sections import findings_json, findings_lines, future_state_section, segments_json
from mapper.render.vsm_text import to_mermaid

SCHEMA_VERSION = 1


def _convolved_origin(lm: LatencyMap) -> str:
    return lm.end_to_end.origin if isinstance(lm.end_to_end, ConvolvedDistribution) else "metrics"


def end_to_end_source(lm: LatencyMap) -> str | None:
    """Where the end-to-end numbers come from, naming only what the run used."""
    if lm.end_to_end_method == "measured" and lm.measured_lead is not None:
        return f"measured: {lm.measured_lead.provenance}, one observation per item (the spec's end_to_end)"
    if lm.end_to_end_method == "traces":
        unit = "item (traces joined by span links)" if lm.traces is not None and lm.traces.link_edges else "trace"
        return f"traces: lead time per complete {unit}, first stage start to last stage end"
    if lm.end_to_end_method == "convolution":
        return f"{_convolved_origin(lm)}: convolution of the hop distributions, assuming independence"
    return None


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
    if isinstance(s.total, SampleDistribution | MergedSamples) and traced_only:
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
            "wait": add_examples(_part_json(s.wait, qs), lm, s.stage.name, "wait"),
            "process": add_examples(_part_json(s.process, qs), lm, s.stage.name, "process"),
            "total": add_examples(latency_json(s.total, qs, total_source(s)), lm, s.stage.name, "hop"),
            "flow": stage_flow_json(lm.flow.of(s.stage.name) if lm.flow is not None else None),
        })
    e2e = add_examples(latency_json(lm.end_to_end, qs, end_to_end_source(lm)), lm, END_TO_END, "lead")
    fe = lm.flow_efficiency
    b = lm.bottleneck
    return {
        "schema_version": SCHEMA_VERSION,
        "stream": lm.spec.name,
        "owner": lm.spec.owner,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "window": {"start": format_time(lm.window.start), "end": format_time(lm.window.end),
                   "seconds": num(lm.window.seconds)},
        "percentiles": [percentile_label(q) for q in qs],
        "stages": stages,
        "hops": [{"from": h.source, "to": h.target,
                  "latency": add_examples(latency_json(h.latency, qs, total_source(by_name[h.target])), lm,
                                          h.target, "hop")}
                 for h in lm.hops],
        "end_to_end": e2e,
        "path": list(lm.path),
        "flow": stream_flow_json(lm.flow),
        "flow_efficiency": None if fe is None else {
            "value": num(fe.value), "method": fe.method,
            "process_seconds": num(fe.process), "lead_seconds": num(fe.lead)},
        "bottleneck": None if b is None else {
            "stage": b.stage, "percentile": percentile_label(b.q), **estimate_json(b.estimate),
            "candidates": list(b.candidates), "decided": b.decided},
        "objectives": [{
            "target": o.objective.target, "percentile": percentile_label(o.objective.q),
            "threshold": num(o.objective.threshold), "status": o.status,
            **({"value": None, "low": None, "high": None, "note": "no data"} if o.estimate is None
               else estimate_json(o.estimate)),
        } for o in lm.objectives],
        "checks": [{"level": c.level, "code": c.code, "message": c.message,
                    "stage": c.stage, "part": c.part}
                   for c in (*lm.checks, *(findings.checks if findings else ()))],
        **(findings_json(findings) if findings else {}),
        "segments": None if lm.segments is None else segments_json(lm.segments, qs),
        **({"future_state": future_state_section(lm, findings)} if lm.spec.future else {}),
        **({"explanations": explanations_json(lm.explanations, lm.spec.links)} if lm.explanations else {}),
    }


# --------------------------------------------------------------------------- text


def _part_cells(r: MeasurementResult | None, qs: tuple[float, ...]) -> list[str]:
    if r is None:
        return ["-"] * (len(qs) + 1)
    if r.distribution is None:
        return ["no data"] + [""] * len(qs)
    d = r.distribution
    return [f"{d.count:,.0f}"] + [cell(d.quantile(q)) for q in qs]


def stage_rows(lm: LatencyMap) -> tuple[list[str], list[list[str]]]:
    qs = lm.spec.percentiles
    labels = [percentile_label(q) for q in qs]
    head = ["stage", "owner", "part", "n", *labels]
    rows: list[list[str]] = []
    for s in lm.stages:
        for i, part in enumerate(("wait", "process")):
            r: MeasurementResult | None = s.wait if part == "wait" else s.process
            b = lm.bottleneck
            name = s.stage.name + (" *" if b and b.marks(s.stage.name) else
                                   " ?" if b and s.stage.name in b.candidates else "")
            rows.append([name if i == 0 else "", (s.stage.owner or "-") if i == 0 else "", part,
                         *_part_cells(r, qs)])
    if lm.end_to_end is not None:
        d = lm.end_to_end
        rows.append(["end to end", lm.spec.owner or "-", "lead time", f"{d.count:,.0f}",
                     *[cell(d.quantile(q)) for q in qs]])
    else:
        rows.append(["end to end", lm.spec.owner or "-", "lead time", "no data", *[""] * len(qs)])
    return head, rows


def summary_lines(lm: LatencyMap) -> list[str]:
    out = []
    fe = lm.flow_efficiency
    if fe:
        out.append(f"flow efficiency: {fe.value:.1%} (process {format_duration(fe.process)} of "
                   f"lead time {format_duration(fe.lead)}, by {fe.method})")
    if lm.bottleneck:
        b = lm.bottleneck
        if b.decided:
            out.append(f"bottleneck: {b.stage} (largest hop {percentile_label(b.q)}: {cell(b.estimate)})")
        else:
            out.append(f"bottleneck: {b.describe()} (hop {percentile_label(b.q)}; largest point estimate "
                       f"{b.stage}: {cell(b.estimate)})")
    if lm.end_to_end is not None and lm.end_to_end_method == "traces":
        unit = "item (traces joined by span links)" if lm.traces is not None and lm.traces.link_edges else "trace"
        out.append(f"end to end from traces: lead time per {unit} ({lm.end_to_end.count:,.0f} complete)")
    elif lm.end_to_end is not None and lm.end_to_end_method == "measured" and lm.measured_lead is not None:
        out.append(f"end to end measured: {lm.measured_lead.provenance} ({lm.end_to_end.count:,.0f} items)")
    elif lm.end_to_end is not None and lm.end_to_end_method == "convolution":
        out.append(f"end to end from {_convolved_origin(lm)}: convolution of the hops, assuming independence")
    for o in lm.objectives:
        est = cell(o.estimate) if o.estimate else "no data"
        out.append(f"objective {o.objective.label} <= {format_duration(o.objective.threshold)}: "
                   f"{o.status.upper()} ({est})")
    return out


def to_table(lm: LatencyMap, findings: Findings | None = None, flow: bool = False) -> str:
    """The map as an aligned plain-text table with a summary and the checks; with ``flow``,
    a second block: items in and out, yield, %C&A, inventory and utilisation per stage."""
    head, rows = stage_rows(lm)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i < 3 else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [f"{lm.spec.name}: {format_time(lm.window.start)} .. {format_time(lm.window.end)} "
             f"({format_duration(lm.window.seconds)})", fmt.format(*head),
             "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*r) for r in rows]
    lines.append("")
    lines += summary_lines(lm)
    if flow:
        lines += ["", flow_table(lm).rstrip("\n")]
    if findings:
        lines += findings_lines(findings, lm.spec.percentiles)
    checks = (*lm.checks, *(findings.checks if findings else ()))
    if checks:
        lines.append("checks:")
        lines += [f"  {c.level}: [{c.code}] {c.message}" for c in checks]
    return "\n".join(lines) + "\n"


# report.md's escapes are the Markdown ones of mapper.core.escape: names as text, lines in code
_md_escape = markdown_text


def _md_code(text: str) -> str:
    """``text`` fit for a fenced code block: one line, and no fence of its own."""
    return markdown_code(text, fenced=True)


def to_markdown(lm: LatencyMap, findings: Findings | None = None) -> str:
    """``report.md``: the same content as the table, as GitHub-flavoured Markdown."""
    head, rows = stage_rows(lm)
    lines = [f"# Latency map: {_md_escape(lm.spec.name)}", "",
             f"Window: {format_time(lm.window.start)} .. {format_time(lm.window.end)} "
             f"({format_duration(lm.window.seconds)}). Intervals in brackets: histogram bucket "
             "bounds, 95% confidence for samples, or the accuracy a back end states for its own "
             "percentiles (Datadog's DDSketch). `*` marks the bottleneck, `?` a possible one (intervals overlap).", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
    lines.append("")
    lines += [f"- {_md_escape(s)}" for s in summary_lines(lm)]
    if findings:
        found = findings_lines(findings, lm.spec.percentiles)
        if found:
            lines += ["", "## Where the time goes", "", "```", *map(_md_code, found), "```"]
    lines += _flow_markdown(lm)
    lines += _segment_lines(lm)
    lines += why_lines(lm.explanations, lm.spec.links, _md_escape)
    lines += markdown_lines(lm, _md_escape)
    checks = (*lm.checks, *(findings.checks if findings else ()))
    if checks:
        lines += ["", "## Checks", ""]
        lines += [f"- **{c.level}** `{c.code}`: {_md_escape(c.message)}" for c in checks]

    lines += ["", "## The value stream", "", "```mermaid", to_mermaid(lm).rstrip("\n"), "```"]
    lines += ["", "## Where the numbers come from", ""]
    for s in lm.stages:
        for part in ("wait", "process"):
            r = s.part(part)
            if r is not None:
                lines.append(f"- {_md_escape(s.stage.name)} {part}: `{markdown_code(r.provenance)}`")
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
        out.append(f"- **{_md_escape(c.name)}** ({_md_escape(c.stage)} {_md_escape(c.part)}, "
                   f"{len(c.occurrences)} occurrence(s); quiet: {_md_escape(c.basis)})")
        out += [f"  - {'**flagged** ' if d.flagged else ''}{_md_escape(d.message)}" for d in c.differences]
    return out


def _flow_markdown(lm: LatencyMap) -> list[str]:
    """report.md's flow: the flow table, and the split, rework and reason lines under it."""
    rows = flow_rows(lm)
    if not rows:
        return []
    out = ["", "## Flow", "", "Items per stage over the window: in, handed on (out), yield = out / in, "
           "%C&A = first-pass yield (no error, no retry), inventory = items waiting before the stage "
           "(time-average / most at once), utilisation = busy time / (window x workers). "
           "`—`: the data cannot give the figure (the lines below say why).", "",
           "| " + " | ".join(_md_escape(h) for h in FLOW_HEAD) + " |", "|" + "|".join("---" for _ in FLOW_HEAD) + "|"]
    out += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
    lines = flow_lines(lm)
    if lines:
        out.append("")
        out += [f"- {_md_escape(line)}" for line in lines]
    return out
