"""From the flow's sums to the map's values and checks (issue 27), and the one assembly of a
stream's flow whatever each stage was measured from.

* :func:`traced_flows`: each traced stage's :class:`~mapper.analysis.flow_model.StageFlow`
  (``source="traces"``) from :class:`~mapper.analysis.flow.FlowSums`, with the checks only
  traces can raise: ``workers-unknown``, ``consumers-without-producer``, ``little-disagrees``,
  ``inventory-growing`` (the waiting count's trend), ``redelivery-beyond-window``;
* :func:`assemble_flow`: the stream's flow in the spec's order from the traced stages and the
  metered ones (a stage measured both ways takes the metered flow, as the map's parts do);
* :func:`flow_checks`: the checks any source's flow gets: ``rework``, ``utilisation-high``,
  ``inventory-growing`` (arrivals above capacity).

A figure the data cannot give is None with a check saying why, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from mapper.analysis.flow import SLICES, FlowSums, StageSums, hour_edges
from mapper.analysis.flow_model import Handover, Inventory, Rework, StageFlow, StreamFlow, Utilisation
from mapper.core.model import Check
from mapper.core.spec import StreamSpec

#: First-pass yield below which a stage gets a ``rework`` check.
FPY_LIMIT = 0.99
#: Peak-hour utilisation above which a stage gets ``utilisation-high``.
UTILISATION_LIMIT = 0.8
#: Relative gap between the inventory's mean and Little's rate x wait beyond which ``little-disagrees``.
LITTLE_TOLERANCE = 0.05
#: The last third of the window's mean waiting count above this many times the first third's
#: (and by at least one item): ``inventory-growing``.
GROWTH = 2.0


def traced_flows(sums: FlowSums, downstream: Mapping[str, list[str]], workers: Mapping[str, int | None]
                 ) -> tuple[dict[str, StageFlow], list[Check]]:
    """Each traced stage's flow over the window and the trace-only checks. ``downstream``:
    each stage's next stages (spec order); ``workers``: the spec's ``workers:`` per stage."""
    out: dict[str, StageFlow] = {}
    checks: list[Check] = []
    for name, s in sums.stages.items():
        flow, c = _stage_flow(name, s, sums, downstream.get(name, []), workers.get(name))
        out[name] = flow
        checks += c
    return out, checks


def _stage_flow(name: str, s: StageSums, sums: FlowSums, nexts: list[str], spec_workers: int | None
                ) -> tuple[StageFlow, list[Check]]:
    window = sums.seconds
    n_in = s.items_in
    last = not nexts
    out = None if last else float(s.out)
    handovers = tuple(Handover(d, float(s.handed.get(d, 0)), s.handed.get(d, 0) / n_in if n_in else None)
                      for d in nexts)
    rework = Rework((n_in - s.not_first_pass) / n_in if n_in else None, float(s.failed), float(s.retried),
                    s.rework_s, s.rework_completed_s / sums.lead_s if sums.lead_s > 0 else None)
    inventory, checks = _inventory(name, s, sums)
    util, c = _utilisation(name, s, sums, spec_workers)
    checks += c
    if s.failed_late:
        checks.append(Check("info", "redelivery-beyond-window", (
            f"{name}: {s.failed_late:,} items failed near the window's end without a retry in it; their "
            "redelivery may come after the window: counted failed, not retried"), name))
    flow = StageFlow(name, "traces", float(n_in), out, float(n_in - s.out) if not last else float(n_in),
                     (s.out / n_in if n_in else None) if not last else None, handovers,
                     n_in / window if window > 0 else None,
                     (s.out / window if window > 0 else None) if not last else None,
                     rework if n_in else None, inventory, util)
    unseen = [d for d in nexts if n_in and (d not in sums.stages or not sums.stages[d].items_in)]
    if unseen:
        # a next stage with no span at all: what was handed to it cannot be told from what
        # stopped here (its spans missing, or another service name), so no out, stop or yield
        checks.append(Check("warning", "next-stage-no-spans", (
            f"{name}: its next stage {', '.join(unseen)} has no span in the window: the items handed on "
            "cannot be told from those that stopped here (no items out, stopped or yield)"), name, "flow"))
        flow = replace(flow, items_out=None, stopped=None, yield_=None, throughput_out_per_s=None,
                       handovers=tuple(replace(h, share=None) if h.to in unseen else h for h in handovers))
    return flow, checks


def _inventory(name: str, s: StageSums, sums: FlowSums) -> tuple[Inventory | None, list[Check]]:
    """The items waiting before the stage, or None for a first stage (no hand-over to wait from)."""
    window = sums.seconds
    checks: list[Check] = []
    if s.no_producer:
        checks.append(Check("warning", "consumers-without-producer", (
            f"{name}: {s.no_producer:,} of {s.items_in:,} items have no hand-over from the upstream stage in "
            "the data (producer spans not sampled, outside the window, or not linked): their wait is unknown, "
            "left out of the inventory's mean"), name, "wait"))
    if not s.waits or window <= 0:
        return None, checks
    mean = s.wait_s / window
    little = (s.items_in / window) * (s.wait_s / s.waits)
    if abs(mean - little) > LITTLE_TOLERANCE * max(mean, little):
        checks.append(Check("warning", "little-disagrees", (
            f"{name} inventory: the mean waiting from the spans is {mean:.4g} items, arrival rate x mean wait "
            f"(Little's law) {little:.4g}: items arrive whose wait the spans do not show (missing spans)"),
            name, "wait"))
    edges = hour_edges(sums.window)
    secs = np.diff(edges)
    hod = (np.floor(edges[:-1] / 3600.0).astype(np.int64)) % 24
    num = np.bincount(hod, weights=s.wait_h, minlength=24)
    den = np.bincount(hod, weights=secs, minlength=24)
    hourly = tuple(float(num[h] / den[h]) if den[h] > 0 else None for h in range(24))
    peak: float | None
    if s.peak is not None:
        peak, resolution = float(s.peak), 0.0
    else:
        # merged: the most waiting at the grid's instants, or in one partition alone (both lower
        # bounds); the parts' peaks summed bound it from above. Where the two meet it is exact;
        # otherwise no number (a lower bound printed as "the peak" would be a wrong one)
        low = float(max(np.cumsum(s.grid).max(initial=0), s.part_peak_max))
        resolution = 0.0 if low >= s.part_peak_sum else sums.grid_step
        peak = low if not resolution else None
        if resolution:
            checks.append(Check("info", "inventory-peak-sampled", (
                f"{name} inventory: merged from partitions, the peak is between {low:.0f} (the most items "
                f"waiting at instants {resolution:.3g}s apart, or in one partition) and {s.part_peak_sum} "
                "(the partitions' peaks added): no single figure; exact in memory"), name, "wait"))
    third = SLICES // 3
    first, lastm = (float(s.wait_slices[:third].sum() / (window / SLICES * third)),
                    float(s.wait_slices[-third:].sum() / (window / SLICES * third)))
    if lastm > GROWTH * first and lastm - first >= 1.0:
        checks.append(Check("warning", "inventory-growing", (
            f"{name}: the items waiting grow over the window (mean {first:.3g} in its first third, "
            f"{lastm:.3g} in its last)"), name, "wait"))
    return Inventory(mean, peak, little, hourly, "traces", peak_resolution=resolution), checks


def _utilisation(name: str, s: StageSums, sums: FlowSums, spec_workers: int | None
                 ) -> tuple[Utilisation | None, list[Check]]:
    """busy / (window x workers). Workers from the spec are slots (threads, consumers): busy is
    the summed process time. Workers from instances are the instances: busy is the smaller of
    the summed process time and the instances' merged span intervals (an instance serving
    several items at once is busy once). Busy beyond what the workers can give: no number."""
    window = sums.seconds
    if spec_workers is not None:
        workers, where = spec_workers, "spec"
    elif s.instances and not s.unknown_instances:
        workers, where = len(s.instances), "service.instance.id"
    else:
        why = ("none of its spans carries service.instance.id" if not s.instances else
               f"{s.unknown_instances:,} of its spans carry no service.instance.id")
        return None, [Check("info", "workers-unknown", (
            f"{name}: workers unknown ({why}): no utilisation or capacity; set `workers:` on the stage"), name)]
    if not s.process_n or window <= 0:
        return None, []
    busy, busy_h = s.process_s, s.busy_h
    checks: list[Check] = []
    if where != "spec" and s.union_s < s.process_s:
        busy, busy_h = s.union_s, s.union_h
        if s.peak is None and s.process_s - s.union_s > 1e-6:
            checks.append(Check("info", "utilisation-upper-bound", (
                f"{name}: its instances serve several items at once; merged from partitions, their busy "
                "intervals overlapping across partitions are counted twice: utilisation and busy time are "
                "upper bounds, capacity a lower bound (exact in memory)"), name, "utilisation"))
    if busy > window * workers * (1 + 1e-9):
        return Utilisation(None, workers, where, None, busy_seconds=busy), [*checks, Check(
            "warning", "workers-too-few", (
                f"{name}: busy {busy:.4g}s in a {window:.0f}s window is more than {workers} workers can be "
                f"({where}): the workers are too few, or each serves several items at once (count the "
                "concurrent slots in `workers:`); no utilisation"), name, "utilisation")]
    # items finished per busy second, times the workers: workers / mean process time when each
    # worker serves one item at a time, higher when it serves several
    capacity = workers * s.process_n / busy if busy > 0 else None
    secs = np.diff(hour_edges(sums.window))
    h = int(np.argmax(s.arrivals_h)) if s.arrivals_h.size else -1
    peak = headroom = None
    if h >= 0 and secs[h] > 0:
        peak = float(busy_h[h] / (secs[h] * workers))
        if peak > 1 + 1e-9:  # an hour busier than its workers can be: the same doubt, in that hour
            checks.append(Check("warning", "workers-too-few", (
                f"{name}: busy {busy_h[h]:.4g}s in its peak hour ({secs[h]:.0f}s) is more than {workers} workers "
                f"can be ({where}); no peak-hour utilisation"), name, "utilisation"))
            peak = None
        rate = s.arrivals_h[h] / secs[h]
        headroom = capacity / rate if capacity is not None and rate > 0 else None
    return Utilisation(busy / (window * workers), workers, where, capacity, peak, headroom, busy), checks


def assemble_flow(spec: StreamSpec, traced: Mapping[str, StageFlow], metered: Mapping[str, StageFlow],
                  items_completed: float | None = None) -> StreamFlow | None:
    """The stream's flow in the spec's order: each stage's metered flow (a stage measured by
    metrics too keeps the metrics', as its wait and process do), else its traced one; stages
    with neither are left out. ``items_completed``: items that reached the stream's end (the
    lead time's items; None: the metered last stages' ``items_in`` summed when known)."""
    stages = tuple(f for s in spec.stages if (f := metered.get(s.name) or traced.get(s.name)) is not None)
    if not stages:
        return None
    if items_completed is None:
        leaves = {s.name for s in spec.stages} - {u for s in spec.stages for u in s.upstream}
        ends = [f.items_in for f in stages if f.stage in leaves]
        known = [e for e in ends if e is not None]
        items_completed = float(sum(known)) if known and len(known) == len(ends) else None
    return StreamFlow(stages, items_completed)


def flow_checks(flow: StreamFlow) -> list[Check]:
    """The checks any source's flow gets: ``rework``, ``utilisation-high`` and
    ``inventory-growing`` (arrivals above the stage's capacity)."""
    out = []
    for f in flow.stages:
        r, u = f.rework, f.utilisation
        if r is not None and r.first_pass_yield is not None and r.first_pass_yield < FPY_LIMIT:
            cost = "" if r.seconds is None else f"; the extra attempts took {r.seconds:.4g}s"
            share = "" if r.share_of_lead is None else f" ({r.share_of_lead:.2%} of the lead time)"
            out.append(Check("warning", "rework", (
                f"{f.stage}: first-pass yield {r.first_pass_yield:.2%} ({r.failed or 0:,.0f} items failed, "
                f"{r.retried or 0:,.0f} retried){cost}{share}"), f.stage))
        if u is not None and u.peak_hour is not None and u.peak_hour > UTILISATION_LIMIT:
            out.append(Check("warning", "utilisation-high", (
                f"{f.stage}: {u.peak_hour:.0%} busy in the peak hour with {u.workers} workers: waits climb "
                "steeply near full utilisation"), f.stage))
        if (u is not None and u.capacity_per_s is not None and f.throughput_in_per_s is not None
                and f.throughput_in_per_s > u.capacity_per_s):
            out.append(Check("warning", "inventory-growing", (
                f"{f.stage}: items arrive at {f.throughput_in_per_s:.4g}/s, above its capacity of "
                f"{u.capacity_per_s:.4g}/s: the queue grows"), f.stage))
    return out


def new_checks(have: list[Check], more: list[Check]) -> list[Check]:
    """The checks of ``more`` whose (code, stage) ``have`` does not hold yet (a metered
    stage's ``rework`` is said once), each once; ``have`` itself is left whole."""
    seen = {(c.code, c.stage) for c in have}
    out = []
    for c in more:
        if (c.code, c.stage) not in seen:
            seen.add((c.code, c.stage))
            out.append(c)
    return out

