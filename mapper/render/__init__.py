"""Renderers: the latency map and its findings as report.json, Markdown, a terminal table,
self-contained HTML with inline charts, the value stream map as SVG, Mermaid and DOT.

Renderers only format what :mod:`mapper.analysis` returns; none queries a source. Shared
cells (one percentile as JSON or text) live in ``cells``; the analysis sections in ``sections``.
"""

from typing import TYPE_CHECKING

from mapper.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from mapper.render import (
        buckets,
        budgets,
        cells,
        examples,
        explain,
        flow,
        graph,
        html,
        plots,
        queueing,
        report,
        sections,
        trend_svg,
        verdict,
        vsm_icons,
        vsm_svg,
        vsm_text,
    )

__all__ = ["buckets", "budgets", "cells", "examples", "explain", "flow", "graph", "html", "plots", "queueing",
           "report", "sections", "trend_svg", "verdict", "vsm_icons", "vsm_svg", "vsm_text"]

__getattr__ = lazy_getattr(__name__, __all__)
