"""Baselines and regressions: this run's numbers against a previous (or pinned) report.json.

A change counts only when the two intervals do not overlap: a regression when this run is
slower, an improvement when faster, each with its size. Differences inside the intervals are
noise and are not listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mapper.analysis.latency import PARTS, LatencyMap
from mapper.core.distribution import Distribution, percentile_label
from mapper.core.durations import format_duration
from mapper.core.errors import UsageError
from mapper.core.files import BoundedReadError, loads_json, read_bounded
from mapper.core.model import Check

SCHEMA_VERSION = 1
#: A baseline larger than this is not a report.json (a day's report with examples is well under 10 MiB).
MAX_REPORT_BYTES = 256 << 20


@dataclass(frozen=True)
class Change:
    """One number that moved beyond its interval."""

    what: str  # "alerting wait", "end to end"
    percentile: str
    before: float
    after: float
    kind: str  # "regression" | "improvement"

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before > 0 else float("inf")

    def message(self) -> str:
        return (f"{self.what} {self.percentile}: {format_duration(self.before)} -> {format_duration(self.after)} "
                f"({self.ratio:.2f}x, {self.kind})")


@dataclass(frozen=True)
class Comparison:
    baseline: str
    generated_at: str | None
    changes: tuple[Change, ...]

    @property
    def regressions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind == "regression")

    @property
    def improvements(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind == "improvement")


def load_baseline(path: str | Path, stream: str) -> dict[str, Any]:
    """A previous report.json, checked to be of this stream and this schema."""
    p = Path(path)
    try:
        doc = loads_json(read_bounded(p, MAX_REPORT_BYTES, "baseline report.json").decode("utf-8"), str(p))
    except FileNotFoundError:
        raise UsageError(f"{p}: baseline not found") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"{p}:{err.lineno}: baseline is not JSON: {err.msg}") from err
    except BoundedReadError as err:
        raise UsageError(str(err)) from err
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UsageError(f"{p}: cannot read the baseline: {err}") from err
    if not isinstance(doc, dict) or "stream" not in doc:
        raise UsageError(f"{p}: not a latmap report.json (no 'stream')")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise UsageError(f"{p}: report schema {doc.get('schema_version')!r}, this latmap compares with "
                         f"schema {SCHEMA_VERSION}; regenerate the baseline")
    if doc["stream"] != stream:
        raise UsageError(f"{p}: a baseline of stream {doc['stream']!r}, not {stream!r}")
    return doc


def _compare_one(what: str, d: Distribution | None, old: dict[str, Any] | None,
                 qs: tuple[float, ...]) -> list[Change]:
    if d is None or not old:
        return []
    out = []
    for q in qs:
        key = percentile_label(q)
        before = old.get(key) or {}
        now = d.quantile(q)
        if before.get("value") is None or now.value is None:
            continue
        b_lo, b_hi = before.get("low"), before.get("high")
        a_lo, a_hi = now.low, now.high
        if None in (b_lo, b_hi, a_lo, a_hi):
            continue
        if a_lo > b_hi:  # type: ignore[operator]
            out.append(Change(what, key, before["value"], now.value, "regression"))
        elif a_hi < b_lo:  # type: ignore[operator]
            out.append(Change(what, key, before["value"], now.value, "improvement"))
    return out


def compare(lm: LatencyMap, baseline: dict[str, Any], path: str) -> Comparison:
    """Every stage part and the end to end against the baseline's, per asked percentile."""
    old_stages = {s.get("name"): s for s in baseline.get("stages", []) if isinstance(s, dict)}
    changes: list[Change] = []
    for s in lm.stages:
        old = old_stages.get(s.stage.name) or {}
        for p in PARTS:
            r = s.part(p)
            changes += _compare_one(f"{s.stage.name} {p}", r.distribution if r else None, old.get(p),
                                    lm.spec.percentiles)
    changes += _compare_one("end to end", lm.end_to_end, baseline.get("end_to_end"), lm.spec.percentiles)
    changes.sort(key=lambda c: (c.kind != "regression", -abs(c.ratio - 1)))
    return Comparison(path, baseline.get("generated_at"), tuple(changes))


def checks(c: Comparison) -> list[Check]:
    return [Check("warning" if ch.kind == "regression" else "info", ch.kind,
                  f"{ch.message()} vs baseline {c.baseline}",
                  None if ch.what == "end to end" else ch.what.split(" ")[0],
                  None if ch.what == "end to end" else ch.what.split(" ")[1])
            for ch in c.changes]


