"""The flow of a value stream, stage by stage: what a VSM data box and inventory triangle
carry beside the cycle time (issue 27). Plain frozen values that renderers read.

Every figure is ``None`` when the data cannot give it (a check says why), never a guess:
items counted from traces are exact; from Prometheus they come from counters' increases and
gauges over the window. ``source`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Handover:
    """Items a stage handed on to one of its next stages (the stream may branch)."""

    to: str
    items: float
    #: ``items`` / the stage's ``items_in``.
    share: float | None


@dataclass(frozen=True)
class Inventory:
    """The items waiting before a stage over the window (a VSM inventory triangle).

    ``mean`` is the time-average number waiting (from traces: exactly, the sum of the waits
    over the window; from a gauge: its time-average); ``little`` is arrival rate x mean wait
    (Little's law), which must agree with ``mean`` when no span is missing; ``peak`` the most
    waiting at once; ``hourly`` the mean per hour of day (UTC, 24 entries, None where the
    window has no time in that hour).
    """

    mean: float | None
    peak: float | None
    little: float | None = None
    hourly: tuple[float | None, ...] = ()
    source: str = "traces"
    #: What the gauge was (``kafka_consumergroup_lag{group="alerting"}``), for reports.
    provenance: str | None = None
    #: Seconds between the instants ``peak`` was read at: 0 for an exact sweep over every
    #: wait (traces in memory); above 0 the peak of a grid (a lower bound of the true peak).
    peak_resolution: float | None = None


@dataclass(frozen=True)
class Rework:
    """What errors and retries at a stage cost.

    ``first_pass_yield`` (%C&A) = items processed without an error or a retry at the stage /
    ``items_in``; ``failed`` items had an error (span status ERROR, an exception event, an
    error counter); ``retried`` items were processed more than once (a redelivered message:
    several consumer spans for one producer span); ``seconds`` is the time the extra attempts
    took (the failed attempts' process and the waits before their retries), summed over the
    items; ``share_of_lead`` is its share of the summed lead time of the items that reached
    the stream's end (None without a lead time).
    """

    first_pass_yield: float | None
    failed: float | None
    retried: float | None
    seconds: float | None = None
    share_of_lead: float | None = None


@dataclass(frozen=True)
class Utilisation:
    """How busy a stage is: busy time / (window x workers).

    ``workers`` counted from distinct ``service.instance.id`` (thread ids are not read) or
    set in the spec (``workers_source`` says which); ``busy_seconds`` the time they were busy
    (spec workers: the summed process time; instances: at most each instance's merged span
    intervals, so an instance serving several items at once is busy once); ``value`` never
    exceeds 1 (busy time the workers cannot hold gives None and a check); ``capacity_per_s`` =
    workers x items / busy time (workers / mean process time when each serves one at a time);
    ``peak_hour`` the utilisation in the hour of the window with the most
    arrivals, and ``headroom`` capacity / that hour's arrival rate (below 1: the queue grows).
    """

    value: float | None
    workers: int | None
    workers_source: str | None
    capacity_per_s: float | None
    peak_hour: float | None = None
    headroom: float | None = None
    busy_seconds: float | None = None


@dataclass(frozen=True)
class StageFlow:
    """A stage's flow over the window: items in and out, yield, rework, inventory, utilisation.

    ``items_in``: distinct items that reached the stage; ``items_out``: handed on to a next
    stage; ``stopped``: ended at the stage (complete for the stages they passed, not lost);
    ``yield_`` = out / in (None for a last stage, where nothing is handed on).
    """

    stage: str
    source: str
    items_in: float | None
    items_out: float | None
    stopped: float | None
    yield_: float | None
    handovers: tuple[Handover, ...] = ()
    throughput_in_per_s: float | None = None
    throughput_out_per_s: float | None = None
    rework: Rework | None = None
    inventory: Inventory | None = None
    utilisation: Utilisation | None = None


@dataclass(frozen=True)
class StreamFlow:
    """Every stage's flow, in flow order, and the items that reached the stream's end (the
    lead time is defined over them)."""

    stages: tuple[StageFlow, ...]
    items_completed: float | None = None

    def of(self, stage: str) -> StageFlow | None:
        for f in self.stages:
            if f.stage == stage:
                return f
        return None
