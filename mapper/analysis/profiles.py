"""Slicing a latency by time: hour of day, weekday, and the window hour by hour.

Pure functions over hourly bucket counts (metrics) and samples (traces); no I/O. Quantiles are
never averaged: per-hour bucket counts are *summed* over the hours of a slot (or samples
selected by time), and the quantile is taken of the sum. Times are UTC: hour ``h`` of a
:class:`Profile` holds every observation whose hour starts at ``h:00`` UTC, on any day of the
window; weekday ``0`` is Monday.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mapper.analysis.sorting import stable_order
from mapper.core.distribution import Distribution, HistogramDistribution, SampleDistribution
from mapper.core.model import HOUR, HourBuckets

DAY = 86400.0
#: Percentiles of the hour-of-day and weekday profiles (an hour rarely supports p99.99).
PROFILE_PERCENTILES = (0.5, 0.99)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


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


def samples_by_slot(slot: np.ndarray, values: np.ndarray, n: int) -> tuple[SampleDistribution, ...]:
    """``values`` grouped by ``slot`` (0 .. n-1), one distribution per slot (empty ones too)."""
    order = stable_order(slot, max(n - 1, 0).bit_length())
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
    return Profile(samples_by_slot(hour_of_day(t), v, 24), samples_by_slot(weekday(t), v, 7))


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
    parts = samples_by_slot(inverse, np.asarray(values, dtype=float), uniq.size)
    return uniq.astype(float) * HOUR, parts
