"""Issue 14's small items on the written reports: no HTML entities in report.md, whole
counts as JSON integers, files readable by others (a web server serving the history)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from mapper.analysis.findings import find
from mapper.app.pipeline import write_reports
from tests.app.test_history import _map


def test_reports_are_readable_with_integer_counts_and_no_entities(tmp_path: Path) -> None:
    lm = _map(objective="1ms")  # broken: the markdown says "<=" and the checks have ">" in them
    old = os.umask(0o022)
    try:
        paths = write_reports(lm, tmp_path / "out", find(lm))
    finally:
        os.umask(old)
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    md = (tmp_path / "out" / "report.md").read_text()
    assert "&gt;" not in md and "&lt;" not in md and "&amp;" not in md
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    a = next(s for s in doc["stages"] if s["name"] == "a")
    assert a["process"]["count"] == 20000 and isinstance(a["process"]["count"], int)
    assert isinstance(doc["end_to_end"]["count"], int | float)


def test_markdown_still_cannot_carry_html() -> None:
    from mapper.render.report import _md_escape

    assert _md_escape("<script>x</script> | p99 <= 2s, >2.58s") == "\\<script>x\\</script> \\| p99 <= 2s, >2.58s"
