"""The latency map as a standalone SVG in the visual language of a value stream map.

A box per stage (name, owner, process percentiles with n, trace completeness), an arrow into
each stage labelled with its wait, the bottleneck drawn dark with a thick border and a
hatched band, a stage without data dashed, and under each row of boxes the VSM timeline
ladder (wait on the upper step, process on the lower). The lead time p50/p99 and the flow
efficiency close the picture. With examples and ``links:`` in the spec, the bottleneck box
opens its slowest example's trace and numbered links above it open the others. When the map
carries the stream's flow (``LatencyMap.flow``), the classic VSM icons join in
(:mod:`mapper.render.vsm_icons`): an inventory triangle in each wait slot and a data box
under each process box; a stream that branches is laid out in lanes, its branches drawn as
elbow arrows (``class="vsm-arrow vsm-branch"``, ``data-from``, ``data-to``).

What a caller can rely on: the output is well-formed XML; every string taken from the spec
or the data passes through :func:`xml.sax.saxutils.escape` / ``quoteattr``; meaning is never
carried by colour alone (the fills in :data:`FILLS` differ in luminance, and every mark has
a text label); stages wrap after :data:`PER_ROW` per row so 2 to 30 stages stay readable.
Pure function of the :class:`~mapper.analysis.latency.LatencyMap`; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mapper.analysis.latency import LatencyMap, StageResult
from mapper.core.distribution import Distribution, percentile_label
from mapper.core.durations import format_duration
from mapper.core.escape import xml_attr as quoteattr
from mapper.core.escape import xml_text as escape
from mapper.core.model import MeasurementResult
from mapper.render.cells import cell, short_cell
from mapper.render.examples import slowest, trace_links
from mapper.render.vsm_icons import ARROW_OFFSET, DATABOX_H, databox, inventory, lanes

PER_ROW = 6
BOX_W = 210
SLOT_W = 120  # the gap left of each box: the wait arrow, and the ladder's upper step
MARGIN = 20
LINE = 15
FONT = "sans-serif"
NAME_CHARS = 28

#: Fills by role. Their relative luminances are far apart, so a greyscale print keeps them
#: distinct; text on the dark ones is white.
FILLS: dict[str, str] = {
    "no_data": "#ffffff",
    "stage": "#d6e2ef",
    "wait": "#e8a75a",
    "process": "#3d74ad",
    "bottleneck": "#5b1a12",
}
INK = "#1a1a1a"
DARK_FILLS = frozenset({"process", "bottleneck"})


def relative_luminance(colour: str) -> float:
    """WCAG 2 relative luminance of ``#rrggbb`` (0 black .. 1 white)."""
    rgb = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]




def _clip(s: str, n: int = NAME_CHARS) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _text(x: float, y: float, s: str, *, size: int = 11, weight: str = "normal", fill: str = INK,
          anchor: str = "start") -> str:
    return (f'<text x="{x:g}" y="{y:g}" font-size="{size}" font-weight="{weight}" '
            f'fill="{fill}" text-anchor="{anchor}">{escape(s)}</text>')


def _has_data(s: StageResult) -> bool:
    return any(r is not None and r.distribution is not None for r in (s.wait, s.process))


def _part_p50(r: MeasurementResult | None) -> str:
    if r is None:
        return "—"
    if r.distribution is None:
        return "no data"
    return short_cell(r.distribution.quantile(0.5))


def _box_lines(lm: LatencyMap, s: StageResult) -> list[str]:
    """The metric lines of a stage box, under its name."""
    lines = [f"owner: {s.stage.owner or '—'}"]
    if not _has_data(s):
        lines.append("no data")
    p = s.process
    if p is None:
        lines.append("process: not measured")
    elif p.distribution is None:
        lines.append("process: no data")
    else:
        d = p.distribution
        lines.append(f"process n={d.count:,.0f}")
        lines += [f"{percentile_label(q)} {cell(d.quantile(q))}" for q in lm.spec.percentiles]
    if lm.traces is not None:
        lines.append(f"complete {100 * lm.traces.completeness(s.stage.name):.1f}% of traces")
    b = lm.bottleneck
    if b is not None and b.marks(s.stage.name):
        lines.append(f"BOTTLENECK hop {percentile_label(b.q)} {short_cell(b.estimate)}")
    elif b is not None and s.stage.name in b.candidates:
        lines.append("possible bottleneck (intervals overlap)")
    return lines


def _wait_lines(s: StageResult) -> list[str]:
    w = s.wait
    if w is None:
        return []
    if w.distribution is None:
        return ["wait", "no data"]
    d = w.distribution
    return ["wait", f"p50 {short_cell(d.quantile(0.5))}", f"p99 {short_cell(d.quantile(0.99))}"]


def _defs() -> str:
    return ('<defs>'
            '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{INK}"/></marker>'
            '<pattern id="hatch" width="8" height="8" patternUnits="userSpaceOnUse" '
            'patternTransform="rotate(45)"><rect width="8" height="8" fill="#ffffff"/>'
            f'<line x1="0" y1="0" x2="0" y2="8" stroke="{INK}" stroke-width="4"/></pattern>'
            '</defs>')


def _lead_lines(lm: LatencyMap) -> list[str]:
    out: list[str] = []
    d: Distribution | None = lm.end_to_end
    if d is None:
        out.append("lead time: no end-to-end data")
    else:
        for q in (0.5, 0.99):
            out.append(f"lead time {percentile_label(q)} {cell(d.quantile(q))}")
    fe = lm.flow_efficiency
    out.append("flow efficiency: n/a" if fe is None else
               f"flow efficiency {100 * fe.value:.1f}% (process {format_duration(fe.process)} "
               f"of {format_duration(fe.lead)}, by {fe.method})")
    return out


@dataclass(frozen=True)
class _Layout:
    """Where things go: stages in rows of :data:`PER_ROW` (or, when the stream branches, in
    lanes: :func:`mapper.render.vsm_icons.lanes`), each a wait slot then a box, with the data
    box (when the map has its flow) and the ladder under them; the lead time lines close the
    picture."""

    box_h: int
    row_h: int
    top: int
    width: int
    height: int
    rows: int
    #: Each stage's (row, column), in the map's order.
    cells: tuple[tuple[int, int], ...]
    branched: bool
    #: The data box's height; 0 without flow (no icons).
    databox_h: int
    #: Where the arrow into a box runs, below the box's top.
    arrow_y: float

    @classmethod
    def of(cls, lm: LatencyMap, lead_lines: int) -> _Layout:
        names = [s.stage.name for s in lm.stages]
        cells, branched = lanes(names, {s.stage.name: s.stage.upstream for s in lm.stages}, PER_ROW)
        cols = max(1, max((c for _, c in cells), default=0) + 1)
        rows = max(1, max((r for r, _ in cells), default=0) + 1)
        box_h = LINE * (2 + max((len(_box_lines(lm, s)) for s in lm.stages), default=1)) + 6
        icons = lm.flow is not None
        fan_in = max((len(s.stage.upstream) for s in lm.stages), default=1)
        if icons:  # the triangle and its lines fill the slot: the arrows run under them
            box_h = max(box_h, ARROW_OFFSET + 14 * max(0, fan_in - 1) + 10)
        databox_h = DATABOX_H + 6 if icons else 0
        ladder_h = 70
        row_h = box_h + databox_h + ladder_h + 40
        top = MARGIN + 50
        width = MARGIN * 2 + cols * (SLOT_W + BOX_W) + 40
        return cls(box_h, row_h, top, width, top + rows * row_h + LINE * (lead_lines + 1) + MARGIN, rows,
                   tuple(cells), branched, databox_h, ARROW_OFFSET if icons else box_h / 2)

    def place(self, i: int) -> tuple[float, float]:
        """The top left corner of stage ``i``'s box."""
        r, c = self.cells[i]
        return MARGIN + SLOT_W + c * (SLOT_W + BOX_W), self.top + r * self.row_h


@dataclass
class _Connectors:
    """The numbered off-page connectors drawn so far (numbered in drawing order), and how many
    leave each stage (stacked under its box)."""

    count: int = 0
    out_of: dict[str, int] = field(default_factory=dict)


def to_svg(lm: LatencyMap) -> str:
    """The standalone SVG document (UTF-8 text, no XML declaration) of the latency map."""
    lead = _lead_lines(lm)
    layout = _Layout.of(lm, len(lead))
    out = _header(lm, layout)
    order = {s.stage.name: i for i, s in enumerate(lm.stages)}
    incoming: dict[str, list[str]] = {}
    for h in lm.hops:
        incoming.setdefault(h.target, []).append(h.source)
    connectors = _Connectors()
    for i, s in enumerate(lm.stages):
        x, y = layout.place(i)
        out += _stage_box(lm, s, x, y, layout.box_h)
        out += _wait_slot(lm, s, i, x, y, layout, incoming.get(s.stage.name, []), order, connectors)
        if lm.flow is not None:
            out += databox(lm, s, lm.flow.of(s.stage.name), x, y + layout.box_h + 6, BOX_W)
        out += _ladder(s, x, y + layout.box_h + layout.databox_h)
    ly = layout.top + layout.rows * layout.row_h
    for j, line in enumerate(lead):
        out.append(_text(MARGIN, ly + j * LINE, line, size=12, weight="bold" if j == 0 else "normal"))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _header(lm: LatencyMap, layout: _Layout) -> list[str]:
    """The document's opening: size, accessible title, markers, background, heading, legend."""
    width, height = layout.width, layout.height
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" font-family="{FONT}" role="img" '
        f'aria-label={quoteattr("value stream map " + lm.spec.name)}>',
        f"<title>{escape('value stream map: ' + lm.spec.name)}</title>",
        _defs(),
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        _text(MARGIN, MARGIN + 16, f"Value stream: {lm.spec.name}"
              + (f" (owner: {lm.spec.owner})" if lm.spec.owner else ""), size=16, weight="bold"),
        _text(MARGIN, MARGIN + 34, ("boxes: process time per stage · triangles: items waiting and the wait "
                                    "before the stage · data boxes: C/T, %C&A, yield, utilisation · "
                                    if lm.flow is not None else
                                    "boxes: process time per stage · arrows: wait before the stage · ")
              + "ladder: p50 wait (upper) and process (lower)", size=11),
    ]


def _stage_box(lm: LatencyMap, s: StageResult, x: float, y: float, box_h: int) -> list[str]:
    """A stage's box: its fill by role, dashed without data; the bottleneck hatched, opening
    its slowest example's trace, with the other examples numbered above it."""
    out: list[str] = []
    name = s.stage.name
    bottleneck = lm.bottleneck is not None and lm.bottleneck.marks(name)
    data = _has_data(s)
    role = "bottleneck" if bottleneck else "stage" if data else "no_data"
    ink = "#ffffff" if role in DARK_FILLS else INK
    dash = "" if data else ' stroke-dasharray="6 4"'
    stroke_w = 5 if bottleneck else 1.5
    cls = "stage bottleneck" if bottleneck else "stage" if data else "stage no-data"
    rank_q = lm.bottleneck.q if lm.bottleneck is not None else 0.99
    slow = slowest(lm, name, "hop", rank_q) if bottleneck else []
    urls = [u for e in slow for u in trace_links(lm.spec.links, e)[:1]]
    if urls:  # the bottleneck box opens its slowest example; each is numbered above the box
        out.append(_text(x + BOX_W - 4 - 16 * len(urls), y - 4,
                         f"slowest {percentile_label(rank_q)} examples:", size=10, anchor="end"))
        out.append(f'<a class="bottleneck-example" href={quoteattr(urls[0])}>')
    out.append(f'<g class="{cls}" data-stage={quoteattr(name)}><title>{escape(name)}</title>')
    out.append(f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{box_h}" rx="3" fill="{FILLS[role]}" '
               f'stroke="{INK}" stroke-width="{stroke_w}"{dash}/>')
    if bottleneck:
        out.append(f'<rect x="{x}" y="{y}" width="{BOX_W}" height="10" fill="url(#hatch)" '
                   f'stroke="{INK}" stroke-width="1"/>')
    ty = y + LINE + (10 if bottleneck else 4)
    out.append(_text(x + 8, ty, _clip(name), size=13, weight="bold", fill=ink))
    for line in _box_lines(lm, s):
        ty += LINE
        out.append(_text(x + 8, ty, line, fill=ink, weight="bold" if line.startswith("BOTTLENECK") else "normal"))
    out.append("</g>")
    if urls:
        out.append("</a>")
        for j, u in enumerate(urls):
            out.append(f'<a class="bottleneck-example" href={quoteattr(u)}>'
                       + _text(x + BOX_W - 4 - 16 * (len(urls) - 1 - j), y - 4, str(j + 1), size=10,
                               weight="bold", anchor="end", fill="#1f4e9a") + "</a>")
    return out


def _arrow_class(lm: LatencyMap, src: str, dst: str) -> str:
    """An arrow's hooks: ``vsm-arrow``, plus ``vsm-branch`` when its stage hands over to
    several next stages; ``data-from`` / ``data-to`` name the stages."""
    fan_out = sum(1 for s in lm.stages if src in s.stage.upstream)
    cls = "vsm-arrow vsm-branch" if fan_out > 1 else "vsm-arrow"
    return f'class="{cls}" data-from={quoteattr(src)} data-to={quoteattr(dst)}'


def _wait_slot(lm: LatencyMap, s: StageResult, i: int, x: float, y: float, layout: _Layout, sources: list[str],
               order: dict[str, int], connectors: _Connectors) -> list[str]:
    """The wait slot left of stage ``i``'s box: its wait (with the flow: the inventory
    triangle), and an arrow in from each upstream stage: straight from the box beside it, an
    elbow from a branching stage in the column before, else a numbered off-page connector pair."""
    out: list[str] = []
    box_h = layout.box_h
    sx = x - SLOT_W
    name = s.stage.name
    if lm.flow is not None and (sources or _inventory_known(lm, name)):
        out += inventory(lm, s, lm.flow.of(name), sx, y, SLOT_W)
    elif lm.flow is None:
        for j, line in enumerate(_wait_lines(s)):
            out.append(_text(sx + SLOT_W / 2, y + 14 + j * LINE, line, anchor="middle"))
    row, col = layout.cells[i]
    for k, src in enumerate(sources):
        ay = y + layout.arrow_y + 14 * k
        attrs = _arrow_class(lm, src, name)
        up = layout.cells[order[src]] if src in order else None
        if up == (row, col - 1):
            out.append(f'<line {attrs} x1="{sx + 2}" y1="{ay}" x2="{x - 2}" y2="{ay}" stroke="{INK}" '
                       'stroke-width="2" marker-end="url(#arrow)"/>')
            continue
        if layout.branched and up is not None and up[1] == col - 1:  # a branch: out of the box before, sideways
            px, py = layout.place(order[src])
            out.append(f'<path {attrs} d="M{px + BOX_W:g},{py + layout.arrow_y:g} H{sx + 8:g} V{ay:g} H{x - 2:g}" '
                       f'fill="none" stroke="{INK}" stroke-width="2" marker-end="url(#arrow)"/>')
            continue
        # Not side by side (a row wrap or a branch): a numbered off-page connector pair.
        connectors.count += 1
        tag = f"({connectors.count})"
        out.append(_text(sx + 16, ay + 4, tag, weight="bold", anchor="middle"))
        out.append(f'<line {attrs} x1="{sx + 30}" y1="{ay}" x2="{x - 2}" y2="{ay}" stroke="{INK}" '
                   'stroke-width="2" marker-end="url(#arrow)"/>')
        if src in order:
            px, py = layout.place(order[src])
            nth = connectors.out_of[src] = connectors.out_of.get(src, 0) + 1
            out.append(_text(px + BOX_W + 4, py + box_h + 10 - LINE * nth, f"→{tag}", weight="bold"))
    return out


def _inventory_known(lm: LatencyMap, stage: str) -> bool:
    """Whether the flow has an inventory before ``stage`` (a first stage gets a triangle only then)."""
    f = lm.flow.of(stage) if lm.flow is not None else None
    return f is not None and f.inventory is not None


def _ladder(s: StageResult, x: float, box_bottom: float) -> list[str]:
    """The VSM timeline ladder under a stage: wait on the upper step (in the slot), process on
    the lower (under the box); a step without data dashed."""
    sx = x - SLOT_W
    up = box_bottom + 25
    low = up + 30
    w_dash = "" if s.wait is not None and s.wait.distribution is not None else ' stroke-dasharray="4 3"'
    p_dash = "" if s.process is not None and s.process.distribution is not None else ' stroke-dasharray="4 3"'
    return [
        f'<rect x="{sx + 4}" y="{up - 6}" width="{SLOT_W - 8}" height="6" fill="{FILLS["wait"]}" '
        f'stroke="{INK}" stroke-width="1"{w_dash}/>',
        _text(sx + SLOT_W / 2, up - 10, f"wait {_part_p50(s.wait)}", size=10, anchor="middle"),
        f'<path d="M{sx + 4},{up} H{x} V{low} H{x + BOX_W} V{up}" fill="none" stroke="{INK}" '
        'stroke-width="1.5"/>',
        f'<rect x="{x + 4}" y="{low}" width="{BOX_W - 8}" height="6" fill="{FILLS["process"]}" '
        f'stroke="{INK}" stroke-width="1"{p_dash}/>',
        _text(x + BOX_W / 2, low + 20, f"process {_part_p50(s.process)}", size=10, anchor="middle"),
    ]
