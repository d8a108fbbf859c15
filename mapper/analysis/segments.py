"""Segments: the same latency sliced by hour of day, day of week, label value and event window.

Pure functions over bucket counts (metrics) and samples (traces); no I/O. Quantiles are never
averaged: per-hour bucket counts are *summed* over the hours of a segment (or samples
selected by time), and the quantile is taken of the sum. Times are UTC.

What the caller can rely on:

* hour ``h`` of :class:`Profile` holds every observation whose hour starts at ``h:00`` UTC,
  on any day of the window; weekday ``0`` is Monday.
* an event is compared with a *quiet baseline*: the same clock hours on the other days of
  the window, minus the event's own occurrences. When no other day has those hours (a
  window under two days, or an event recurring every day), the baseline is the hour before
  and the hour after each occurrence instead, and the comparison's ``basis`` says so.
* a difference is flagged only when the two intervals do not overlap (for histograms the
  intervals are bucket bounds, so a flag needs a whole bucket between them).
* metrics come in whole hours: an occurrence takes every hour it overlaps, which dilutes an
  event shorter than its hours (the comparison's ``note`` names them). Traces are exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import binom

from mapper.analysis.merge import MergedSamples
from mapper.core.distribution import (
    CONFIDENCE,
    Distribution,
    Estimate,
    HistogramDistribution,
    SampleDistribution,
    percentile_label,
)
from mapper.core.durations import format_duration, format_time
from mapper.core.model import HOUR, Check, HourBuckets, Window
from mapper.core.spec.extra import EventWindow, occurrences

if TYPE_CHECKING:
    from mapper.analysis.traces import TraceTable
    from mapper.core.spec import StreamSpec

DAY = 86400.0
#: Percentiles of the hour-of-day and weekday profiles (an hour rarely supports p99.99).
PROFILE_PERCENTILES = (0.5, 0.99)
#: The percentile the ``daily-peak`` check compares, and the confidence of its intervals
#: (all 24 hours' at once: Bonferroni, 1 - 5%/24 each).
PEAK_PERCENTILE = 0.99
PEAK_CONFIDENCE = 1 - (1 - CONFIDENCE) / 24
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: ``EventComparison.basis`` values.
SAME_HOURS, NEIGHBOURS, NO_BASELINE = "same hours on other days", "hour before and after", "none"

Key = tuple[str, str]  # (stage, part)
Samples = tuple[np.ndarray, np.ndarray]  # (times in unix seconds, values in seconds)


def hour_of_day(t: np.ndarray) -> np.ndarray:
    return (np.floor_divide(t, HOUR) % 24).astype(np.int64)


def weekday(t: np.ndarray) -> np.ndarray:
    """0 = Monday; 1970-01-01 was a Thursday."""
    return ((np.floor_divide(t, DAY) + 3) % 7).astype(np.int64)


def _empty_histogram() -> HistogramDistribution:
    return HistogramDistribution(np.zeros(0), np.zeros(0), np.zeros(0))


@dataclass(frozen=True, eq=False)
class HourlyCounts:
    """Hourly rows as arrays: ``cumulative[i]`` are row ``i``'s cumulative counts at ``bounds``.

    Only bounds every row has are kept (a bucket layout that changed within the window is
    read at the coarser, common layout), so sums over rows stay exact.
    """

    starts: np.ndarray
    bounds: np.ndarray
    cumulative: np.ndarray

    @classmethod
    def from_rows(cls, rows: Sequence[HourBuckets]) -> HourlyCounts:
        if not rows:
            return cls(np.zeros(0), np.zeros(0), np.zeros((0, 0)))
        common = set(rows[0].buckets).intersection(*(r.buckets for r in rows[1:]))
        bounds = np.array(sorted(common), dtype=float)
        cum = np.array([[r.buckets[b] for b in bounds] for r in rows], dtype=float).reshape(len(rows), bounds.size)
        return cls(np.array([r.start for r in rows], dtype=float), bounds, cum)

    def histogram(self, cumulative: np.ndarray) -> HistogramDistribution:
        if self.bounds.size == 0 or self.bounds[-1] != math.inf or not np.any(cumulative > 0):
            return _empty_histogram()
        return HistogramDistribution.from_cumulative(self.bounds.tolist(), cumulative.tolist())

    def select(self, mask: np.ndarray) -> HistogramDistribution:
        """The histogram of the rows in ``mask``, summed."""
        return self.histogram(self.cumulative[mask].sum(axis=0))

    def by_slot(self, slot: np.ndarray, n: int) -> tuple[HistogramDistribution, ...]:
        sums = np.zeros((n, self.bounds.size))
        np.add.at(sums, slot, self.cumulative)
        return tuple(self.histogram(sums[i]) for i in range(n))


def _samples_by_slot(slot: np.ndarray, values: np.ndarray, n: int) -> tuple[SampleDistribution, ...]:
    order = np.argsort(slot, kind="stable")
    parts = np.split(values[order], np.cumsum(np.bincount(slot, minlength=n))[:-1])
    return tuple(SampleDistribution(p) for p in parts)


@dataclass(frozen=True)
class Profile:
    """A latency per UTC hour of day (24) and per weekday (7, Monday first)."""

    hours: tuple[Distribution, ...]
    weekdays: tuple[Distribution, ...]


def profile_from_hourly(rows: Sequence[HourBuckets]) -> Profile:
    """Sum each hour's bucket counts into its hour-of-day and weekday slot."""
    h = HourlyCounts.from_rows(rows)
    return Profile(h.by_slot(hour_of_day(h.starts), 24), h.by_slot(weekday(h.starts), 7))


def profile_from_samples(times: np.ndarray, values: np.ndarray) -> Profile:
    """Put each sample in the slot of its time (for traces: the stage's start)."""
    t, v = np.asarray(times, dtype=float), np.asarray(values, dtype=float)
    return Profile(_samples_by_slot(hour_of_day(t), v, 24), _samples_by_slot(weekday(t), v, 7))


# --------------------------------------------------------------------------- events


def _overlaps(a: np.ndarray, b: np.ndarray, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    """Units ``[a, b)`` overlapping any ``[s, e)`` of ``spans``."""
    out = np.zeros(a.shape, dtype=bool)
    for s, e in spans:
        out |= (a < e) & (b > s)
    return out


def _same_clock(a: np.ndarray, b: np.ndarray, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    """Units ``[a, b)`` overlapping a copy of any span shifted by a whole number of days."""
    out = np.zeros(a.shape, dtype=bool)
    for s, e in spans:
        k = np.floor((a - e) / DAY) + 1  # the first shift with a < e + k days
        out |= s + k * DAY < b
    return out


def _baseline(a: np.ndarray, b: np.ndarray, occs: Sequence[tuple[float, float]],
              has_data: Callable[[np.ndarray], bool]) -> tuple[np.ndarray, np.ndarray, str]:
    """Masks of the event's units and its quiet baseline, and the baseline's basis."""
    event = _overlaps(a, b, occs)
    quiet = _same_clock(a, b, occs) & ~event
    if has_data(quiet):
        return event, quiet, SAME_HOURS
    around = [w for s, e in occs for w in ((s - HOUR, s), (e, e + HOUR))]
    quiet = _overlaps(a, b, around) & ~event
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


def _unusable(e: Estimate) -> bool:
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
    if _unusable(e) or not isinstance(d, SampleDistribution | HistogramDistribution | MergedSamples):
        return e
    alpha = (1 - confidence) / 2
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


def _disjoint(a: Estimate, b: Estimate, half_open: bool) -> bool:
    """``a``'s interval wholly above ``b``'s. Histogram intervals are bucket bounds
    ``(low, high]``, so touching ones are disjoint; sample intervals are closed."""
    if a.low is None or b.high is None:
        return False
    return a.low >= b.high if half_open else a.low > b.high


def _fmt(e: Estimate) -> str:
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
    usable = not (_unusable(event) or _unusable(quiet))
    higher, lower = _disjoint(event, quiet, half_open), _disjoint(quiet, event, half_open)
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
    msg = f"{what} {label} during {name} {_fmt(event)} vs quiet {_fmt(quiet)}"
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


def _comparison(ev: EventWindow, stage: str, part: str, occs: list[tuple[float, float]],
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
    event, quiet, basis = _baseline(h.starts, h.starts + HOUR, occs, lambda m: h.select(m).count > 0)
    note = None
    if any(s % HOUR or e % HOUR for s, e in occs):
        hours = ", ".join(f"{format_time(t)}..{format_time(t + HOUR)}" for t in h.starts[event][:6])
        note = ("metrics come in whole hours: each occurrence takes the hours it overlaps "
                f"({hours}{', ...' if event.sum() > 6 else ''}), so a shorter event is diluted")
    return _comparison(ev, stage, part, occs, h.select(event), h.select(quiet), basis, qs, note)


def compare_event_samples(ev: EventWindow, times: np.ndarray, values: np.ndarray, window: Window,
                          qs: Sequence[float], stage: str, part: str) -> EventComparison | None:
    """The event against its quiet baseline from samples, exact by timestamp."""
    occs = event_occurrences(ev, window)
    if not occs:
        return None
    t = np.asarray(times, dtype=float)
    v = np.asarray(values, dtype=float)
    event, quiet, basis = _baseline(t, np.nextafter(t, math.inf), occs, lambda m: bool(np.any(m)))
    return _comparison(ev, stage, part, occs, SampleDistribution(v[event]), SampleDistribution(v[quiet]),
                       basis, qs, None)


# --------------------------------------------------------------------------- merged partitions


#: A slot of a traced part's samples: ``("hour", h)``, ``("weekday", d)``, ``("series", hour
#: start)``, ``("event", name, "event" | "same" | "around")`` (the event's samples, its quiet
#: baseline on the same hours of other days, and the hour before and after it).
Slot = tuple[Any, ...]
_BASELINES = ("event", "same", "around")


@dataclass(frozen=True)
class SamplePlan:
    """What a partition slots its traced samples into: the (stage, part) keys, each live
    event's occurrences in the window, and the percentiles the merge must make exact."""

    keys: tuple[Key, ...]
    events: tuple[tuple[str, tuple[tuple[float, float], ...]], ...]
    qs: tuple[float, ...]


def sample_plan(spec: StreamSpec, window: Window, keys: Sequence[Key], qs: Sequence[float]) -> SamplePlan:
    """The plan of :func:`build_segments` for traced samples merged from partitions."""
    events = tuple((ev.name, tuple(event_occurrences(ev, window))) for ev in spec.events)
    return SamplePlan(tuple(keys), tuple((n, o) for n, o in events if o),
                      tuple(sorted({*qs, *spec.percentiles, *PROFILE_PERCENTILES})))


def sample_slots(times: np.ndarray, events: Sequence[tuple[str, Sequence[tuple[float, float]]]]
                 ) -> list[tuple[Slot, np.ndarray]]:
    """Each slot the samples timed ``times`` fall into, with the mask of its samples: the
    same selection as :func:`profile_from_samples`, :func:`series_from_samples` and
    :func:`compare_event_samples` (so merged slots give the same distributions)."""
    t = np.asarray(times, dtype=float)
    out: list[tuple[Slot, np.ndarray]] = []
    for name, slot in (("hour", hour_of_day(t)), ("weekday", weekday(t))):
        out += [((name, int(i)), slot == i) for i in np.unique(slot).tolist()]
    hour = np.floor_divide(t, HOUR).astype(np.int64)
    out += [(("series", float(np.float64(h) * HOUR)), hour == h) for h in np.unique(hour).tolist()]
    b = np.nextafter(t, math.inf)
    for name, occs in events:
        event = _overlaps(t, b, occs)
        around = [w for s, e in occs for w in ((s - HOUR, s), (e, e + HOUR))]
        out += [(("event", name, "event"), event), (("event", name, "same"), _same_clock(t, b, occs) & ~event),
                (("event", name, "around"), _overlaps(t, b, around) & ~event)]
    return out


@dataclass(frozen=True, eq=False)
class MergedSegment:
    """One traced part's segments merged from partitions: what :func:`build_segments` reads
    instead of its samples."""

    profile: Profile
    series: tuple[np.ndarray, tuple[Distribution, ...]]
    #: event name -> (its samples, same hours on other days, hour before and after)
    events: Mapping[str, tuple[Distribution, Distribution, Distribution]]

    @classmethod
    def of(cls, slots: Mapping[Slot, Distribution], plan: SamplePlan, empty: Distribution) -> MergedSegment:
        hours = tuple(slots.get(("hour", h), empty) for h in range(24))
        days = tuple(slots.get(("weekday", d), empty) for d in range(7))
        starts = sorted(k[1] for k in slots if k[0] == "series")
        events = {n: tuple(slots.get(("event", n, b), empty) for b in _BASELINES) for n, _ in plan.events}
        return cls(Profile(hours, days), (np.array(starts, dtype=float), tuple(slots[("series", h)] for h in starts)),
                   events)  # type: ignore[arg-type]


def compare_event_merged(ev: EventWindow, seg: MergedSegment, window: Window, qs: Sequence[float],
                         stage: str, part: str) -> EventComparison | None:
    """:func:`compare_event_samples` from merged slots (the baseline chosen as it chooses)."""
    occs = event_occurrences(ev, window)
    if not occs or ev.name not in seg.events:
        return None
    event, same, around = seg.events[ev.name]
    if same.count > 0:
        quiet, basis = same, SAME_HOURS
    else:
        quiet, basis = around, NEIGHBOURS if around.count > 0 else NO_BASELINE
    return _comparison(ev, stage, part, occs, event, quiet, basis, qs, None)


# --------------------------------------------------------------------------- checks


def daily_peak(profile: Profile, stage: str, part: str, q: float = PEAK_PERCENTILE) -> Check | None:
    """An ``info`` check naming the hour of day whose ``q`` is highest, when its interval
    lies wholly above the quietest hour's.

    The highest and lowest of 24 hours differ by chance alone, so the intervals here hold
    all 24 hours' quantiles at once (95% over the day: Bonferroni, 1 - 5%/24 each).
    """
    confidence = PEAK_CONFIDENCE
    est = [(h, interval(d, q, confidence), d) for h, d in enumerate(profile.hours) if d.count > 0]
    est = [x for x in est if x[1].value is not None and not _unusable(x[1])]
    if len(est) < 2:
        return None
    peak_h, peak, peak_d = max(est, key=lambda x: x[1].value or 0.0)
    low_h, low, low_d = min(est, key=lambda x: x[1].value or 0.0)
    half_open = isinstance(peak_d, HistogramDistribution) and isinstance(low_d, HistogramDistribution)
    if not _disjoint(peak, low, half_open):
        return None
    ratio = f": {peak.value / low.value:.3g}x" if peak.value and low.value else ""
    return Check("info", "daily-peak",
                 f"{stage} {part} {percentile_label(q)} peaks at {peak_h:02d}:00-{(peak_h + 1) % 24:02d}:00 UTC, "
                 f"{_fmt(peak)} vs {_fmt(low)} at {low_h:02d}:00-{(low_h + 1) % 24:02d}:00 UTC{ratio}",
                 stage, part)


def event_outside_window(ev: EventWindow, window: Window) -> Check | None:
    if event_occurrences(ev, window):
        return None
    return Check("warning", "event-outside-window",
                 f"event {ev.name} ({ev.place}): no occurrence inside the data window "
                 f"{format_time(window.start)}..{format_time(window.end)}; not compared")


def difference_checks(c: EventComparison) -> list[Check]:
    return [Check("warning", "event-difference", d.message, c.stage, c.part) for d in c.flagged]


# --------------------------------------------------------------------------- the whole section


@dataclass(frozen=True)
class SegmentReport:
    """Every segment of a run: per (stage, part) profiles, label slices, event comparisons.

    ``labels``: label -> value -> (stage, part) -> distribution over the whole window.
    """

    profiles: Mapping[Key, Profile]
    labels: Mapping[str, Mapping[str, Mapping[Key, Distribution]]]
    events: tuple[EventComparison, ...]
    checks: tuple[Check, ...]
    hours: bool = True
    weekdays: bool = True
    #: Per (stage, part): the window hour by hour: ``(hour starts, one distribution per hour)``.
    series: Mapping[Key, tuple[np.ndarray, tuple[Distribution, ...]]] = field(default_factory=dict)


def series_from_hourly(rows: Sequence[HourBuckets]) -> tuple[np.ndarray, tuple[Distribution, ...]]:
    """Each hour of the window as its own distribution (the hour's bucket counts): the
    percentiles over the window, never an average of quantiles."""
    h = HourlyCounts.from_rows(rows)
    order = np.argsort(h.starts, kind="stable")
    return h.starts[order], tuple(h.histogram(h.cumulative[i]) for i in order)


def series_from_samples(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, tuple[Distribution, ...]]:
    """The samples hour by hour (by start time), one distribution per hour present."""
    hour = np.floor_divide(np.asarray(times, dtype=float), HOUR).astype(np.int64)
    uniq, inverse = np.unique(hour, return_inverse=True)
    parts = _samples_by_slot(inverse, np.asarray(values, dtype=float), uniq.size)
    return uniq.astype(float) * HOUR, parts


@dataclass(frozen=True)
class SegmentData:
    """What the pipeline reads for segments (see :func:`build_segments` for each field)."""

    hourly: Mapping[Key, Sequence[HourBuckets]]
    samples: Mapping[Key, Samples]
    labels: Mapping[str, Mapping[Key, Mapping[str, Mapping[float, float]]]]
    #: Traced parts merged from partitions (:class:`MergedSegment`), in place of their samples.
    merged: Mapping[Key, MergedSegment] = field(default_factory=dict)


def trace_samples(table: TraceTable, stage: str) -> dict[str, Samples]:
    """A traced stage's ``process`` and ``wait`` samples, timed by the stage's start."""
    f = table.stage_frame(stage)
    start = f["start"].to_numpy(dtype=float)
    wait = f["wait"].to_numpy(dtype=float)
    has = ~np.isnan(wait)
    return {"process": (start, f["process"].to_numpy(dtype=float)), "wait": (start[has], wait[has])}


def build_segments(spec: StreamSpec, window: Window,
                   hourly: Mapping[Key, Sequence[HourBuckets]] | None = None,
                   samples: Mapping[Key, Samples] | None = None,
                   labels: Mapping[str, Mapping[Key, Mapping[str, Mapping[float, float]]]] | None = None,
                   merged: Mapping[Key, MergedSegment] | None = None) -> SegmentReport:
    """Profiles, label slices and event comparisons for every measured (stage, part).

    ``hourly``: metric parts' hourly bucket counts; ``samples``: traced parts' samples (a
    key in both uses the metrics); ``labels``: label -> (stage, part) -> value -> cumulative
    bucket counts for the window (an empty mapping: the label is not on that measurement);
    ``merged``: traced parts merged from partitions, read as their samples would be.
    """
    hourly, samples, labels, merged = hourly or {}, samples or {}, labels or {}, merged or {}
    qs = spec.percentiles
    checks: list[Check] = []
    profiles: dict[Key, Profile] = {}
    series: dict[Key, tuple[np.ndarray, tuple[Distribution, ...]]] = {}
    events: list[EventComparison] = []
    live = []
    for ev in spec.events:
        outside = event_outside_window(ev, window)
        if outside:
            checks.append(outside)
        else:
            live.append(ev)
    for key in sorted({*hourly, *samples, *merged}):
        stage, part = key
        if key in hourly:
            profiles[key] = profile_from_hourly(hourly[key])
            series[key] = series_from_hourly(hourly[key])
            made = [compare_event_hourly(ev, hourly[key], window, qs, stage, part) for ev in live]
        elif key in merged:
            profiles[key], series[key] = merged[key].profile, merged[key].series
            made = [compare_event_merged(ev, merged[key], window, qs, stage, part) for ev in live]
        else:
            t, v = samples[key]
            profiles[key] = profile_from_samples(t, v)
            series[key] = series_from_samples(t, v)
            made = [compare_event_samples(ev, t, v, window, qs, stage, part) for ev in live]
        if spec.segments.hours and (peak := daily_peak(profiles[key], stage, part)):
            checks.append(peak)
        for c in made:
            if c is not None:
                events.append(c)
                checks += difference_checks(c)
    sliced: dict[str, dict[str, dict[Key, Distribution]]] = {}
    for label, per_key in labels.items():
        for key, values in sorted(per_key.items()):
            if not values:
                checks.append(Check("info", "segment-label-missing",
                                    f"{key[0]} {key[1]}: no series carries the label {label!r}", *key))
            for value, buckets in values.items():
                h = HourlyCounts.from_rows([HourBuckets(window.end, {}, buckets)])
                sliced.setdefault(label, {}).setdefault(value, {})[key] = h.histogram(h.cumulative[0])
        if label not in sliced:
            checks.append(Check("warning", "segment-label-missing",
                                f"segment label {label!r} is on none of the measured series; "
                                "no label segments for it"))
    return SegmentReport(profiles, sliced, tuple(events), tuple(checks),
                         spec.segments.hours, spec.segments.weekdays, series)


