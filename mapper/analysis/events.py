"""Event windows against a quiet baseline: one percentile during the event and out of it,
told apart only when their intervals say so.

Pure functions; no I/O. What the caller can rely on:

* an event is compared with a *quiet baseline*: the same clock hours on the other days of
  the window, minus the event's own occurrences. When no other day has those hours (a
  window under two days, or an event recurring every day), the baseline is the hour before
  and the hour after each occurrence instead, and the comparison's ``basis`` says so.
* a difference is flagged only when the two intervals do not overlap (for histograms the
  intervals are bucket bounds, so a flag needs a whole bucket between them; see
  :func:`interval`).
* metrics come in whole hours: an occurrence takes every hour it overlaps, which dilutes an
  event shorter than its hours (the comparison's ``note`` names them). Traces are exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from mapper.analysis.merge import MergedSamples
from mapper.analysis.profiles import DAY, HourlyCounts
from mapper.core.distribution import (
    CONFIDENCE,
    Distribution,
    Estimate,
    HistogramDistribution,
    SampleDistribution,
    percentile_label,
)
from mapper.core.durations import format_duration, format_time
from mapper.core.model import HOUR, HourBuckets, Window
from mapper.core.spec.extra import EventWindow, occurrences

#: ``EventComparison.basis`` values.
SAME_HOURS, NEIGHBOURS, NO_BASELINE = "same hours on other days", "hour before and after", "none"


def overlaps(a: np.ndarray, b: np.ndarray, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    """Units ``[a, b)`` overlapping any ``[s, e)`` of ``spans``."""
    out = np.zeros(a.shape, dtype=bool)
    for s, e in spans:
        out |= (a < e) & (b > s)
    return out


def same_clock(a: np.ndarray, b: np.ndarray, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    """Units ``[a, b)`` overlapping a copy of any span shifted by a whole number of days."""
    out = np.zeros(a.shape, dtype=bool)
    for s, e in spans:
        k = np.floor((a - e) / DAY) + 1  # the first shift with a < e + k days
        out |= s + k * DAY < b
    return out


def quiet_baseline(a: np.ndarray, b: np.ndarray, occs: Sequence[tuple[float, float]],
              has_data: Callable[[np.ndarray], bool]) -> tuple[np.ndarray, np.ndarray, str]:
    """Masks of the event's units and its quiet baseline, and the baseline's basis."""
    event = overlaps(a, b, occs)
    quiet = same_clock(a, b, occs) & ~event
    if has_data(quiet):
        return event, quiet, SAME_HOURS
    around = [w for s, e in occs for w in ((s - HOUR, s), (e, e + HOUR))]
    quiet = overlaps(a, b, around) & ~event
    return event, quiet, NEIGHBOURS if has_data(quiet) else NO_BASELINE


@dataclass(frozen=True)
class Difference:
    """One percentile during an event against its quiet baseline.

    ``ratio`` is event / quiet (from the values; from the facing bounds when a value is
    missing), ``difference`` event minus quiet in seconds; either is ``None`` when unknown.
    """

    q: float
    event: Estimate
    quiet: Estimate
    flagged: bool
    ratio: float | None
    difference: float | None
    message: str

    @property
    def label(self) -> str:
        return percentile_label(self.q)


@dataclass(frozen=True)
class EventComparison:
    """An event's latency for one (stage, part) against its quiet baseline."""

    name: str
    stage: str
    part: str
    occurrences: tuple[tuple[float, float], ...]
    event: Distribution
    quiet: Distribution
    differences: tuple[Difference, ...]
    basis: str
    note: str | None = None

    @property
    def flagged(self) -> tuple[Difference, ...]:
        return tuple(d for d in self.differences if d.flagged)


def unusable(e: Estimate) -> bool:
    """Whether ``e`` says nothing to compare: no observations, or too few for its percentile."""
    return e.count <= 0 or bool(e.note and e.note.startswith(("too few", "no observations")))


def interval(d: Distribution, q: float, confidence: float = CONFIDENCE) -> Estimate:
    """``d.quantile(q)`` with an interval that holds the *population* quantile with
    ``confidence``, so that two slices of one distribution are not told apart by noise.

    Samples: the order-statistic interval at ``confidence``. Histograms: the bucket bounds
    around every rank of that interval (a bucket's interval alone says where the quantile of
    *these* observations is, not where another hour's would be). Other distributions: as
    they come. ``high is None``: the data cannot bound it above.
    """
    e = d.quantile(q)
    n = round(e.count)
    if unusable(e) or not isinstance(d, SampleDistribution | HistogramDistribution | MergedSamples):
        return e
    alpha = (1 - confidence) / 2
    from scipy.stats import binom  # here: scipy.stats costs ~0.6 s to import, and few maps compare events

    lo_rank = max(1, int(binom.ppf(alpha, n, q)))
    hi_rank = int(binom.ppf(1 - alpha, n, q)) + 1
    if isinstance(d, MergedSamples):  # merged partitions: the same order statistics
        return replace(e, low=d.order_stat(lo_rank), high=d.order_stat(hi_rank) if hi_rank <= n else None)
    if isinstance(d, SampleDistribution):
        low = float(d.values[lo_rank - 1])
        high = float(d.values[hi_rank - 1]) if hi_rank <= n else None
        return replace(e, low=low, high=high)
    b_lo, b_hi = (int(b) for b in d.bucket_of_rank(np.array([lo_rank, min(hi_rank, n)], dtype=float)))
    low_b = float(d.lower[b_lo])
    high_b = float(d.upper[b_hi]) if hi_rank <= n else math.inf
    low_h = None if low_b == -math.inf else min(low_b, e.low if e.low is not None else low_b)
    high_h = None if high_b == math.inf or e.high is None else max(high_b, e.high)
    return replace(e, low=low_h, high=high_h)


def disjoint(a: Estimate, b: Estimate, half_open: bool) -> bool:
    """``a``'s interval wholly above ``b``'s. Histogram intervals are bucket bounds
    ``(low, high]``, so touching ones are disjoint; sample intervals are closed."""
    if a.low is None or b.high is None:
        return False
    return a.low >= b.high if half_open else a.low > b.high


def format_interval(e: Estimate) -> str:
    """``12ms [10ms..15ms]``: the value and its interval (``-∞``/``∞`` for an open end)."""
    def f(x: float | None, missing: str) -> str:
        return missing if x is None else format_duration(x)

    if e.value is None and e.low is None and e.high is None:
        return "n/a (no observations)" if e.count == 0 else "n/a"
    head = f(e.value, "n/a")
    return f"{head} [{f(e.low, '-∞')}..{f(e.high, '∞')}]"


def difference(q: float, event_d: Distribution, quiet_d: Distribution, what: str, name: str) -> Difference:
    """Compare one percentile; flagged only when both are usable and their intervals (see
    :func:`interval`) do not overlap."""
    event, quiet = interval(event_d, q), interval(quiet_d, q)
    half_open = isinstance(event_d, HistogramDistribution) and isinstance(quiet_d, HistogramDistribution)
    usable = not (unusable(event) or unusable(quiet))
    higher, lower = disjoint(event, quiet, half_open), disjoint(quiet, event, half_open)
    flagged = usable and (higher or lower)
    ratio = diff = None
    if event.value is not None and quiet.value is not None:
        diff = event.value - quiet.value
        ratio = event.value / quiet.value if quiet.value > 0 else None
    elif flagged and higher and event.low and quiet.high and event.low > quiet.high:
        ratio = event.low / quiet.high  # at least this much: the facing bounds
    elif flagged and lower and event.high and quiet.low and event.high < quiet.low:
        ratio = event.high / quiet.low  # at most this much
    label = percentile_label(q)
    msg = f"{what} {label} during {name} {format_interval(event)} vs quiet {format_interval(quiet)}"
    if diff is not None and ratio is not None:
        msg += f": {ratio:.3g}x"
    elif ratio is not None:
        msg += f": {'at least' if higher else 'at most'} {ratio:.3g}x"
    elif flagged:
        msg += f": {'higher' if higher else 'lower'}, by an amount the data cannot bound"
    if diff is not None:
        msg += f" ({'+' if diff >= 0 else '-'}{format_duration(abs(diff))})"
    if not usable:
        msg += " (not compared: too few observations)"
    return Difference(q, event, quiet, flagged, ratio, diff, msg)


def comparison(ev: EventWindow, stage: str, part: str, occs: list[tuple[float, float]],
                event: Distribution, quiet: Distribution, basis: str, qs: Sequence[float],
                note: str | None) -> EventComparison | None:
    """``None`` when the part has no observations at all, in the event or out of it: a part
    that does not exist there is not a row of the table."""
    if event.count == 0 and quiet.count == 0:
        return None
    what = f"{stage} {part}"
    diffs = tuple(difference(q, event, quiet, what, ev.name) for q in qs)
    if basis == NEIGHBOURS:
        extra = "no other day in the window has these hours: the quiet baseline is the hour before and after"
        note = f"{note}; {extra}" if note else extra
    elif basis == NO_BASELINE:
        note = f"{note}; no quiet baseline in the window" if note else "no quiet baseline in the window"
    return EventComparison(ev.name, stage, part, tuple(occs), event, quiet, diffs, basis, note)


def event_occurrences(ev: EventWindow, window: Window) -> list[tuple[float, float]]:
    """The event's occurrences overlapping the window."""
    return occurrences(ev, window.start, window.end)


def compare_event_hourly(ev: EventWindow, rows: Sequence[HourBuckets], window: Window,
                         qs: Sequence[float], stage: str, part: str) -> EventComparison | None:
    """The event against its quiet baseline from hourly bucket counts (``None``: no
    occurrence in the window). An occurrence takes every whole hour it overlaps."""
    occs = event_occurrences(ev, window)
    if not occs:
        return None
    h = HourlyCounts.from_rows(rows)
    event, quiet, basis = quiet_baseline(h.starts, h.starts + HOUR, occs, lambda m: h.select(m).count > 0)
    note = None
    if any(s % HOUR or e % HOUR for s, e in occs):
        hours = ", ".join(f"{format_time(t)}..{format_time(t + HOUR)}" for t in h.starts[event][:6])
        note = ("metrics come in whole hours: each occurrence takes the hours it overlaps "
                f"({hours}{', ...' if event.sum() > 6 else ''}), so a shorter event is diluted")
    return comparison(ev, stage, part, occs, h.select(event), h.select(quiet), basis, qs, note)


def compare_event_samples(ev: EventWindow, times: np.ndarray, values: np.ndarray, window: Window,
                          qs: Sequence[float], stage: str, part: str) -> EventComparison | None:
    """The event against its quiet baseline from samples, exact by timestamp."""
    occs = event_occurrences(ev, window)
    if not occs:
        return None
    t = np.asarray(times, dtype=float)
    v = np.asarray(values, dtype=float)
    event, quiet, basis = quiet_baseline(t, np.nextafter(t, math.inf), occs, lambda m: bool(np.any(m)))
    return comparison(ev, stage, part, occs, SampleDistribution(v[event]), SampleDistribution(v[quiet]),
                       basis, qs, None)
