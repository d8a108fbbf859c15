"""The history index's trend: end-to-end p50 and p99 per run with their intervals, as inline
SVG (no script, no external reference), oldest run on the left.

Each percentile is a line through the runs' values and a shaded band between each run's
``low`` and ``high``; a run that has only a lower bound (the +Inf bucket) is a hollow
triangle at the bound, titled ``>2.58s``; a run with nothing is a gap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from mapper.core.durations import format_duration
from mapper.core.escape import html_text as escape

COLOURS = {"p50": "#1b7837", "p99": "#2166ac"}


class TrendPoint(NamedTuple):
    value: float | None
    low: float | None
    high: float | None


def _finite(xs: Sequence[float | None]) -> list[float]:
    return [x for x in xs if x is not None and math.isfinite(x)]


def trend_svg(series: dict[str, Sequence[TrendPoint]], names: Sequence[str],
              width: int = 640, height: int = 180) -> str:
    """``series``: label -> one point per run (oldest first); ``names``: the runs' names."""
    ys = [y for pts in series.values() for p in pts for y in _finite([p.value, p.low, p.high])]
    if not ys or not names:
        return ""
    top, bottom = max(ys), min(0.0, min(ys))
    pad_l, pad_r, pad_t, pad_b = 56, 12, 10, 22
    n = len(names)

    def x(i: int) -> float:
        return pad_l + (i * (width - pad_l - pad_r) / (n - 1) if n > 1 else (width - pad_l - pad_r) / 2)

    def y(v: float) -> float:
        return height - pad_b - (v - bottom) * (height - pad_t - pad_b) / ((top - bottom) or 1.0)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="end-to-end p50 and p99 per run, '
           'with intervals, oldest on the left">',
           f'<line x1="{pad_l}" y1="{y(bottom):.1f}" x2="{width - pad_r}" y2="{y(bottom):.1f}" stroke="#999"/>',
           f'<text x="{pad_l - 4}" y="{y(top) + 4:.1f}" font-size="10" text-anchor="end">'
           f"{escape(format_duration(top))}</text>",
           f'<text x="{pad_l - 4}" y="{y(bottom):.1f}" font-size="10" text-anchor="end">'
           f"{escape(format_duration(bottom))}</text>",
           f'<text x="{pad_l}" y="{height - 6}" font-size="10">{escape(names[0])}</text>',
           f'<text x="{width - pad_r}" y="{height - 6}" font-size="10" text-anchor="end">{escape(names[-1])}</text>']
    for k, (label, pts) in enumerate(series.items()):
        colour = COLOURS.get(label, "#555")
        band = [(i, p) for i, p in enumerate(pts) if p.low is not None and p.high is not None
                and math.isfinite(p.high)]
        if band:
            upper = " ".join(f"{x(i):.1f},{y(p.high):.1f}" for i, p in band)  # type: ignore[arg-type]
            lower = " ".join(f"{x(i):.1f},{y(p.low):.1f}" for i, p in reversed(band))  # type: ignore[arg-type]
            out.append(f'<polygon class="interval {label}" points="{upper} {lower}" fill="{colour}" '
                       'fill-opacity="0.18" stroke="none"/>')
        line = [(i, p.value) for i, p in enumerate(pts) if p.value is not None]
        if line:
            pts_text = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in line)
            out.append(f'<polyline class="value {label}" fill="none" stroke="{colour}" stroke-width="1.5" '
                       f'points="{pts_text}"/>')
        for i, p in enumerate(pts):
            if p.value is not None:
                out.append(f'<circle cx="{x(i):.1f}" cy="{y(p.value):.1f}" r="2.5" fill="{colour}">'
                           f"<title>{escape(f'{names[i]} {label} {format_duration(p.value)}')}</title></circle>")
            elif p.low is not None:
                cx, cy = x(i), y(p.low)
                out.append(f'<path d="M{cx - 4:.1f},{cy + 3:.1f} L{cx + 4:.1f},{cy + 3:.1f} L{cx:.1f},{cy - 4:.1f} Z" '
                           f'fill="none" stroke="{colour}"><title>'
                           f"{escape(f'{names[i]} {label} >{format_duration(p.low)}')}</title></path>")
        out.append(f'<text x="{pad_l + 8 + 60 * k}" y="{pad_t + 8}" font-size="11" fill="{colour}">'
                   f"{escape(label)}</text>")
    out.append("</svg>")
    return "".join(out)
