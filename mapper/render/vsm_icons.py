"""The classic VSM icons of the map (issue 27), drawn when the map carries the stream's flow:
an inventory triangle ("I", the items waiting: mean and peak, and the wait) in front of each
process box, and under each box its data box (C/T as process p50/p99, %C&A, yield,
utilisation, workers); and the placement of stages in lanes when the stream branches.

Stable hooks for tests and stylesheets: ``<g class="vsm-inventory" data-stage=...>`` and
``<g class="vsm-databox" data-stage=...>``, each line a ``<text data-field=...>`` (fields
``inventory-mean``, ``inventory-peak``, ``wait-p50``, ``wait-p99``; ``ct``, ``ca``,
``yield``, ``utilisation``, ``workers``). Figures the data cannot give show as ``—``, and the
reason (the stage's flow checks) is the group's ``<title>``. Every text from the spec or the
data is escaped (:mod:`mapper.core.escape`). Pure functions; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from mapper.analysis.flow_model import StageFlow
from mapper.analysis.latency import LatencyMap, StageResult
from mapper.core.escape import xml_attr as quoteattr
from mapper.core.escape import xml_text as escape
from mapper.render.cells import short_cell
from mapper.render.flow import DASH, flow_reasons, pct, qty

INK = "#1a1a1a"
LINE = 15
#: The inventory triangle's height; the lines under it follow.
TRI_H = 30
#: Lines under the triangle: mean, peak, wait p50, wait p99.
SLOT_LINES = 4
#: Lines of a data box.
DATABOX_LINES = 5
DATABOX_H = LINE * DATABOX_LINES + 10
#: Where the arrow into a stage runs, below its box's top, when the icons are drawn.
ARROW_OFFSET = 4 + TRI_H + LINE * SLOT_LINES + 14


def text(x: float, y: float, s: str, *, size: int = 11, weight: str = "normal", fill: str = INK,
         anchor: str = "start", field: str | None = None) -> str:
    """One ``<text>``, its content escaped; ``field`` names it for DOM tests."""
    attr = f' data-field="{field}"' if field else ""
    return (f'<text x="{x:g}" y="{y:g}" font-size="{size}" font-weight="{weight}" '
            f'fill="{fill}" text-anchor="{anchor}"{attr}>{escape(s)}</text>')


def _title(lm: LatencyMap, stage: str, head: str) -> str:
    reasons = flow_reasons(lm, stage)
    return f"<title>{escape(head + (': ' + '; '.join(reasons) if reasons else ''))}</title>"


def _wait(s: StageResult, q: float) -> str:
    w = s.wait
    if w is None or w.distribution is None:
        return "no data"
    return short_cell(w.distribution.quantile(q))


def inventory(lm: LatencyMap, s: StageResult, f: StageFlow | None, sx: float, y: float, width: float) -> list[str]:
    """The inventory triangle in the wait slot left of a stage (``sx`` its left edge): the
    triangle with "I", the mean and peak items waiting, and the wait p50/p99."""
    name = s.stage.name
    inv = f.inventory if f is not None else None
    cx = sx + width / 2
    out = [f'<g class="vsm-inventory" data-stage={quoteattr(name)}>',
           _title(lm, name, f"inventory before {name}"),
           f'<polygon points="{cx:g},{y + 4:g} {cx - 18:g},{y + 4 + TRI_H:g} {cx + 18:g},{y + 4 + TRI_H:g}" '
           f'fill="#ffffff" stroke="{INK}" stroke-width="2"/>',
           text(cx, y + TRI_H, "I", size=13, weight="bold", anchor="middle")]
    lines = [("inventory-mean", f"mean {qty(inv.mean if inv else None)}"),
             ("inventory-peak", f"peak {qty(inv.peak if inv else None)}")]
    if s.wait is None:
        lines.append(("wait-p50", "wait not measured"))
    else:
        lines += [("wait-p50", f"wait p50 {_wait(s, 0.5)}"), ("wait-p99", f"wait p99 {_wait(s, 0.99)}")]
    for j, (field, line) in enumerate(lines):
        out.append(text(cx, y + 4 + TRI_H + LINE * (j + 1), line, size=10, anchor="middle", field=field))
    out.append("</g>")
    return out


def _ct(s: StageResult) -> str:
    p = s.process
    if p is None:
        return "C/T not measured"
    if p.distribution is None:
        return "C/T no data"
    d = p.distribution
    return f"C/T p50 {short_cell(d.quantile(0.5))} · p99 {short_cell(d.quantile(0.99))}"


def databox_lines(lm: LatencyMap, s: StageResult, f: StageFlow | None) -> list[tuple[str, str]]:
    """The data box's ``(field, line)`` pairs, in the order drawn."""
    r = f.rework if f is not None else None
    u = f.utilisation if f is not None else None
    last = not any(up == s.stage.name for st in lm.stages for up in st.stage.upstream)
    yld = pct(f.yield_ if f is not None else None)
    if yld == DASH and last:
        yld = f"{DASH} (end of stream)"
    util = pct(u.value if u else None)
    if u is not None and u.peak_hour is not None:
        util += f" · peak hour {pct(u.peak_hour)}"
    workers = DASH if u is None or u.workers is None else str(u.workers)
    if u is not None and u.workers is not None and u.workers_source:
        workers += f" ({u.workers_source})"
    return [("ct", _ct(s)), ("ca", f"%C&A {pct(r.first_pass_yield if r else None)}"),
            ("yield", f"yield {yld}"), ("utilisation", f"utilisation {util}"), ("workers", f"workers {workers}")]


def databox(lm: LatencyMap, s: StageResult, f: StageFlow | None, x: float, y: float, width: float) -> list[str]:
    """The data box under a process box (``y`` its top)."""
    name = s.stage.name
    out = [f'<g class="vsm-databox" data-stage={quoteattr(name)}>', _title(lm, name, f"data box of {name}"),
           f'<rect x="{x:g}" y="{y:g}" width="{width:g}" height="{DATABOX_H}" fill="#ffffff" stroke="{INK}" '
           'stroke-width="1"/>']
    for j, (field, line) in enumerate(databox_lines(lm, s, f)):
        out.append(text(x + 8, y + LINE * (j + 1), line, size=10, field=field))
    out.append("</g>")
    return out


def lanes(names: Sequence[str], upstream: dict[str, tuple[str, ...]],
          per_row: int) -> tuple[list[tuple[int, int]], bool]:
    """Each stage's ``(row, column)``, and whether the stream branches.

    A straight chain wraps after ``per_row`` stages, as always. A stream that branches (a
    stage with several next stages, or several upstreams) is laid out as a graph: the column
    is the stage's depth (longest path from a first stage), the row a lane, each stage
    keeping its first upstream's lane when it is free, so a branch leaves its stage sideways.
    """
    index = {n: i for i, n in enumerate(names)}
    ups = {n: [u for u in upstream.get(n, ()) if u in index] for n in names}
    downs: dict[str, int] = {}
    for n in names:
        for u in ups[n]:
            downs[u] = downs.get(u, 0) + 1
    if not any(len(v) > 1 for v in ups.values()) and not any(c > 1 for c in downs.values()):
        return [divmod(i, per_row) for i in range(len(names))], False
    depth = {n: 0 for n in names}
    for n in names:  # upstreams are listed before their stages (the spec's flow order)
        depth[n] = max((depth[u] + 1 for u in ups[n] if index[u] < index[n]), default=0)
    used: dict[int, set[int]] = {}
    lane: dict[str, int] = {}
    for n in sorted(names, key=lambda m: (depth[m], index[m])):
        row = lane.get(ups[n][0], 0) if ups[n] else 0
        taken = used.setdefault(depth[n], set())
        while row in taken:
            row += 1
        taken.add(row)
        lane[n] = row
    return [(lane[n], depth[n]) for n in names], True
