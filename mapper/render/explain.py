"""Why the tail is slow, in the reports: ``report.json`` ``explanations``, the report.md and
report.html section, and the text ``latmap explain`` prints.

Every explanation kind (``attributes`` here; ``slices`` and ``critical_path``) is one object
of the same shape (docs/report-json.md); a number the data cannot support is null. Values of
attributes are text a span sent: escaped for Markdown and HTML here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mapper.analysis.critical_path import CriticalPathExplanation
from mapper.analysis.examples import END_TO_END
from mapper.analysis.explain import Explanation, Finding
from mapper.analysis.explain.kinds import AnyExplanation
from mapper.analysis.slices import SlicesExplanation
from mapper.core.distribution import percentile_label
from mapper.core.durations import format_duration
from mapper.core.escape import html_text as escape
from mapper.core.spec.links import Links
from mapper.render.cells import num
from mapper.render.examples import example_json, trace_links

#: Significant findings shown per explanation in report.md/html and the table.
SHOWN = 5


def finding_json(f: Finding, links: Links | None) -> dict[str, Any]:
    """A finding as the report schema's object."""
    return {"stage": f.stage, "scope": f.scope, "key": f.key, "value": f.value,
            "tail_items": f.tail, "rest_items": f.rest, "tail_share": num(f.tail_share),
            "rest_share": num(f.rest_share), "lift": num(f.lift), "p_value": num(f.p_value),
            "q_value": num(f.q_value), "significant": f.significant, "test": f.test, "new": f.new,
            "examples": [example_json(e, links) for e in f.examples]}


def explanation_json(e: Explanation, links: Links | None) -> dict[str, Any]:
    """An explanation as the report schema's object (``counts``: every value's tail and
    contrast counts, what a later ``--baseline`` compares with)."""
    return {
        "kind": e.kind, "stage": e.target, "part": e.part, "percentile": percentile_label(e.percentile),
        "q": num(e.percentile), "contrast": e.contrast, "threshold": num(e.threshold),
        "tail_items": e.tail_items, "rest_items": e.rest_items, "tested": e.tested, "alpha": num(e.alpha),
        "value_of": e.value_of, "versus": e.versus,
        "left_out": {k: list(v) for k, v in e.left_out.items()},
        "grouped": {k: list(v) for k, v in e.grouped.items()},
        "findings": [finding_json(f, links) for f in e.findings], "more": e.more,
        "counts": [{"stage": c.stage, "scope": c.scope, "key": c.key, "value": c.value, "tail": c.tail,
                    "rest": c.rest} for c in e.counts],
        "checks": [{"level": c.level, "code": c.code, "message": c.message, "stage": c.stage, "part": c.part}
                   for c in e.checks],
    }


def explanations_json(explanations: Sequence[AnyExplanation], links: Links | None) -> list[dict[str, Any]]:
    """Every explanation as the schema's object of its ``kind``."""
    return [explanation_json(e, links) if isinstance(e, Explanation) else _clean(e.to_json()) for e in explanations]


def _clean(x: Any) -> Any:
    """JSON without NaN or infinities (null instead: a number the data cannot support)."""
    if isinstance(x, float):
        return num(x)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def _other_lines(e: SlicesExplanation | CriticalPathExplanation) -> tuple[str, list[str]]:
    """A slices or critical-path explanation as a title and its lines: the verdict, what
    stands out (named slices per label, the deciding branch per join), what was left out."""
    if isinstance(e, SlicesExplanation):
        what = "lead time" if e.part == "lead" else f"{e.stage} {e.part}"
        head = f"{what} {percentile_label(e.q)} by label slices"
        lines = [e.verdict]
        lines += [ls.verdict for ls in e.labels if ls.named]
        if e.skipped:
            lines.append("left out: " + "; ".join(f"{s.label} ({s.values} values)" for s in e.skipped))
    else:
        head = f"critical path of the lead time {percentile_label(e.q)}: {e.tail_items:,} tail items of {e.items:,}"
        lines = [e.verdict]
        lines += [f"at {b.join}: {b.upstream} arrived last in {b.decided:,} ({b.share:.0%})" for b in e.branches]
    return head, [*lines, *(c.message for c in e.checks)]


def title(e: Explanation) -> str:
    """``risk hop p99`` or ``lead time p99``, and what it is compared with."""
    what = "lead time" if e.target == END_TO_END else f"{e.target} {e.part}"
    against = {"rest": "the other items", "median": "the median band",
               "baseline": e.versus or "the baseline"}.get(e.contrast, e.contrast)
    return f"{what} {percentile_label(e.percentile)}: {e.tail_items:,} tail items vs {against} ({e.rest_items:,})"


def finding_line(f: Finding, e: Explanation) -> str:
    """One finding as text: the value, its shares, lift and q-value."""
    where = f"{f.stage}: " if e.target == END_TO_END else ""
    # no lift: no contrast item has the value (a baseline's tail never had it: new)
    lift = ("new" if e.contrast == "baseline" else "unbounded (none in the contrast)") if f.lift is None \
        else f"x{f.lift:.2f}"
    tag = " (new)" if f.new and f.lift is not None else ""
    return (f"{where}{f.key}={f.value}{tag} ({f.scope}): {f.tail_share:.0%} of the tail vs {f.rest_share:.0%}, "
            f"lift {lift}, q={f.q_value:.2g}")


def _summary(e: Explanation) -> list[str]:
    """What was tested, what was left out and why."""
    out = []
    if e.threshold is not None:
        out.append(f"tail: at or beyond {format_duration(e.threshold)}; {e.tested} values tested "
                   f"(Fisher, Benjamini-Hochberg, q < {e.alpha:g}); an item's value: its {e.value_of} at the stage")
    if e.left_out:
        out.append("left out: " + "; ".join(f"{k} ({len(v)})" for k, v in e.left_out.items()))
    return out


def text(explanations: Sequence[AnyExplanation]) -> str:
    """What ``latmap explain --format table`` prints: per explanation its significant
    findings (or that none is), then what was left out, then its checks."""
    lines: list[str] = []
    for e in explanations:
        if not isinstance(e, Explanation):
            head, body = _other_lines(e)
            lines += [head, *(f"  {s}" for s in body), ""]
            continue
        lines += [title(e), *(f"  {s}" for s in _summary(e))]
        sig = e.significant
        if sig:
            lines += [f"  {i}. {finding_line(f, e)}" for i, f in enumerate(sig, 1)]
            lines += [f"     e.g. {', '.join(x.trace_ids)} ({format_duration(x.value)})"
                      for x in sig[0].examples[:1]]
        elif e.threshold is not None:
            lines.append("  no attribute value is significantly more common in the tail")
        lines += [f"  {c.level}: {c.message}" for c in e.checks]
        lines.append("")
    return "\n".join(lines)


def markdown_lines(explanations: Sequence[AnyExplanation], links: Links | None,
                   md_escape: Callable[[str], str]) -> list[str]:
    """report.md's "Why the tail is slow" section (nothing without explanations)."""
    if not explanations:
        return []
    out = ["", "## Why the tail is slow", ""]
    for e in explanations:
        if not isinstance(e, Explanation):
            head, body = _other_lines(e)
            out += [f"- **{md_escape(head)}**", *(f"  - {md_escape(s)}" for s in body)]
            continue
        out.append(f"- **{md_escape(title(e))}**")
        out += [f"  - {md_escape(s)}" for s in _summary(e)]
        sig = e.significant[:SHOWN]
        for f in sig:
            urls = [u for x in f.examples[:1] for u in trace_links(links, x)]
            ex = f" ([example]({urls[0].replace('(', '%28').replace(')', '%29').replace(' ', '%20')}))" if urls else ""
            out.append(f"  - {md_escape(finding_line(f, e))}{ex}")
        if not sig and e.threshold is not None:
            out.append("  - no attribute value is significantly more common in the tail")
        out += [f"  - {md_escape(c.message)}" for c in e.checks]
    return out


def html_section(explanations: Sequence[AnyExplanation], links: Links | None) -> str:
    """report.html's "Why the tail is slow" section (empty without explanations)."""
    if not explanations:
        return ""
    parts = ['<section id="why"><h2>Why the tail is slow</h2>']
    for e in explanations:
        if not isinstance(e, Explanation):
            head, body = _other_lines(e)
            parts += [f"<h3>{escape(head)}</h3>", *(f"<p>{escape(s)}</p>" for s in body)]
            continue
        parts.append(f"<h3>{escape(title(e))}</h3>")
        parts += [f"<p>{escape(s)}</p>" for s in _summary(e)]
        sig = e.significant[:SHOWN]
        if sig:
            parts.append("<ol>")
            for f in sig:
                urls = [u for x in f.examples[:1] for u in trace_links(links, x)]
                link = f' <a href="{escape(urls[0])}">example</a>' if urls else ""
                parts.append(f"<li>{escape(finding_line(f, e))}{link}</li>")
            parts.append("</ol>")
        elif e.threshold is not None:
            parts.append("<p>No attribute value is significantly more common in the tail.</p>")
        parts += [f"<p>{escape(c.message)}</p>" for c in e.checks]
    parts.append("</section>")
    return "".join(parts)
