"""``report.html``: the whole report in one self-contained HTML5 file.

Opens without a network: CSS is inline, the map and the charts are inline SVG, and there is
no JavaScript. Every text that comes from the spec or the data (stage names, owners,
messages) goes through :func:`mapper.core.escape.html_text` (:func:`html.escape` with the characters
XML forbids replaced, so the inline SVGs stay well-formed); the SVGs escape their own text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from mapper.analysis.latency import LatencyMap
from mapper.analysis.profiles import PROFILE_PERCENTILES
from mapper.core.distribution import percentile_label
from mapper.core.durations import format_duration, format_time
from mapper.core.escape import html_text as escape
from mapper.render import plots
from mapper.render.cells import cell, method_of
from mapper.render.examples import html_section
from mapper.render.explain import html_section as why_section
from mapper.render.flow import flow_html
from mapper.render.report import stage_rows, summary_lines, total_source
from mapper.render.sections import future_state_section
from mapper.render.vsm_svg import to_svg

if TYPE_CHECKING:
    from mapper.analysis.findings import Findings

CSS = """
body{font:14px/1.4 system-ui,sans-serif;color:#222;max-width:1100px;margin:1em auto;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}th{background:#f3f3f3}
.charts{display:flex;flex-wrap:wrap;gap:8px}.chart svg{max-width:100%;height:auto}
.map svg{max-width:100%;height:auto}.error{color:#b2182b}.warning{color:#a15c00}
section{break-inside:avoid-page}.example{display:inline-block;margin:4px;vertical-align:top}
.example p{margin:0;font-size:11px;max-width:360px;word-break:break-all}
@media print{body{max-width:none;font-size:11px}.chart{break-inside:avoid}}
"""


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    out = ["<table><thead><tr>", *(f"<th>{escape(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _section(title: str, body: str) -> str:
    return f"<section><h2>{escape(title)}</h2>\n{body}\n</section>"


def _ul(items: Iterable[str], cls: Iterable[str] | None = None) -> str:
    classes = list(cls) if cls is not None else None
    lis = [(f'<li class="{escape(classes[i])}">' if classes else "<li>") + f"{escape(t)}</li>"
           for i, t in enumerate(items)]
    return "<ul>" + "".join(lis) + "</ul>" if lis else "<p>none</p>"


def _charts(svgs: Iterable[str]) -> str:
    return '<div class="charts">' + "".join(f'<div class="chart">{s}</div>' for s in svgs) + "</div>"


def _distributions(lm: LatencyMap) -> str:
    qs = lm.spec.percentiles
    svgs = []
    for s in lm.stages:
        for part in ("wait", "process"):
            r = s.part(part)
            if r is not None:
                svgs.append(plots.distribution_svg(r.distribution, qs, f"{s.stage.name} {part}"))
    if lm.end_to_end is not None:
        svgs.append(plots.distribution_svg(lm.end_to_end, qs, f"end to end ({lm.end_to_end_method})"))
    return _section("Latency distributions", _charts(svgs))


def _provenance(lm: LatencyMap) -> str:
    """Where every number comes from: each part's source and query, and how its
    percentiles were computed; then the end to end's method."""

    rows = []
    for s in lm.stages:
        for part in ("wait", "process"):
            r = s.part(part)
            if r is not None:
                how = method_of(r.distribution) if r.distribution is not None else "no data"
                rows.append([s.stage.name, part, r.provenance, how])
        if s.total is not None:
            rows.append([s.stage.name, "hop (wait + process)", total_source(s) or "", method_of(s.total)])
    if lm.end_to_end is not None:
        rows.append(["end to end", lm.end_to_end_method, ", ".join(lm.path), method_of(lm.end_to_end)])
    return _section("Where the numbers come from", _table(["stage", "part", "source", "method"], rows))


def _all_series(lm: LatencyMap) -> dict[tuple[str, str], tuple[Any, Any]]:
    """Hour-by-hour series: from the segments, and from sources that serve them (Datadog)."""
    out: dict[tuple[str, str], tuple[Any, Any]] = dict(lm.segments.series) if lm.segments else {}
    for s in lm.stages:
        for part in ("wait", "process"):
            r = s.part(part)
            if r is not None and r.series is not None and (s.stage.name, part) not in out:
                out[(s.stage.name, part)] = r.series
    return out


def _segments(lm: LatencyMap) -> str:

    out = []
    series = _all_series(lm)
    if series:
        out.append(_section("Percentiles over the window, hour by hour", _charts(
            plots.series_svg(starts, dists, PROFILE_PERCENTILES, f"{stage} {part}")
            for (stage, part), (starts, dists) in series.items())))
    seg = lm.segments
    if seg is None:
        return "\n".join(out)
    if seg.hours and seg.profiles:
        out.append(_section("Hour of day", _charts(
            plots.hourly_svg(p, PROFILE_PERCENTILES, f"{stage} {part}")
            for (stage, part), p in seg.profiles.items())))
    if seg.events:
        rows = [[c.name, c.stage, c.part, c.basis, d.message + (" (flagged)" if d.flagged else "")]
                for c in seg.events for d in c.differences]
        out.append(_section("Event windows", _charts([plots.events_svg(seg.events)])
                            + _table(["event", "stage", "part", "quiet basis", "difference"], rows)))
    return "\n".join(out)


def _findings(findings: Findings | None) -> str:
    if findings is None:
        return ""
    out = []
    if findings.attribution:
        out.append(_section("Where the tail comes from", _charts([plots.attribution_svg(findings.attribution)])
                            + _ul(a.headline() for a in findings.attribution)))
    if findings.shares:
        keys = ("wait_share_p50", "process_share_p50", "wait_share_p99", "process_share_p99", "flow_efficiency")
        rows = [[s.stage, *("-" if getattr(s, k) is None else f"{getattr(s, k):.1%}" for k in keys)]
                for s in findings.shares]
        out.append(_section("Time shares", _table(
            ["stage", "wait p50", "process p50", "wait p99", "process p99", "flow efficiency"], rows)))
    c = findings.comparison
    if c is not None:
        rows = [[ch.what, ch.percentile, format_duration(ch.before), format_duration(ch.after),
                 f"{ch.ratio:.2f}x", ch.kind] for ch in c.changes]
        body = (f"<p>Against {escape(c.baseline)}"
                f"{' of ' + escape(c.generated_at) if c.generated_at else ''}: "
                f"{len(c.regressions)} regression(s), {len(c.improvements)} improvement(s) "
                "beyond the intervals.</p>")
        if rows:
            body += _table(["what", "percentile", "before", "after", "ratio", "kind"], rows)
        out.append(_section("Compared with the previous run", body))
    if findings.lines:
        out.append(_section("Notes", _ul(findings.lines)))
    return "\n".join(out)


def _examples(lm: LatencyMap) -> str:
    body = html_section(lm)
    if not body:
        return ""
    return _section("Examples behind the tails", "<p>Items at or beyond each percentile's lower bound, one per "
                    "time slice first; each timeline shows the item's waits (light) and process times (dark) stage "
                    "by stage and opens its trace.</p>" + body)


def _whatif(lm: LatencyMap, findings: Findings | None) -> str:
    if not lm.spec.future:
        return ""
    doc: dict[str, Any] | None = future_state_section(lm, findings)
    if doc is None:
        return ""
    body = _ul(doc.get("changes", []))
    if "error" in doc:
        return _section("What if", body + f'<p class="error">{escape(str(doc["error"]))}</p>')
    rows = []
    for q in lm.spec.percentiles:
        label = percentile_label(q)
        now = (doc.get("current") or {}).get(label) or {}
        then = (doc.get("future") or {}).get(label) or {}
        rows.append([label, _fmt(now.get("value")), _fmt(then.get("value"))])
    body += _table(["percentile", "current", "future"], rows)
    body += f"<p>end to end by {escape(str(doc.get('method', '')))}</p>"
    return _section("What if", body)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else format_duration(x)


def to_html(lm: LatencyMap, findings: Findings | None = None) -> str:
    """The report as one HTML5 document (a ``str``; the caller writes it)."""

    head, rows = stage_rows(lm)
    hop_rows = [[h.source, h.target, "hop", *(
        [f"{h.latency.count:,.0f}", *(cell(h.latency.quantile(q)) for q in lm.spec.percentiles)]
        if h.latency is not None else ["no data", *([""] * len(lm.spec.percentiles))])] for h in lm.hops]
    checks = (*lm.checks, *(findings.checks if findings else ()))
    svg = to_svg(lm)
    svg = svg[svg.index("<svg"):] if "<svg" in svg else svg
    title = f"Latency map: {lm.spec.name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>Window {escape(format_time(lm.window.start))} .. {escape(format_time(lm.window.end))} "
        f"({escape(format_duration(lm.window.seconds))}). Intervals in brackets: histogram bucket bounds, "
        "95% confidence for samples, or the accuracy a back end states for its own percentiles (Datadog's "
        "DDSketch). <code>*</code> marks the bottleneck, <code>?</code> a possible one (intervals overlap).</p>",
        _section("The value stream", f'<div class="map">{svg}</div>'),
        _section("Per stage", _table(head, rows) + _ul(summary_lines(lm))),
        _section("Per hop", _table(["from", "to", "part", "n", *head[4:]], hop_rows)) if hop_rows else "",
        _section("Flow", flow_html(lm)) if lm.flow is not None else "",
        _distributions(lm),
        _segments(lm),
        _findings(findings),
        why_section(lm.explanations, lm.spec.links),
        _examples(lm),
        _whatif(lm, findings),
        _section("Checks", _ul((f"{c.level}: [{c.code}] {c.message}" for c in checks),
                               (c.level for c in checks))),
        _provenance(lm),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"
