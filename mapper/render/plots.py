"""Charts for the HTML report, each rendered by matplotlib to one inline ``<svg>`` string.

Pure functions: a distribution (or profile, attribution, event comparison) in, SVG text out;
no files, no network. What the caller can rely on:

* the SVG has no ``<?xml`` prolog or DOCTYPE, so it can be pasted into an HTML5 document;
* text stays text (``svg.fonttype: none``) and the output carries no date, so the same
  input renders the same bytes;
* titles and labels are passed to matplotlib with ``$`` escaped (no mathtext), and
  matplotlib XML-escapes text, so a stage name cannot inject markup.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mapper.analysis.merge import MergedSamples, bin_bounds
from mapper.core.distribution import (
    Distribution,
    HistogramDistribution,
    SampleDistribution,
    percentile_label,
)
from mapper.core.durations import format_duration
from mapper.core.escape import xml_chars

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mapper.analysis.attribution import TailAttribution
    from mapper.analysis.events import EventComparison
    from mapper.analysis.profiles import Profile

#: Figure size in inches (at 96 dpi in browsers): small, two fit side by side in print.
SIZE = (5.2, 2.6)
RC: Any = {  # Any: matplotlib types rc keys as Literals
    "svg.fonttype": "none",
    "svg.hashsalt": "latmap",  # stable element ids
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
MARK_COLOURS = ("#1b7837", "#b2182b", "#5e3c99", "#e08214")


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display), imported at the first chart, so a
    command that draws nothing never pays for matplotlib."""
    import matplotlib

    matplotlib.use("Agg")  # must precede pyplot
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    return plt


def _safe(text: str) -> str:
    """Text for matplotlib: ``$`` would start mathtext; a lone surrogate crashes the font code."""
    return xml_chars(text).replace("$", r"\$")


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    with _pyplot().rc_context(RC):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    _pyplot().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _figure(size: tuple[float, float] = SIZE) -> tuple[Figure, Any]:
    with _pyplot().rc_context(RC):
        fig, ax = _pyplot().subplots(figsize=size)
    return fig, ax


def _empty(title: str, why: str) -> str:
    fig, ax = _figure((SIZE[0], 0.9))
    ax.set_axis_off()
    ax.set_title(_safe(title), loc="left", fontsize=9)
    ax.text(0.0, 0.4, _safe(why), transform=ax.transAxes, color="#555555")
    return _svg(fig)


def _seconds_axis(ax: Any, axis: str = "x") -> None:
    fmt = _pyplot().matplotlib.ticker.FuncFormatter(lambda v, _pos: format_duration(v) if v > 0 else "")
    which = getattr(ax, f"{axis}axis")
    which.set_major_formatter(fmt)
    which.set_minor_formatter(_pyplot().matplotlib.ticker.NullFormatter())  # log minor labels clutter


def distribution_svg(dist: Distribution | None, qs: Sequence[float], title: str) -> str:
    """Latency distribution on a log time axis, with a vertical line at each percentile.

    Histograms: one bar per finite bucket, height = the bucket's share of observations (the
    +Inf bucket cannot be drawn on a time axis; its share is said in the legend). Samples: a
    histogram on 40 log-spaced bins. Other kinds (summaries, convolutions) only get the lines.
    """
    if dist is None or dist.count <= 0:
        return _empty(title, "no data in the window")
    fig, ax = _figure()
    with _pyplot().rc_context(RC):
        note = ""
        if isinstance(dist, HistogramDistribution):
            lo, hi, n = dist.lower, dist.upper, dist.counts
            finite = np.isfinite(hi) & (hi > 0)
            lo_f = np.where(lo[finite] > 0, lo[finite], hi[finite] / 2)
            share = n[finite] / dist.count
            ax.bar(lo_f, share, width=hi[finite] - lo_f, align="edge", color="#9ecae1",
                   edgecolor="#3182bd", linewidth=0.5)
            inf = float(n[~np.isfinite(hi)].sum())
            if inf > 0:
                note = f" (+Inf bucket: {inf / dist.count:.2%})"
        elif isinstance(dist, MergedSamples):  # its fine bins, regrouped as the samples' bars below
            lo, hi = bin_bounds(dist.bins)
            pos = lo > 0
            if pos.any():
                mids = np.sqrt(lo[pos] * hi[pos])
                edges = (np.geomspace(mids.min(), mids.max() * 1.0001, 41) if mids.max() > mids.min()
                         else np.array([mids.min() / 1.1, mids.min() * 1.1]))
                counts, _ = np.histogram(mids, bins=edges, weights=dist.counts[pos])
                ax.bar(edges[:-1], counts / dist.count, width=np.diff(edges), align="edge",
                       color="#9ecae1", edgecolor="#3182bd", linewidth=0.3)
        elif isinstance(dist, SampleDistribution):
            v = dist.values[dist.values > 0]
            if v.size:
                edges = np.geomspace(v.min(), v.max() * 1.0001, 41) if v.max() > v.min() else \
                    np.array([v.min() / 1.1, v.min() * 1.1])
                counts, _ = np.histogram(v, bins=edges)
                ax.bar(edges[:-1], counts / dist.count, width=np.diff(edges), align="edge",
                       color="#9ecae1", edgecolor="#3182bd", linewidth=0.3)
        ax.set_xscale("log")
        for i, q in enumerate(qs):
            e = dist.quantile(q)
            if e.value is None or not math.isfinite(e.value) or e.value <= 0:
                continue
            colour = MARK_COLOURS[i % len(MARK_COLOURS)]
            ax.axvline(e.value, color=colour, linewidth=1,
                       label=_safe(f"{percentile_label(q)} {format_duration(e.value)}"))
        _seconds_axis(ax)
        ax.set_ylabel("share of observations")
        ax.set_title(_safe(title + note), loc="left", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(frameon=False, fontsize=7)
    return _svg(fig)


def hourly_svg(profile: Profile, qs: Sequence[float], title: str) -> str:
    """Each percentile per UTC hour of day, with its interval as error bars (hours without
    a supportable number are left out)."""
    fig, ax = _figure()
    drawn = False
    with _pyplot().rc_context(RC):
        for i, q in enumerate(qs):
            rows = [(h, d.quantile(q)) for h, d in enumerate(profile.hours) if d.count > 0]
            pts = [(h, e) for h, e in rows if e.value is not None and e.value > 0]
            if not pts:
                continue
            x = np.array([h for h, _ in pts], dtype=float) + (i - (len(qs) - 1) / 2) * 0.15
            y = np.array([e.value for _, e in pts], dtype=float)
            low = np.array([e.low if e.low is not None and e.low > 0 else e.value for _, e in pts], dtype=float)
            high = np.array([e.high if e.high is not None and math.isfinite(e.high) else e.value
                             for _, e in pts], dtype=float)
            ax.errorbar(x, y, yerr=[np.maximum(y - low, 0), np.maximum(high - y, 0)], fmt="o-",
                        markersize=2.5, linewidth=0.8, capsize=1.5, color=MARK_COLOURS[i % len(MARK_COLOURS)],
                        label=percentile_label(q))
            drawn = True
        if not drawn:
            _pyplot().close(fig)
            return _empty(title, "no hour has enough data")
        ax.set_yscale("log")
        _seconds_axis(ax, "y")
        ax.set_xticks(range(0, 24, 3))
        ax.set_xlim(-0.5, 23.5)
        ax.set_xlabel("hour of day (UTC)")
        ax.set_title(_safe(title), loc="left", fontsize=9)
        ax.legend(frameon=False, fontsize=7)
    return _svg(fig)


def series_svg(starts: np.ndarray, dists: Sequence[Distribution], qs: Sequence[float], title: str) -> str:
    """Each percentile hour by hour over the window, with its interval as a band (hours
    without a supportable number are gaps)."""
    import datetime as dt

    fig, ax = _figure()
    drawn = False
    with _pyplot().rc_context(RC):
        x = [dt.datetime.fromtimestamp(float(t), dt.UTC) for t in starts]
        for i, q in enumerate(qs):
            est = [d.quantile(q) for d in dists]
            y = np.array([e.value if e.value is not None and e.value > 0 else np.nan for e in est], dtype=float)
            if not np.any(np.isfinite(y)):
                continue
            low = np.array([e.low if e.value is not None and e.low is not None and e.low > 0 else np.nan
                            for e in est], dtype=float)
            high = np.array([e.high if e.value is not None and e.high is not None and math.isfinite(e.high)
                             else np.nan for e in est], dtype=float)
            colour = MARK_COLOURS[i % len(MARK_COLOURS)]
            ax.fill_between(x, low, high, color=colour, alpha=0.15, linewidth=0)
            ax.plot(x, y, "-", linewidth=0.9, color=colour, label=percentile_label(q))
            drawn = True
        if not drawn:
            _pyplot().close(fig)
            return _empty(title, "no hour has enough data")
        ax.set_yscale("log")
        _seconds_axis(ax, "y")
        ax.set_xlabel("hour (UTC)")
        fig.autofmt_xdate()
        ax.set_title(_safe(title), loc="left", fontsize=9)
        ax.legend(frameon=False, fontsize=7)
    return _svg(fig)


def attribution_svg(attributions: Sequence[TailAttribution]) -> str:
    """Horizontal bars: each stage part's share of each tail's extra time."""
    atts = [a for a in attributions if a.contributions]
    if not atts:
        return _empty("tail attribution", "no attribution (no tail beyond the median)")
    keys: list[tuple[str, str]] = []
    for a in atts:
        for c in a.contributions:
            if (c.stage, c.part) not in keys:
                keys.append((c.stage, c.part))
    fig, ax = _figure((SIZE[0], 0.6 + 0.28 * len(keys) * max(1, len(atts)) ** 0.5))
    with _pyplot().rc_context(RC):
        height = 0.8 / len(atts)
        y = np.arange(len(keys), dtype=float)
        for i, a in enumerate(atts):
            share = {(c.stage, c.part): c.share for c in a.contributions}
            ax.barh(y + i * height, [share.get(k, 0.0) for k in keys], height=height,
                    color=MARK_COLOURS[i % len(MARK_COLOURS)],
                    label=_safe(f"{percentile_label(a.q)} ({a.method})"))
        ax.set_yticks(y + (len(atts) - 1) * height / 2, [_safe(f"{s} {p}") for s, p in keys])
        ax.invert_yaxis()
        ax.xaxis.set_major_formatter(_pyplot().matplotlib.ticker.PercentFormatter(1.0))
        ax.set_xlabel("share of the tail's extra time")
        ax.set_title("where the tail comes from", loc="left", fontsize=9)
        ax.legend(frameon=False, fontsize=7)
    return _svg(fig)


def events_svg(events: Sequence[EventComparison]) -> str:
    """Per event window: its p99 (each compared percentile) against the quiet baseline's,
    with intervals; a flagged difference is drawn in red."""
    rows = [(c, d) for c in events for d in c.differences]
    if not rows:
        return _empty("event windows", "no event window compared")
    fig, ax = _figure((SIZE[0], 0.8 + 0.35 * len(rows)))
    with _pyplot().rc_context(RC):
        labels = []
        for i, (c, d) in enumerate(rows):
            labels.append(_safe(f"{c.name}: {c.stage} {c.part} {percentile_label(d.q)}"))
            for off, est, colour, name in ((-0.15, d.quiet, "#777777", "quiet"),
                                           (0.15, d.event, "#b2182b" if d.flagged else "#2166ac", "event")):
                if est.value is None or est.value <= 0:
                    continue
                lo = est.low if est.low is not None and est.low > 0 else est.value
                hi = est.high if est.high is not None and math.isfinite(est.high) else est.value
                ax.errorbar([est.value], [i + off], xerr=[[est.value - lo], [hi - est.value]], fmt="o",
                            markersize=3, capsize=2, color=colour, label=name if i == 0 else None)
        ax.set_xscale("log")
        _seconds_axis(ax)
        ax.set_yticks(range(len(rows)), labels)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_title("event windows against quiet hours", loc="left", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(frameon=False, fontsize=7)
    return _svg(fig)
