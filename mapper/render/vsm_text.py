"""The latency map as text diagrams: Mermaid (renders in GitHub/GitLab Markdown) and Graphviz DOT.

A node per stage (name, owner, process p99, or "no data"), an edge per hop labelled with the
wait p99 of the stage it enters; the bottleneck is marked in words as well as by style.
Node ids are generated (``s0``, ``s1`` ...), so a stage name never becomes syntax: every name
and owner is escaped for the target language. Pure functions; no I/O.
"""

from __future__ import annotations

from mapper.analysis.latency import LatencyMap, StageResult
from mapper.render.cells import short_cell

# Mermaid reads ``#name;`` / ``#35;`` entity codes inside quoted labels; ``#`` itself goes first.
_MERMAID = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "|": "#124;",
            "`": "#96;", "\n": " ", "\r": " "}


def mermaid_escape(s: str) -> str:
    """Text safe inside a quoted Mermaid label (``"..."``), markup and quotes neutralised."""
    return "".join(_MERMAID.get(c, c) for c in s)


def dot_escape(s: str) -> str:
    """Text safe inside a double-quoted DOT string: backslashes and quotes escaped, no newlines."""
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("\r", " ")




def _has_data(s: StageResult) -> bool:
    return any(r is not None and r.distribution is not None for r in (s.wait, s.process))


def _node_lines(lm: LatencyMap, s: StageResult) -> list[str]:
    lines = [s.stage.name, f"owner: {s.stage.owner or '—'}"]
    if not _has_data(s):
        lines.append("no data")
    elif s.process is not None and s.process.distribution is not None:
        lines.append(f"process p99 {short_cell(s.process.distribution.quantile(0.99))}")
    b = lm.bottleneck
    if b is not None and b.marks(s.stage.name):
        lines.append("BOTTLENECK")
    elif b is not None and s.stage.name in b.candidates:
        lines.append("possible bottleneck")
    return lines


def _edge_label(lm: LatencyMap, target: str) -> str | None:
    w = lm.stage_result(target).wait
    if w is None:
        return None
    if w.distribution is None:
        return "wait: no data"
    return f"wait p99 {short_cell(w.distribution.quantile(0.99))}"


def _ids(lm: LatencyMap) -> dict[str, str]:
    return {s.stage.name: f"s{i}" for i, s in enumerate(lm.stages)}


def to_mermaid(lm: LatencyMap) -> str:
    """A ``flowchart LR``: one node per stage, one edge per hop (wait p99 on the edge)."""
    ids = _ids(lm)
    out = ["flowchart LR"]
    for s in lm.stages:
        label = "<br/>".join(mermaid_escape(x) for x in _node_lines(lm, s))
        out.append(f'    {ids[s.stage.name]}["{label}"]')
    for h in lm.hops:
        wait = _edge_label(lm, h.target)
        arrow = "-->" if wait is None else f'-->|"{mermaid_escape(wait)}"|'
        out.append(f"    {ids[h.source]} {arrow} {ids[h.target]}")
    out.append("    classDef bottleneck fill:#5b1a12,color:#ffffff,stroke:#000000,stroke-width:4px")
    out.append("    classDef nodata fill:#ffffff,stroke:#000000,stroke-dasharray:5 5")
    for s in lm.stages:
        if lm.bottleneck is not None and lm.bottleneck.marks(s.stage.name):
            out.append(f"    class {ids[s.stage.name]} bottleneck")
        elif not _has_data(s):
            out.append(f"    class {ids[s.stage.name]} nodata")
    return "\n".join(out) + "\n"


def to_dot(lm: LatencyMap) -> str:
    """A Graphviz ``digraph`` (left to right): one box per stage, one edge per hop."""
    ids = _ids(lm)
    out = [f'digraph "{dot_escape(lm.spec.name)}" {{',
           "    rankdir=LR;",
           '    node [shape=box, fontname="sans-serif"];',
           '    edge [fontname="sans-serif"];']
    for s in lm.stages:
        label = "\\n".join(dot_escape(x) for x in _node_lines(lm, s))
        attrs = [f'label="{label}"']
        if lm.bottleneck is not None and lm.bottleneck.marks(s.stage.name):
            attrs += ["penwidth=4", 'style="filled"', 'fillcolor="#5b1a12"', 'fontcolor="#ffffff"']
        elif not _has_data(s):
            attrs.append('style="dashed"')
        out.append(f"    {ids[s.stage.name]} [{', '.join(attrs)}];")
    for h in lm.hops:
        wait = _edge_label(lm, h.target)
        attr = "" if wait is None else f' [label="{dot_escape(wait)}"]'
        out.append(f"    {ids[h.source]} -> {ids[h.target]}{attr};")
    out.append("}")
    return "\n".join(out) + "\n"
