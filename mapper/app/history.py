"""Nightly history: one dated run directory per ``latmap report --history DIR``.

Layout under ``DIR/<stream>/``::

    2026-11-25/      report.json, report.md, report.html, map.svg
    2026-11-25.2/    a second run the same day (never overwrites the first)
    latest           symlink to the newest run (a one-line file naming it where symlinks fail)
    index.html       the runs, newest first, with the end-to-end p99 trend

A run directory appears whole or not at all: it is written into a temp directory in the same
folder and renamed. The run is compared with the previous run (the newest existing run's
report.json) and with the pinned baseline (whatever ``findings_fn`` compared with); the record names every
regression and whether an objective is broken, and the CLI makes either exit 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mapper.analysis import baseline as base
from mapper.analysis.latency import LatencyMap
from mapper.app.pipeline import write_reports
from mapper.core.durations import format_duration
from mapper.core.errors import LatmapError, OutputError, UsageError
from mapper.core.escape import html_text as escape
from mapper.core.files import loads_json, read_bounded, write_atomic
from mapper.render.sections import comparison_json
from mapper.render.trend_svg import TrendPoint, trend_svg

if TYPE_CHECKING:
    from mapper.analysis.findings import Findings

log = logging.getLogger(__name__)

LATEST = "latest"
INDEX = "index.html"
TREND_PERCENTILE = "p99"
_RUN = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.(\d+))?$")


class Run(NamedTuple):
    """An existing run directory; ``seq`` is 1 for ``<date>``, n for ``<date>.n``."""

    day: date
    seq: int
    path: Path


class RunRecord(NamedTuple):
    """What :func:`record_run` did. ``previous`` is the run compared with (None: first run);
    ``regressions`` are vs the previous run first, then vs the pinned baseline."""

    path: Path
    previous: Path | None
    regressions: tuple[base.Change, ...]
    #: An objective of the stream is broken in this run.
    broken: bool


def stream_dir(history_dir: str | Path, stream: str) -> Path:
    """``DIR/<stream>``; refuses a stream name that would escape ``DIR``."""
    if not stream or stream in (".", "..") or "/" in stream or "\\" in stream or "\0" in stream:
        raise UsageError(f"--history: stream name {stream!r} cannot be a directory name")
    return Path(history_dir) / stream


def runs(folder: Path) -> list[Run]:
    """The run directories in ``folder`` (the ones holding a report.json), oldest first."""
    out: list[Run] = []
    if not folder.is_dir():
        return out
    for p in folder.iterdir():
        m = _RUN.match(p.name)
        if not m or p.is_symlink() or not (p / "report.json").is_file():
            continue
        try:
            day = date.fromisoformat(m.group(1))
        except ValueError:
            continue
        out.append(Run(day, int(m.group(2) or 1), p))
    return sorted(out)


def _run_name(day: date, seq: int) -> str:
    return day.isoformat() if seq == 1 else f"{day.isoformat()}.{seq}"


def _publish(tmp: Path, folder: Path, day: date, existing: Sequence[Run]) -> Path:
    """Rename ``tmp`` to the first free ``<day>[.n]``; a concurrent run that took the name
    first makes the rename fail (a non-empty target), and the next number is tried."""
    seq = max((r.seq for r in existing if r.day == day), default=0) + 1
    for _ in range(1000):
        target = folder / _run_name(day, seq)
        if not target.exists():
            try:
                os.rename(tmp, target)
                return target
            except OSError:
                if not target.exists():
                    raise
        seq += 1
    raise LatmapError(f"{folder}: no free run directory name for {day.isoformat()}")


def _point_latest(folder: Path, name: str) -> None:
    """Make ``latest`` name ``name`` atomically: a temp symlink replaces it, or, where
    symlinks are refused, a one-line file written the same way."""
    link = folder / LATEST
    tmp = folder / f".{LATEST}.{os.getpid()}.tmp"
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(name, tmp, target_is_directory=True)
        os.replace(tmp, link)
    except (OSError, NotImplementedError):
        with contextlib.suppress(OSError):
            tmp.unlink()
        if link.is_dir() and not link.is_symlink():
            raise LatmapError(f"{link}: a directory is in the way of the 'latest' pointer") from None
        write_atomic(link, name + "\n")


def _prune(folder: Path, today: date, keep_days: int, keep: Path) -> list[Path]:
    """Remove the runs older than ``keep_days`` days (today counts as one); never ``keep``."""
    if keep_days <= 0:
        return []
    oldest = today - timedelta(days=keep_days - 1)
    removed = []
    for r in runs(folder):
        if r.day < oldest and r.path != keep:
            # Renamed out of the way first, so a reader never sees a half-deleted run.
            trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=folder))
            os.rename(r.path, trash / r.path.name)
            shutil.rmtree(trash, ignore_errors=True)
            removed.append(r.path)
    return removed


def _compare_previous(lm: LatencyMap, previous: Run | None) -> base.Comparison | None:
    if previous is None:
        return None
    path = previous.path / "report.json"
    try:
        return base.compare(lm, base.load_baseline(path, lm.spec.name), str(path))
    except UsageError as err:
        # A previous run of an older schema must not stop tonight's run; it is reported.
        log.warning("not comparing with the previous run: %s", err)
        return None


def _with_history(findings: Findings, previous: base.Comparison | None,
                  regressions: Sequence[base.Change], broken: bool) -> Findings:
    """The findings plus a ``history`` section and lines, regressions listed first."""
    lines = [f"REGRESSION {c.message()}" for c in regressions]
    if previous is not None:
        lines.append(f"vs previous run {previous.baseline}: {len(previous.regressions)} regression(s), "
                     f"{len(previous.improvements)} improvement(s) beyond the intervals")
        lines += [f"  {c.message()}" for c in previous.improvements]
    section = {"previous": comparison_json(previous) if previous else None,
               "regressions": [c.message() for c in regressions], "objective_broken": broken}
    return dataclasses.replace(findings, sections={**findings.sections, "history": section},
                               lines=(*lines, *findings.lines))


def record_run(lm: LatencyMap, findings_fn: Callable[[LatencyMap], Findings], history_dir: str | Path,
               keep_days: int = 30, now: datetime | None = None) -> RunRecord:
    """Write this run into ``history_dir/<stream>/<date>[.n]``, point ``latest`` at it,
    prune runs older than ``keep_days`` (0: keep all), rewrite ``index.html``.

    ``findings_fn`` makes the findings (and their comparison with the pinned baseline, e.g.
    ``lambda lm: find(lm, baseline)``); the comparison with the previous run is added here.
    ``now`` (default: the current time) dates the run, in UTC.
    """
    when = (now or datetime.now(UTC)).astimezone(UTC)
    folder = stream_dir(history_dir, lm.spec.name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as err:
        raise OutputError(f"{folder}: cannot write the history: {err.strerror or err}; "
                          "earlier runs are untouched") from None
    existing = runs(folder)
    previous = existing[-1] if existing else None
    findings = findings_fn(lm)
    vs_previous = _compare_previous(lm, previous)
    regressions = (*(vs_previous.regressions if vs_previous else ()),
                   *(findings.comparison.regressions if findings.comparison else ()))
    findings = _with_history(findings, vs_previous, regressions, lm.broken)

    tmp = Path(tempfile.mkdtemp(prefix=".tmp-run-", dir=folder))
    try:
        write_reports(lm, tmp, findings)  # report.json, report.md, report.html, map.svg
        tmp.chmod(0o755)  # mkdtemp makes it 0700; a run directory is for everyone to read
        path = _publish(tmp, folder, when.date(), existing)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _point_latest(folder, path.name)
    _prune(folder, when.date(), keep_days, path)
    write_atomic(folder / INDEX, to_index_html(lm.spec.name, index_rows(folder)))
    return RunRecord(path, previous.path if previous else None, tuple(regressions), lm.broken)


class IndexRow(NamedTuple):
    """One run in the index; ``p99`` etc. are seconds, None when the report has none."""

    name: str
    generated_at: str
    p99: float | None
    low: float | None
    high: float | None
    broken: bool
    regressions: int
    p50: float | None = None
    p50_low: float | None = None
    p50_high: float | None = None


def index_rows(folder: Path) -> list[IndexRow]:
    """Every run's summary, read from its report.json, newest first."""
    rows = []
    for r in reversed(runs(folder)):
        try:
            raw = read_bounded(r.path / "report.json", base.MAX_REPORT_BYTES, "report.json")
            doc: dict[str, Any] = loads_json(raw.decode("utf-8"), str(r.path / "report.json"))
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as err:
            log.warning("%s: left out of the index: %s", r.path, err)
            continue
        e2e = (doc.get("end_to_end") or {}).get(TREND_PERCENTILE) or {}
        med = (doc.get("end_to_end") or {}).get("p50") or {}
        hist = doc.get("history") or {}
        rows.append(IndexRow(r.path.name, str(doc.get("generated_at") or ""), e2e.get("value"),
                             e2e.get("low"), e2e.get("high"),
                             any(o.get("status") == "broken" for o in doc.get("objectives") or []),
                             len(hist.get("regressions") or []), med.get("value"), med.get("low"), med.get("high")))
    return rows


def _seconds(x: float | None) -> str:

    return "–" if x is None else format_duration(x)


def _value(value: float | None, low: float | None) -> str:
    """The value, ``>low`` when only a lower bound is known (the +Inf bucket), else ``–``."""
    if value is None and low is not None:
        return ">" + _seconds(low)
    return _seconds(value)


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return ""
    return f"{_seconds(low) if low is not None else '-∞'} – {_seconds(high) if high is not None else '∞'}"


def sparkline(values: Sequence[float | None], width: int = 240, height: int = 40) -> str:
    """An inline SVG polyline of ``values`` (oldest first); None values are skipped."""
    pts = [(i, v) for i, v in enumerate(values) if v is not None]
    if not pts:
        return ""
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    span_x = max(len(values) - 1, 1)
    span_y = (hi - lo) or 1.0
    xy = " ".join(f"{2 + i * (width - 4) / span_x:.1f},{height - 2 - (v - lo) * (height - 4) / span_y:.1f}"
                  for i, v in pts)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="end-to-end {TREND_PERCENTILE} trend">'
            f'<polyline fill="none" stroke="#2166ac" stroke-width="1.5" points="{xy}"/></svg>')


def to_index_html(stream: str, rows: Sequence[IndexRow]) -> str:
    """The self-contained index page (inline CSS and SVG, no script); every text escaped."""
    body = []
    for r in rows:
        status = "objective broken" if r.broken else "ok"
        if r.regressions:
            status += f", {r.regressions} regression(s)"
        link = escape(r.name + "/", quote=True)
        body.append(f'<tr class="{"bad" if r.broken or r.regressions else "ok"}">'
                    f'<td><a href="{link}">{escape(r.name)}</a></td><td>{escape(r.generated_at)}</td>'
                    f"<td>{escape(_value(r.p50, r.p50_low))}</td>"
                    f"<td>{escape(_interval(r.p50, r.p50_low, r.p50_high))}</td>"
                    f"<td>{escape(_value(r.p99, r.low))}</td><td>{escape(_interval(r.p99, r.low, r.high))}</td>"
                    f"<td>{escape(status)}</td></tr>")

    old = list(reversed(rows))
    trend = trend_svg({"p50": [TrendPoint(r.p50, r.p50_low, r.p50_high) for r in old],
                       TREND_PERCENTILE: [TrendPoint(r.p99, r.low, r.high) for r in old]},
                      [r.name for r in old])
    title = escape(f"latmap history: {stream}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>"
            "body{font:14px/1.4 system-ui,sans-serif;margin:1em auto;max-width:900px}"
            "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 8px}"
            "tr.bad td{color:#b2182b}</style></head><body>"
            f"<h1>{title}</h1><p>end-to-end p50 and {TREND_PERCENTILE} per run with their intervals "
            f"(shaded), oldest on the left, newest on the right:</p>{trend}"
            "<p>runs, newest first:</p>"
            "<table><thead><tr><th>run</th><th>generated</th><th>end-to-end p50</th><th>interval</th>"
            f"<th>end-to-end {TREND_PERCENTILE}</th>"
            "<th>interval</th><th>status</th></tr></thead><tbody>" + "".join(body) +
            "</tbody></table></body></html>\n")
