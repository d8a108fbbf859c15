"""Example items in the reports: JSON objects for ``report.json``, Markdown links, and the
per-item timeline (a small VSM ladder in inline SVG: each stage's wait then its process,
stage by stage) that ``report.html`` links to each trace.

Every URL comes from :func:`mapper.core.tracelinks.trace_url` (percent-escaped there);
every text put into HTML or SVG goes through :func:`mapper.core.escape.html_text` here
(:func:`html.escape`, and no character XML forbids); into Markdown through the escapes given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mapper.analysis.examples import END_TO_END, MEDIAN, Example
from mapper.analysis.latency import LatencyMap
from mapper.core.distribution import percentile_label
from mapper.core.durations import format_duration, format_time
from mapper.core.escape import html_text as escape
from mapper.core.escape import markdown_code
from mapper.core.spec.links import Links
from mapper.core.tracelinks import trace_url
from mapper.render.cells import num

WAIT_FILL = "#f4a582"
PROCESS_FILL = "#2166ac"


def trace_links(links: Links | None, e: Example) -> list[str]:
    """One URL per trace id of the example (none without ``links:``)."""
    if links is None:
        return []
    return [trace_url(links, t, e.start, e.end) for t in e.trace_ids]


def example_json(e: Example, links: Links | None) -> dict[str, Any]:
    """An example as the report schema's object (see docs/report-json.md)."""
    return {
        "trace_ids": list(e.trace_ids),
        "links": trace_links(links, e),
        "start": format_time(e.start),
        "start_unix": num(e.start),
        "value": num(e.value),
        "lead": num(e.lead),
        "unaccounted": num(e.unaccounted),
        "stages": [{"stage": s.stage, "wait": num(s.wait), "process": num(s.process)} for s in e.stages],
        "source": e.source,
    }


def add_examples(obj: dict[str, Any] | None, lm: LatencyMap, target: str, part: str) -> dict[str, Any] | None:
    """``obj`` (a latency object) with ``examples`` under each percentile and
    ``median_examples`` beside them; unchanged when the map has no examples."""
    if obj is None or lm.examples is None:
        return obj
    links = lm.spec.links
    for q in lm.spec.percentiles:
        label = percentile_label(q)
        if isinstance(obj.get(label), dict):
            obj[label]["examples"] = [example_json(e, links) for e in lm.examples.get(target, part, q)]
    obj["median_examples"] = [example_json(e, links) for e in lm.examples.get(target, part, MEDIAN)]
    return obj


def markdown_lines(lm: LatencyMap, md_escape: Callable[[str], str]) -> list[str]:
    """report.md's "Examples" section: per tail, each example as links to its traces."""
    if lm.examples is None or not lm.examples.by_key:
        return []
    out = ["", "## Examples", "",
           "Items at or beyond each percentile's lower bound, one per time slice of the window first."]
    for (target, part, q), exs in sorted(lm.examples.by_key.items(), key=lambda kv: _order(lm, kv[0])):
        if not exs:
            continue
        what = "lead time" if target == END_TO_END else f"{target} {part}"
        tail = "median" if q == MEDIAN else percentile_label(q)
        out += ["", f"- **{md_escape(what)} {tail}**"]
        for e in exs:
            urls = trace_links(lm.spec.links, e)
            # a trace id is whatever a span sent: code text without backticks or line breaks
            ids = (", ".join(f"[`{markdown_code(t)}`]({u.replace('(', '%28').replace(')', '%29').replace(' ', '%20')})"
                             for t, u in zip(e.trace_ids, urls, strict=True)) if urls
                   else ", ".join(f"`{markdown_code(t)}`" for t in e.trace_ids))
            out.append(f"  - {format_duration(e.value)} at {format_time(e.start)} ({md_escape(e.source)}): {ids}")
    return out


def _order(lm: LatencyMap, key: tuple[str, str, float]) -> tuple[int, int, float]:
    names = [s.stage.name for s in lm.stages]
    target, part, q = key
    return (names.index(target) if target in names else len(names), ("wait", "process", "hop", "lead").index(part),
            -1.0 if q == MEDIAN else q)


def timeline_svg(e: Example, width: int = 360) -> str:
    """One item as a ladder: per stage a wait bar (light) then a process bar (dark), laid
    end to end on one time axis from 0 to the item's lead time (or the sum of its parts)."""
    total = sum((s.wait or 0.0) + s.process for s in e.stages)
    span = max(e.lead or 0.0, total, 1e-12)
    row, left, right = 16, 110, 10
    h = row * len(e.stages) + 20
    scale = (width - left - right) / span
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width}" height="{h}" '
             f'viewBox="0 0 {width} {h}" role="img"><title>{escape(_title(e))}</title>']
    t = 0.0
    for i, s in enumerate(e.stages):
        y = 4 + i * row
        parts.append(f'<text x="2" y="{y + 11}" font-size="10">{escape(s.stage[:18])}</text>')
        if s.wait is not None:
            w = max(s.wait, 0.0)
            parts.append(f'<rect class="wait" x="{left + t * scale:.1f}" y="{y + 2}" width="{max(w * scale, 0.5):.1f}" '
                         f'height="10" fill="{WAIT_FILL}"><title>{escape(s.stage)} wait '
                         f'{escape(format_duration(s.wait))}</title></rect>')
            t += w
        parts.append(f'<rect class="process" x="{left + t * scale:.1f}" y="{y + 2}" '
                     f'width="{max(s.process * scale, 0.5):.1f}" height="10" fill="{PROCESS_FILL}"><title>'
                     f'{escape(s.stage)} process {escape(format_duration(s.process))}</title></rect>')
        t += s.process
    parts.append(f'<text x="{left}" y="{h - 3}" font-size="10">0</text>'
                 f'<text x="{width - right}" y="{h - 3}" font-size="10" text-anchor="end">'
                 f'{escape(format_duration(span))}</text></svg>')
    return "".join(parts)


def _title(e: Example) -> str:
    return f"{format_duration(e.value)} at {format_time(e.start)}: " + ", ".join(e.trace_ids)


def slowest(lm: LatencyMap, target: str, part: str, q: float) -> list[Example]:
    """The examples of a tail, slowest first (empty without examples)."""
    if lm.examples is None:
        return []
    return sorted(lm.examples.get(target, part, q), key=lambda e: (-e.value, e.start, e.trace_ids))


def tail_targets(lm: LatencyMap) -> list[tuple[str, str, str, float]]:
    """(title, target, part, q) of the tails the HTML report illustrates: the p99 and
    p99.99 (those asked; else the highest asked) of the lead time and of the bottleneck hop,
    then median items of the lead time for contrast."""
    qs = [q for q in (0.99, 0.9999) if q in lm.spec.percentiles] or [max(lm.spec.percentiles)]
    out = [(f"lead time {percentile_label(q)}", END_TO_END, "lead", q) for q in qs]
    b = lm.bottleneck
    if b is not None:
        out += [(f"bottleneck hop into {b.stage} {percentile_label(q)}", b.stage, "hop", q) for q in qs]
    out.append(("lead time around the median, for contrast", END_TO_END, "lead", MEDIAN))
    return out


def html_section(lm: LatencyMap) -> str:
    """The tail section's examples: per tail, each example as a timeline linked to its trace."""
    if lm.examples is None:
        return ""
    links = lm.spec.links
    blocks = []
    for title, target, part, q in tail_targets(lm):
        exs = slowest(lm, target, part, q)
        body = [f'<h3>{escape(title)}</h3>']
        if not exs:
            body.append("<p>no example: no item at or beyond this percentile's lower bound "
                        "(or the data cannot support the percentile)</p>")
        for e in exs:
            urls = trace_links(links, e)
            ids = ", ".join(f'<a class="trace" href="{escape(u, quote=True)}">{escape(t)}</a>'
                            for t, u in zip(e.trace_ids, urls, strict=True)) if urls else ", ".join(
                f"<code>{escape(t)}</code>" for t in e.trace_ids)
            svg = timeline_svg(e) if e.stages else ""
            if svg and urls:
                svg = f'<a class="timeline-link" href="{escape(urls[0], quote=True)}">{svg}</a>'
            body.append(f'<div class="example">{svg}<p>{escape(format_duration(e.value))} at '
                        f'{escape(format_time(e.start))} ({escape(e.source)}): {ids}</p></div>')
        blocks.append("".join(body))
    return "\n".join(blocks)


def examples_doc(lm: LatencyMap, target: str, part: str, q: float) -> dict[str, Any]:
    """What ``latmap examples`` prints as JSON: the percentile's estimate, its examples
    (slowest first) and the median contrast."""
    d = (lm.end_to_end if part == "lead" else
         lm.stage_result(target).total if part == "hop" else
         (r.distribution if (r := lm.stage_result(target).part(part)) is not None else None))
    est = d.quantile(q) if d is not None else None
    links = lm.spec.links
    return {
        "stage": None if target == END_TO_END else target, "part": part, "percentile": percentile_label(q),
        "value": num(est.value) if est else None, "low": num(est.low) if est else None,
        "high": num(est.high) if est else None, "note": est.note if est else "no data",
        "count": num(d.count) if d is not None else 0,
        "viewer": links.name if links else None,
        "examples": [example_json(e, links) for e in slowest(lm, target, part, q)],
        "median_examples": [example_json(e, links) for e in
                            (lm.examples.get(target, part, MEDIAN) if lm.examples else ())],
    }


def examples_text(doc: dict[str, Any]) -> str:
    """The examples for people: one block per example, its trace links and breakdown."""
    what = "lead time" if doc["part"] == "lead" else f"{doc['stage']} {doc['part']}"
    low = "n/a" if doc["low"] is None else format_duration(doc["low"])
    lines = [f"{what} {doc['percentile']}: "
             + ("n/a" if doc["value"] is None else format_duration(doc["value"]))
             + f" (examples at or beyond {low}, n={doc['count'] or 0:,.0f})"]
    for title, key in (("examples", "examples"), ("median, for contrast", "median_examples")):
        lines.append(f"{title}:")
        if not doc[key]:
            lines.append("  none" + (f" ({doc['note']})" if key == "examples" and doc["note"] else ""))
        for e in doc[key]:
            lines.append(f"  {format_duration(e['value'])} at {e['start']} ({e['source']})")
            for i, t in enumerate(e["trace_ids"]):
                lines.append(f"    trace {t}" + (f"  {e['links'][i]}" if e["links"] else ""))
            if e["stages"]:
                lines.append("    " + " | ".join(
                    f"{s['stage']}: " + ("" if s["wait"] is None else f"wait {format_duration(s['wait'])}, ")
                    + f"process {format_duration(s['process'])}" for s in e["stages"]))
    return "\n".join(lines) + "\n"
