"""Why the tail is slow, from metrics: one stage's histogram split by each of its labels.

Pure functions over bucket counts; no I/O (:mod:`collectors.prom_slices` reads them). For each
label of the histogram (``pod``, ``instance``, ``route``, ``region`` ...), per value (a
*slice*): the percentile of the slice's observations over the window, with its interval, set
against the same percentile of *the rest* (every other slice's observations added). Counts
are added, percentiles never averaged.

When a slice is named:

* only when its interval's lower bound clears the rest's upper bound (for bucket bounds
  ``(low, high]``, touching counts as clear); otherwise the label's verdict says its slices
  are indistinguishable at that percentile;
* the intervals hold the *population* percentile (:func:`mapper.analysis.events.interval`:
  the bucket bounds around every rank of the order-statistic interval), and a label of ``k``
  slices is ``k`` comparisons at once, so each is at ``1 - 5%/k`` (Bonferroni): naming a slice
  by chance alone stays under 5% per label.

Labels with one value say nothing and labels with more than :data:`MAX_VALUES` values (user
or request ids) would make thousands of rows: both are left out, and said so (``skipped``).

``--versus``: the same slices over an earlier window (the same hours a week before): a slice
whose interval now lies wholly above its interval then got slower; values that appeared or
went away are listed.

The JSON shape (:meth:`SlicesExplanation.to_json`) is documented in docs/explain-slices.md
and in report.schema.json's ``$defs/slices_explanation``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mapper.analysis.events import disjoint, format_interval, interval, unusable
from mapper.core.distribution import CONFIDENCE, Estimate, HistogramDistribution, percentile_label
from mapper.core.model import Check, Window

#: A label with more distinct values than this in the window is not sliced (ids, not slices).
MAX_VALUES = 30
#: Labels that are no slice of a histogram: its bucket bound and the metric's name.
NOT_SLICES = frozenset({"le", "__name__"})


def family_confidence(k: int) -> float:
    """Each interval's confidence when ``k`` slices are compared at once (Bonferroni)."""
    return 1 - (1 - CONFIDENCE) / max(k, 1)


def add_histograms(ds: Sequence[HistogramDistribution]) -> HistogramDistribution | None:
    """The histogram of every observation of ``ds`` together (None when ``ds`` is empty).

    Slices may have different bucket layouts (a deploy changed the bounds on some pods; a
    native histogram's sparse buckets). A cumulative count at a bound is known exactly when
    no populated bucket of any slice strictly straddles it, so the sum is taken on the bounds
    every slice knows: coarser where the layouts disagree, never wrong. Sums add when every
    slice has one.
    """
    if not ds:
        return None
    parts = [(d.lower[d.counts > 0], d.upper[d.counts > 0], d.counts[d.counts > 0]) for d in ds]
    points = np.unique(np.concatenate([np.concatenate([lo, up]) for lo, up, _ in parts] + [np.zeros(1)]))
    keep = np.ones(points.size, dtype=bool)
    for lo, up, _ in parts:  # buckets of one histogram are ascending and do not overlap
        at = np.minimum(np.searchsorted(up, points, side="left"), max(up.size - 1, 0))
        if up.size:
            keep &= ~((lo[at] < points) & (points < up[at]))
    grid = points[keep]
    if grid.size < 2:
        return None
    cum = np.zeros(grid.size)
    for _, up, c in parts:  # observations at or below each grid point
        cum += np.concatenate([[0.0], np.cumsum(c)])[np.searchsorted(up, grid, side="right")]
    counts = np.diff(cum)
    sums = [d.sum for d in ds]
    total = float(sum(s for s in sums if s is not None)) if all(s is not None for s in sums) else None
    return HistogramDistribution(grid[:-1], grid[1:], counts, sum=total)


@dataclass(frozen=True)
class Slice:
    """One value of a label: its percentile against the rest's, both at the family's confidence.

    ``separation``: the slice's lower bound over the rest's upper bound, how far the slice's
    interval sits above the rest's (>= 1: clear of it); None when a bound is missing.
    """

    value: str
    estimate: Estimate
    rest: Estimate
    stands_out: bool
    separation: float | None

    @property
    def count(self) -> float:
        return self.estimate.count


@dataclass(frozen=True)
class LabelSplit:
    """One label's slices, ranked by how far each sits above the rest (named ones first)."""

    label: str
    slices: tuple[Slice, ...]
    confidence: float
    verdict: str

    @property
    def named(self) -> tuple[str, ...]:
        return tuple(s.value for s in self.slices if s.stands_out)


@dataclass(frozen=True)
class Skipped:
    """A label not sliced: ``values`` distinct values in the window, and why."""

    label: str
    values: int
    reason: str


@dataclass(frozen=True)
class SliceChange:
    """One slice now and over the earlier window; ``slower``: now wholly above then."""

    value: str
    now: Estimate
    before: Estimate
    slower: bool


@dataclass(frozen=True)
class LabelChanges:
    label: str
    changes: tuple[SliceChange, ...]
    new: tuple[str, ...]
    gone: tuple[str, ...]
    verdict: str

    @property
    def slower(self) -> tuple[str, ...]:
        return tuple(c.value for c in self.changes if c.slower)


@dataclass(frozen=True)
class Versus:
    """The slices against the same slices over ``window`` (an earlier window)."""

    window: Window
    labels: tuple[LabelChanges, ...]
    verdict: str


@dataclass(frozen=True)
class SlicesExplanation:
    """``explain`` from metrics for one (stage, part) at one percentile."""

    kind: ClassVar[str] = "slices"
    stage: str
    part: str
    q: float
    labels: tuple[LabelSplit, ...]
    skipped: tuple[Skipped, ...]
    verdict: str
    checks: tuple[Check, ...] = ()
    versus: Versus | None = None

    @property
    def named(self) -> tuple[tuple[str, str], ...]:
        """Every ``(label, value)`` that stands out, label by label."""
        return tuple((ls.label, v) for ls in self.labels for v in ls.named)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "stage": self.stage, "part": self.part, "percentile": percentile_label(self.q),
            "labels": [_split_json(ls) for ls in self.labels],
            "skipped": [{"label": s.label, "values": s.values, "reason": s.reason} for s in self.skipped],
            "versus": _versus_json(self.versus) if self.versus is not None else None,
            "verdict": self.verdict,
            "checks": [{"level": c.level, "code": c.code, "message": c.message, "stage": c.stage, "part": c.part}
                       for c in self.checks],
        }


def _num(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def estimate_json(e: Estimate) -> dict[str, Any]:
    """``{value, low, high, note}`` as report.schema.json's ``$defs/estimate``."""
    note = e.note if e.note or e.value is not None else "no value"
    return {"value": _num(e.value), "low": _num(e.low), "high": _num(e.high), "note": note}


def _split_json(ls: LabelSplit) -> dict[str, Any]:
    return {"label": ls.label, "confidence": ls.confidence, "named": list(ls.named), "verdict": ls.verdict,
            "slices": [{"value": s.value, "estimate": estimate_json(s.estimate), "count": s.count,
                        "rest": estimate_json(s.rest), "rest_count": s.rest.count,
                        "stands_out": s.stands_out, "separation": _num(s.separation)} for s in ls.slices]}


def _versus_json(v: Versus) -> dict[str, Any]:
    return {"start": v.window.start, "end": v.window.end, "verdict": v.verdict,
            "labels": [{"label": lc.label, "slower": list(lc.slower), "new": list(lc.new), "gone": list(lc.gone),
                        "verdict": lc.verdict,
                        "changes": [{"value": c.value, "now": estimate_json(c.now), "count_now": c.now.count,
                                     "before": estimate_json(c.before), "count_before": c.before.count,
                                     "slower": c.slower} for c in lc.changes]}
                       for lc in v.labels]}


def choose_labels(values: Mapping[str, int], max_values: int = MAX_VALUES) -> tuple[list[str], list[Skipped]]:
    """Which labels to slice by, from each label's number of distinct values in the window;
    the others with the reason they are left out."""
    keep: list[str] = []
    skipped: list[Skipped] = []
    for label, n in sorted(values.items()):
        if label in NOT_SLICES:
            continue
        if n <= 1:
            skipped.append(Skipped(label, n, "one value in the window: nothing to compare"))
        elif n > max_values:
            skipped.append(Skipped(label, n, f"{n} values, more than {max_values}: an id, not a slice "
                                             "(raise the limit to slice by it)"))
        else:
            keep.append(label)
    return keep, skipped


def _separation(a: Estimate, b: Estimate) -> float | None:
    if a.low is None or b.high is None:
        return None
    if b.high <= 0:
        return math.inf if a.low > 0 else None
    return a.low / b.high


def split_label(label: str, slices: Mapping[str, HistogramDistribution], q: float) -> LabelSplit:
    """``label``'s slices at ``q``, each against the rest, ranked (see the module's docstring)."""
    values = sorted(v for v, d in slices.items() if d.count > 0)
    conf = family_confidence(len(values))
    out = []
    for v in values:
        rest_d = add_histograms([slices[o] for o in values if o != v])
        est = interval(slices[v], q, conf)
        rest = interval(rest_d, q, conf) if rest_d is not None else Estimate(q, None, None, None, 0.0, "no rest")
        usable = not (unusable(est) or unusable(rest))
        out.append(Slice(v, est, rest, usable and disjoint(est, rest, True), _separation(est, rest)))
    out.sort(key=lambda s: (not s.stands_out, -(s.separation if s.separation is not None else -1.0),
                            -(s.estimate.value or 0.0), s.value))
    return LabelSplit(label, tuple(out), conf, _label_verdict(label, out, q))


def _label_verdict(label: str, slices: Sequence[Slice], q: float) -> str:
    p = percentile_label(q)
    if len(slices) < 2:
        return f"{label}: fewer than two slices with observations; nothing to compare"
    named = [s for s in slices if s.stands_out]
    if not named:
        top = slices[0]
        return (f"{label}: no slice stands out at {p}; the slices are indistinguishable (the highest, "
                f"{label}={top.value} {format_interval(top.estimate)}, overlaps the rest's "
                f"{format_interval(top.rest)})")
    parts = []
    for s in named:
        times = f", at least {s.separation:.3g}x" if s.separation is not None and math.isfinite(s.separation) else ""
        parts.append(f"{label}={s.value} {p} {format_interval(s.estimate)} over {s.count:,.0f} observations vs "
                     f"the rest's {format_interval(s.rest)}{times}")
    return "; ".join(parts)


def explain_slices(stage: str, part: str, q: float,
                   per_label: Mapping[str, Mapping[str, HistogramDistribution]],
                   skipped: Sequence[Skipped] = (), checks: Sequence[Check] = (),
                   versus: Versus | None = None) -> SlicesExplanation:
    """The slices explanation from each sliced label's per-value histograms."""
    labels = tuple(split_label(label, per_label[label], q) for label in sorted(per_label))
    named = [f"{ls.label}={v}" for ls in labels for v in ls.named]
    p = percentile_label(q)
    if named:
        verdict = f"{stage} {part} {p}: slower than the rest in " + ", ".join(named)
    elif labels:
        verdict = (f"{stage} {part} {p}: no slice of {', '.join(ls.label for ls in labels)} stands out; "
                   "the tail is spread across them (or the buckets are too coarse to tell)")
    else:
        verdict = f"{stage} {part} {p}: no label to slice by"
    if versus is not None and versus.verdict:
        verdict += f"; {versus.verdict}"
    return SlicesExplanation(stage, part, q, labels, tuple(skipped), verdict, tuple(checks), versus)


def compare_windows(now: Mapping[str, Mapping[str, HistogramDistribution]],
                    before: Mapping[str, Mapping[str, HistogramDistribution]],
                    q: float, window: Window) -> Versus:
    """Each slice now against itself over ``window`` (earlier): slower when the intervals do
    not overlap (now above then), at the family's confidence over the slices compared."""
    out = []
    for label in sorted(now):
        a = {v: d for v, d in now[label].items() if d.count > 0}
        b = {v: d for v, d in before.get(label, {}).items() if d.count > 0}
        both = sorted(set(a) & set(b))
        conf = family_confidence(len(both))
        changes = []
        for v in both:
            e_now, e_then = interval(a[v], q, conf), interval(b[v], q, conf)
            got_slower = not (unusable(e_now) or unusable(e_then)) and disjoint(e_now, e_then, True)
            changes.append(SliceChange(v, e_now, e_then, got_slower))
        changes.sort(key=lambda c: (not c.slower, -(c.now.value or 0.0), c.value))
        new, gone = tuple(sorted(set(a) - set(b))), tuple(sorted(set(b) - set(a)))
        out.append(LabelChanges(label, tuple(changes), new, gone, _change_verdict(label, changes, new, gone, q)))
    slower = [f"{lc.label}={v}" for lc in out for v in lc.slower]
    appeared = [f"{lc.label}={v}" for lc in out for v in lc.new]
    said = []
    if slower:
        said.append("slower than in the earlier window: " + ", ".join(slower))
    if appeared:
        said.append("new since the earlier window: " + ", ".join(appeared))
    return Versus(window, tuple(out), "; ".join(said) or "no slice got slower than in the earlier window")


def _change_verdict(label: str, changes: Sequence[SliceChange], new: Sequence[str], gone: Sequence[str],
                    q: float) -> str:
    p = percentile_label(q)
    said = [f"{label}={c.value} {p} {format_interval(c.now)} vs {format_interval(c.before)} before"
            for c in changes if c.slower]
    if new:
        said.append(f"new: {', '.join(new)}")
    if gone:
        said.append(f"gone: {', '.join(gone)}")
    return "; ".join(said) or f"{label}: no slice got slower at {p}"
