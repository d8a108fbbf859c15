"""The flow from traces beside the metrics' count of the same stage: when the traces hold
fewer items than the stage's metrics observed, they are a sample (head or tail sampling, a
collector that drops, another window), and every figure that scales with the number of
items (throughput, inventory, utilisation, headroom) would undercount the stage. Those are
not given then; a check says why. Ratios (yield, first-pass yield) and capacity stay: a
uniform sample keeps them, and the sampling checks say when it may not be uniform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from mapper.analysis.flow_model import StageFlow, StreamFlow, Utilisation
from mapper.analysis.map_model import StageResult
from mapper.core.model import Check

#: Traced items below this share of the metric's observations: the traces are a sample.
SAMPLED_BELOW = 0.9


def against_metrics(flow: StreamFlow, stages: Sequence[StageResult]) -> tuple[StreamFlow, list[Check]]:
    """``flow`` with the scale-dependent figures of each traced stage whose metrics counted
    more (by :data:`SAMPLED_BELOW`) left out, and a ``flow-traces-sampled`` check for each."""
    by_name = {s.stage.name: s for s in stages}
    out: list[StageFlow] = []
    checks: list[Check] = []
    for f in flow.stages:
        s = by_name.get(f.stage)
        observed = _observed(s) if s is not None else None
        if f.source != "traces" or observed is None or f.items_in is None or f.items_in >= SAMPLED_BELOW * observed:
            out.append(f)
            continue
        checks.append(Check("warning", "flow-traces-sampled", (
            f"{f.stage}: the flow from traces counts {f.items_in:,.0f} items, the stage's metrics "
            f"{observed:,.0f} observations ({f.items_in / observed:.1%}): the traces are a sample, so the "
            "stage's throughput, inventory and utilisation are not given (yield and first-pass yield hold "
            "for a uniform sample)"), f.stage, "flow"))
        u = f.utilisation
        out.append(replace(f, throughput_in_per_s=None, throughput_out_per_s=None, inventory=None,
                           utilisation=None if u is None else Utilisation(
                               None, u.workers, u.workers_source, u.capacity_per_s)))
    return replace(flow, stages=tuple(out)), checks


def _observed(s: StageResult) -> float | None:
    """The observations the stage's metrics counted over the window (its process, else its
    wait), or None when no metric measures it."""
    for r, m in ((s.process, s.stage.process), (s.wait, s.stage.wait)):
        if m is not None and r is not None and r.distribution is not None:  # a metric measures it (metrics win)
            count = r.distribution.count
            return float(count) if count else None
    return None
