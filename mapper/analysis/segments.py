"""Segments: the same latency sliced by hour of day, day of week, label value and event window.

Pure functions over bucket counts (metrics) and samples (traces); no I/O. The slices are
:mod:`mapper.analysis.profiles`' (hour of day, weekday, hour by hour) and the event
comparisons :mod:`mapper.analysis.events`'; this module plans what a partition slots its
traced samples into (:func:`sample_plan`, :func:`sample_slots`), reads the slots merged from
partitions (:class:`MergedSegment`) as the samples would be read, and builds the report's
whole segments section (:func:`build_segments`) with its checks (``daily-peak``,
``event-outside-window``, ``event-difference``, ``segment-label-missing``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mapper.analysis.events import (
    NEIGHBOURS,
    NO_BASELINE,
    SAME_HOURS,
    EventComparison,
    compare_event_hourly,
    compare_event_samples,
    comparison,
    disjoint,
    event_occurrences,
    format_interval,
    interval,
    overlaps,
    same_clock,
    unusable,
)
from mapper.analysis.profiles import (
    PROFILE_PERCENTILES,
    HourlyCounts,
    Profile,
    hour_of_day,
    profile_from_hourly,
    profile_from_samples,
    series_from_hourly,
    series_from_samples,
    weekday,
)
from mapper.core.distribution import CONFIDENCE, Distribution, HistogramDistribution, percentile_label
from mapper.core.durations import format_time
from mapper.core.model import HOUR, Check, HourBuckets, Window
from mapper.core.spec.extra import EventWindow

if TYPE_CHECKING:
    from mapper.analysis.traces import TraceTable
    from mapper.core.spec import StreamSpec

#: The percentile the ``daily-peak`` check compares, and the confidence of its intervals
#: (all 24 hours' at once: Bonferroni, 1 - 5%/24 each).
PEAK_PERCENTILE = 0.99
PEAK_CONFIDENCE = 1 - (1 - CONFIDENCE) / 24

Key = tuple[str, str]  # (stage, part)
Samples = tuple[np.ndarray, np.ndarray]  # (times in unix seconds, values in seconds)


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
        event = overlaps(t, b, occs)
        around = [w for s, e in occs for w in ((s - HOUR, s), (e, e + HOUR))]
        out += [(("event", name, "event"), event), (("event", name, "same"), same_clock(t, b, occs) & ~event),
                (("event", name, "around"), overlaps(t, b, around) & ~event)]
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
    return comparison(ev, stage, part, occs, event, quiet, basis, qs, None)


# --------------------------------------------------------------------------- checks


def daily_peak(profile: Profile, stage: str, part: str, q: float = PEAK_PERCENTILE) -> Check | None:
    """An ``info`` check naming the hour of day whose ``q`` is highest, when its interval
    lies wholly above the quietest hour's.

    The highest and lowest of 24 hours differ by chance alone, so the intervals here hold
    all 24 hours' quantiles at once (95% over the day: Bonferroni, 1 - 5%/24 each).
    """
    confidence = PEAK_CONFIDENCE
    est = [(h, interval(d, q, confidence), d) for h, d in enumerate(profile.hours) if d.count > 0]
    est = [x for x in est if x[1].value is not None and not unusable(x[1])]
    if len(est) < 2:
        return None
    peak_h, peak, peak_d = max(est, key=lambda x: x[1].value or 0.0)
    low_h, low, low_d = min(est, key=lambda x: x[1].value or 0.0)
    half_open = isinstance(peak_d, HistogramDistribution) and isinstance(low_d, HistogramDistribution)
    if not disjoint(peak, low, half_open):
        return None
    ratio = f": {peak.value / low.value:.3g}x" if peak.value and low.value else ""
    return Check("info", "daily-peak",
                 f"{stage} {part} {percentile_label(q)} peaks at {peak_h:02d}:00-{(peak_h + 1) % 24:02d}:00 UTC, "
                 f"{format_interval(peak)} vs {format_interval(low)} "
                 f"at {low_h:02d}:00-{(low_h + 1) % 24:02d}:00 UTC{ratio}",
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


