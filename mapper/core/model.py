"""The values that flow between collectors, analysis and renderers.

Collectors turn a :class:`~mapper.core.spec.Measurement` into a :class:`MeasurementResult`;
analysis turns those into a :class:`~mapper.analysis.latency.LatencyMap`. Everything here is frozen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from mapper.core.distribution import Distribution

Level = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Window:
    """The time range ``(start, end]`` the numbers cover, in unix seconds."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @classmethod
    def ending(cls, end: float, length: float) -> Window:
        return cls(end - length, end)


@dataclass(frozen=True)
class Check:
    """A finding about the data: not enough samples, a coarse bucket, a reset ...

    ``code`` is stable (machines match on it); ``message`` is for people and names the
    stage, the part and the metric it is about.
    """

    level: Level
    code: str
    message: str
    stage: str | None = None
    part: str | None = None


@dataclass(frozen=True)
class MeasurementResult:
    """What a collector read for one measurement over one window.

    ``distribution`` is ``None`` when there was no data (a ``no-data`` check says so).
    ``provenance`` says where the numbers came from (source name, URL, query), for reports.
    ``per_instance`` holds the separate distributions a summary cannot merge. ``series`` is
    the measurement over the window interval by interval (``(interval starts in unix
    seconds, one distribution each)``) when the source serves it directly (Datadog), for
    the report's charts.
    """

    distribution: Distribution | None
    provenance: str
    checks: tuple[Check, ...] = ()
    per_instance: tuple[tuple[str, Distribution], ...] = field(default_factory=tuple)
    series: tuple[Any, tuple[Distribution, ...]] | None = None


class HourBuckets(NamedTuple):
    """One hour of a classic histogram: the hour ``(start, start + 1h]``, the series' labels
    (without ``le``) and cumulative counts per bucket bound (seconds)."""

    start: float
    labels: Mapping[str, str]
    buckets: Mapping[float, float]


#: One hour, in seconds: the step of hourly segments.
HOUR = 3600.0
