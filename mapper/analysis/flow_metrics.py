"""A stage's flow measured from metrics (issue 27): items in and out, yield, first-pass yield,
inventory and utilisation, from the stage's histograms and the counters and gauges the spec
names (``errors``, ``retries``, ``inventory``, ``workers``).

What each figure is, and what it means read from metrics:

* ``items_in``: the exact increase over the window of the stage's process histogram's count
  (its wait histogram's when it has no process one). Metrics count attempts: a redelivered
  item is processed, and counted, again.
* ``items_out``: what the next stages took in (the stream may branch: one
  :class:`~mapper.analysis.flow_model.Handover` per next stage). A next stage fed by several
  stages cannot tell whose items it took, so that handover, and ``items_out``, are unknown.
  ``yield_`` = out / in; ``stopped`` = in - out, the items that ended at the stage (filtered
  out, or failed for good), unknown when more went out than came in (a stage that fans out,
  or items in flight across the window's edges), and so is the yield (never above 1).
* ``rework``: ``failed`` / ``retried`` are the error and retry counters' increases;
  ``first_pass_yield`` = 1 - attempts that went wrong / ``items_in``. Given both counters,
  a failure that is retried is one item counted in each: the larger count is taken (and a
  ``rework-bound`` check says so). ``seconds``: the time the failed attempts took, when the
  errors are the process histogram under an outcome label (its ``_sum``).
* ``inventory``: from the gauge, ``mean`` is its time-average (equal steps), ``peak`` its
  largest step, ``hourly`` the mean per UTC hour of day; ``little`` = arrival rate x mean
  wait = the wait histogram's sum / window (Little's law), which the gauge's mean must match.
* ``utilisation``: busy time (the process histogram's sum) / (window x workers), workers from
  the spec; ``capacity_per_s`` = workers / mean process time; with hourly counts (segments),
  ``peak_hour`` is the busiest hour's arrivals x mean process time / (hour x workers) (None
  with a ``utilisation-high`` check when that is above 1: the hour needed more workers than it had) and
  ``headroom`` capacity / that hour's arrival rate.

Where the data cannot give a figure it is None and a check says why; never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from mapper.analysis.flow_model import Handover, Inventory, Rework, StageFlow, StreamFlow, Utilisation
from mapper.core.distribution import Distribution
from mapper.core.flowread import CounterRead, FlowReads, GaugeRead
from mapper.core.model import HOUR, Check, HourBuckets, MeasurementResult, Window
from mapper.core.spec import Stage, StreamSpec

SOURCE = "prometheus"
#: Below this first-pass yield a stage gets a ``rework`` check.
REWORK_BELOW = 0.99
#: Above this utilisation (peak hour, else the window's) a stage gets ``utilisation-high``.
UTILISATION_HIGH = 0.8
#: The gauge's mean and Little's rate x wait disagree beyond this share (and one item).
LITTLE_TOLERANCE = 0.2
#: A gauge with data over less of the window than this gets ``inventory-gaps``.
GAUGE_COVERAGE = 0.9
Key = tuple[str, str]


def wants_metered_flow(spec: StreamSpec) -> bool:
    """The spec asks for the flow from metrics: a stage names errors, retries, inventory or workers."""
    return any(s.errors or s.retries or s.inventory or s.workers for s in spec.stages)


def metered_flow(spec: StreamSpec, window: Window, results: Mapping[Key, MeasurementResult],
                 reads: FlowReads | None = None,
                 hourly: Mapping[Key, Sequence[HourBuckets]] | None = None
                 ) -> tuple[dict[str, StageFlow], list[Check]]:
    """Each stage measured from metrics (a ``wait`` or ``process`` measurement) with its flow
    over ``window``, by name, and the checks; ``results`` are the map's collected results,
    ``reads`` the flow metrics gathered, ``hourly`` the segments' hourly bucket counts."""
    reads = reads or FlowReads()
    metered = [s for s in spec.stages if s.process is not None or s.wait is not None]
    checks: list[Check] = []
    items = {s.name: _items_in(s, results) for s in metered}
    out: dict[str, StageFlow] = {}
    for s in metered:
        n = items[s.name]
        if n is None:
            checks.append(Check("warning", "flow-no-count", (
                f"{s.name}: its histograms counted nothing in the window; no items in, yield or utilisation"),
                s.name, "flow"))
        handovers, items_out, stopped, made = _handovers(spec, s, n, items)
        rework, rc = _rework(s, n, reads.errors.get(s.name), reads.retries.get(s.name))
        wait = _dist(results, s.name, "wait") if s.wait is not None else None
        inventory, ic = _inventory(s, window, reads.inventory.get(s.name), wait)
        utilisation, uc = _utilisation(s, window, _dist(results, s.name, "process") if s.process else None,
                                       (hourly or {}).get((s.name, "process")))
        checks += [*made, *rc, *ic, *uc]
        out[s.name] = StageFlow(
            stage=s.name, source=SOURCE, items_in=n, items_out=items_out, stopped=stopped,
            # more out than in (fan-out, items in flight across the edges): no yield, a check says why
            yield_=items_out / n if items_out is not None and stopped is not None and n else None,
            handovers=handovers,
            throughput_in_per_s=n / window.seconds if n is not None else None,
            throughput_out_per_s=items_out / window.seconds if items_out is not None else None,
            rework=rework, inventory=inventory, utilisation=utilisation)
    return out, checks


def stream_of(spec: StreamSpec, stages: Mapping[str, StageFlow]) -> StreamFlow | None:
    """The stream's flow in flow order; ``items_completed`` the items that reached a stage
    with no next stage (None when one of those is unknown). None when no stage has a flow."""
    if not stages:
        return None
    ordered = tuple(stages[s.name] for s in spec.stages if s.name in stages)
    fed = {u for s in spec.stages for u in s.upstream}
    ends = [stages[s.name].items_in if s.name in stages else None for s in spec.stages if s.name not in fed]
    done = None if any(n is None for n in ends) else float(sum(n for n in ends if n is not None))
    return StreamFlow(ordered, done)


def _dist(results: Mapping[Key, MeasurementResult], stage: str, part: str) -> Distribution | None:
    r = results.get((stage, part))
    return r.distribution if r is not None else None


def _items_in(s: Stage, results: Mapping[Key, MeasurementResult]) -> float | None:
    """The process histogram's count over the window, else the wait histogram's."""
    for part, m in (("process", s.process), ("wait", s.wait)):
        d = _dist(results, s.name, part) if m is not None else None
        if d is not None and d.count > 0:
            return float(d.count)
    return None


def _handovers(spec: StreamSpec, s: Stage, n: float | None, items: Mapping[str, float | None]
               ) -> tuple[tuple[Handover, ...], float | None, float | None, list[Check]]:
    """``(handovers, items_out, stopped, checks)`` of stage ``s`` (nothing for a last stage)."""
    nexts = [d for d in spec.stages if s.name in d.upstream]
    if not nexts:
        return (), None, None, []
    checks: list[Check] = []
    handovers: list[Handover] = []
    known = True
    for d in nexts:
        got = items.get(d.name)
        if got is None:
            known = False
            continue
        if len(d.upstream) > 1:
            known = False
            checks.append(Check("info", "handover-merged", (
                f"{s.name} -> {d.name}: {d.name} takes items from {', '.join(d.upstream)}; its count cannot "
                f"tell whose, so {s.name}'s items out are unknown"), s.name, "flow"))
            continue
        handovers.append(Handover(d.name, got, got / n if n and got <= n else None))
    if not known or n is None:
        return tuple(handovers), None, None, checks
    out = float(sum(h.items for h in handovers))
    stopped = n - out if out <= n else None
    if stopped is None:
        checks.append(Check("info", "flow-out-exceeds-in", (
            f"{s.name}: handed on {out:.0f} items but took in {n:.0f} (a stage that fans out, or items in "
            "flight across the window's edges): no yield, no count of the items that stopped here"), s.name, "flow"))
    return tuple(handovers), out, stopped, checks


def _rework(s: Stage, n: float | None, errors: CounterRead | None,
            retries: CounterRead | None) -> tuple[Rework | None, list[Check]]:
    if errors is None and retries is None:
        return None, []
    checks: list[Check] = []
    counts: list[float | None] = []
    for key, read in (("errors", errors), ("retries", retries)):
        if read is None:
            continue
        checks += [Check(c.level, c.code, f"{s.name} {key}: {c.message}", s.name, key) for c in read.checks]
        counts.append(read.total)
        if read.total is None and not any(c.code == "query-rejected" for c in read.checks):
            checks.append(Check("warning", f"{key}-no-series", (
                f"{s.name} {key}: no series of {read.provenance} in the window; no first-pass yield (a counter "
                "made on its first increment has none until then: export it at 0 so that none means none)"),
                s.name, key))
    failed = errors.total if errors is not None else None
    retried = retries.total if retries is not None else None
    fpy = None
    if n and all(c is not None for c in counts):
        bad = max(c for c in counts if c is not None)
        if bad > n:
            checks.append(Check("warning", "rework-exceeds-items", (
                f"{s.name}: {bad:.0f} attempts went wrong but only {n:.0f} items came in: the counters and the "
                "histogram count different things; no first-pass yield"), s.name, "flow"))
        else:
            fpy = 1.0 - bad / n
    if errors is not None and retries is not None and fpy is not None:
        checks.append(Check("info", "rework-bound", (
            f"{s.name}: errors and retries are counted apart; a failure that is retried is one item in each, "
            "so the larger count is taken: the first-pass yield is an upper bound"), s.name, "flow"))
    seconds = _add(errors.seconds if errors else None, retries.seconds if retries else None)
    if fpy is not None and fpy < REWORK_BELOW:
        cost = f", costing {seconds:.3g}s of process time" if seconds is not None else ""
        checks.append(Check("warning", "rework", (
            f"{s.name}: first-pass yield {fpy:.1%} (below {REWORK_BELOW:.0%}){cost}"), s.name, "flow"))
    return Rework(fpy, failed, retried, seconds), checks


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None and b is None else (a or 0.0) + (b or 0.0)


def _inventory(s: Stage, window: Window, gauge: GaugeRead | None,
               wait: Distribution | None) -> tuple[Inventory | None, list[Check]]:
    """The gauge's statistics (when the spec names one) and Little's rate x wait (when the
    stage has a wait histogram with a sum)."""
    little = wait.mean * wait.count / window.seconds if wait is not None and wait.mean is not None else None
    if gauge is None:
        return (Inventory(None, None, little, source=SOURCE) if little is not None else None), []
    checks = [Check(c.level, c.code, f"{s.name} inventory: {c.message}", s.name, "inventory") for c in gauge.checks]
    empty = Inventory(None, None, little, source=SOURCE, provenance=gauge.provenance)
    v, low = gauge.values, gauge.minimum
    if v.size == 0:
        if not any(c.code == "query-rejected" for c in gauge.checks):
            checks.append(Check("warning", "inventory-missing", (
                f"{s.name} inventory: no series of {gauge.provenance} in the window; no inventory"),
                s.name, "inventory"))
        return empty, checks
    if not np.all(np.isfinite(v)) or not np.all(np.isfinite(low)) or np.any(low < 0):
        finite = low[np.isfinite(low)]
        seen = f"went as low as {float(finite.min()):g}" if finite.size else "is not a number"
        checks.append(Check("error", "inventory-negative", (
            f"{s.name} inventory: {gauge.provenance} {seen}; items waiting cannot be negative (a lag computed "
            "against a stale offset, or not a queue depth): no inventory"),
            s.name, "inventory"))
        return empty, checks
    covered = v.size * gauge.step / window.seconds
    if covered < GAUGE_COVERAGE:
        checks.append(Check("info", "inventory-gaps", (
            f"{s.name} inventory: the gauge had data over {covered:.0%} of the window; mean and peak are of "
            "that part"), s.name, "inventory"))
    mean, peak = float(v.mean()), float(v.max())
    checks += _inventory_checks(s, window, gauge, mean, peak, little)
    return Inventory(mean, peak, little, _hourly(gauge), SOURCE, gauge.provenance), checks


def _inventory_checks(s: Stage, window: Window, gauge: GaugeRead, mean: float, peak: float,
                      little: float | None) -> list[Check]:
    checks = []
    if little is not None and abs(mean - little) > max(1.0, LITTLE_TOLERANCE * max(mean, little)):
        checks.append(Check("warning", "little-disagrees", (
            f"{s.name}: the gauge says {mean:.3g} items wait on average, the wait histogram's arrival rate x "
            f"mean wait {little:.3g} (Little's law): the gauge counts something else (offsets, several "
            "queues) or the wait histogram misses part of the wait"), s.name, "inventory"))
    t = gauge.times
    if t.size >= 3 and float(np.ptp(t)) > 0:
        slope = float(np.polyfit(t - t[0], gauge.values, 1)[0])
        growth = slope * window.seconds
        if growth > max(1.0, 0.5 * peak):
            checks.append(Check("warning", "inventory-growing", (
                f"{s.name}: the items waiting grew by about {growth:.3g} over the window (peak {peak:.3g}): "
                "arrivals outpace the stage's capacity"), s.name, "inventory"))
    return checks


def _hourly(gauge: GaugeRead) -> tuple[float | None, ...]:
    """The gauge's mean per UTC hour of day (each point stands for the step ending at it)."""
    hours = (np.floor((gauge.times - gauge.step / 2) / HOUR) % 24).astype(int)
    sums = np.bincount(hours, weights=gauge.values, minlength=24)
    counts = np.bincount(hours, minlength=24)
    return tuple(float(sums[h] / counts[h]) if counts[h] else None for h in range(24))


def _utilisation(s: Stage, window: Window, process: Distribution | None,
                 hourly: Sequence[HourBuckets] | None) -> tuple[Utilisation | None, list[Check]]:
    mean = process.mean if process is not None else None
    if process is None or mean is None:
        if s.workers is None:
            return None, []
        return Utilisation(None, s.workers, "spec", None), [Check("warning", "utilisation-unknown", (
            f"{s.name}: no process time with a sum in the window; no utilisation or capacity"), s.name, "flow")]
    busy = mean * process.count
    if s.workers is None:
        return Utilisation(None, None, None, None, busy_seconds=busy), [Check("info", "workers-unknown", (
            f"{s.name}: workers not set (`workers:` in the spec); {busy / window.seconds:.3g} were busy on "
            "average, so at least that many work there; no utilisation or capacity"), s.name, "flow")]
    value = busy / (window.seconds * s.workers)
    checks: list[Check] = []
    if value > 1.0 + 1e-9:
        checks.append(Check("warning", "workers-too-few", (
            f"{s.name}: busy {busy:.3g}s in a {window.seconds:.0f}s window is more than {s.workers} workers can "
            "be: the spec's workers are too few (or the process time overlaps itself); no utilisation"),
            s.name, "flow"))
        return Utilisation(None, s.workers, "spec", None, busy_seconds=busy), checks
    capacity = s.workers / mean if mean > 0 else None
    peak, headroom = _peak_hour(hourly, mean, s.workers, capacity)
    if peak is not None and peak > 1.0 + 1e-9:
        checks.append(_overloaded(s, peak))
        return Utilisation(value, s.workers, "spec", capacity, None, headroom, busy), checks
    high = peak if peak is not None else value
    if high > UTILISATION_HIGH:
        when = "in the peak hour" if peak is not None else "over the window"
        checks.append(Check("warning", "utilisation-high", (
            f"{s.name}: {high:.0%} busy {when} (above {UTILISATION_HIGH:.0%}): waits climb steeply from here"),
            s.name, "flow"))
    return Utilisation(value, s.workers, "spec", capacity, peak, headroom, busy), checks


def _peak_hour(hourly: Sequence[HourBuckets] | None, mean: float, workers: int,
               capacity: float | None) -> tuple[float | None, float | None]:
    """The busiest whole hour's utilisation (its arrivals at the window's mean process time)
    and the headroom of capacity over its arrival rate; None without hourly counts."""
    if not hourly:
        return None, None
    per_hour: dict[float, float] = {}
    for h in hourly:
        top = h.buckets.get(math.inf)
        if top is not None:
            per_hour[h.start] = per_hour.get(h.start, 0.0) + top
    if not per_hour:
        return None, None
    rate = max(per_hour.values()) / HOUR
    return rate * mean / workers, (capacity / rate if capacity is not None and rate > 0 else None)


def _overloaded(s: Stage, peak: float) -> Check:
    """The peak hour's arrivals need more than the workers: no utilisation can say that (it
    is at most 1), so no peak-hour figure; the check gives the offered load."""
    return Check("warning", "utilisation-high", (
        f"{s.name}: the peak hour's arrivals x mean process time need {peak:.0%} of {s.workers} workers: "
        "busy throughout that hour and the queue grew; no peak-hour utilisation"), s.name, "flow")
