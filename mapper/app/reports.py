"""Render: the files a map is written as, each atomically."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mapper.analysis.latency import LatencyMap
from mapper.core.files import REPORT_FILES, dumps, write_atomic
from mapper.render.html import to_html
from mapper.render.report import to_json, to_markdown
from mapper.render.vsm_svg import to_svg

if TYPE_CHECKING:
    from mapper.analysis.findings import Findings


def write_reports(lm: LatencyMap, out: str | Path, findings: Findings | None = None) -> list[Path]:
    """Write ``report.json``, ``report.md``, ``report.html`` and the value stream map
    ``map.svg`` into ``out`` (each atomically); return the paths."""

    d = Path(out)
    texts = (dumps(to_json(lm, findings)), to_markdown(lm, findings), to_html(lm, findings), to_svg(lm))
    return [write_atomic(d / name, text) for name, text in zip(REPORT_FILES, texts, strict=True)]
