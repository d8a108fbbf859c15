"""The map's two verdicts on the whole stream: the bottleneck (decided on intervals, so two
stages whose intervals overlap are both named) and the flow efficiency (process over lead
time, from exact means where every part has them). Pure functions of the stage results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mapper.analysis.map_model import Bottleneck, FlowEfficiency, StageResult
from mapper.core.distribution import Distribution, Estimate, SampleDistribution


def find_bottleneck(stage_results: Sequence[StageResult], q: float) -> Bottleneck | None:
    """The bottleneck at quantile ``q`` among the stages with a hop distribution, with every
    stage whose interval overlaps the slowest lower bound as a candidate."""
    measured = [(s.stage.name, s.total.quantile(q)) for s in stage_results if s.total is not None]
    if not measured:
        return None
    ranked = sorted(measured, key=lambda m: -_estimate_rank(m[1]))
    floor = max((e.low if e.low is not None else -math.inf) for _, e in measured)
    if floor == -math.inf:
        floor = max(_estimate_rank(e) for _, e in measured)
    candidates = tuple(n for n, e in ranked if (e.high if e.high is not None else math.inf) >= floor)
    return Bottleneck(ranked[0][0], q, ranked[0][1], candidates if len(candidates) > 1 else (ranked[0][0],))


def _estimate_rank(e: Estimate) -> float:
    if e.value is not None:
        return e.value
    return e.low if e.low is not None else -math.inf


def flow_efficiency(path: Sequence[StageResult], lead_time: Distribution | None) -> FlowEfficiency | None:
    """Process over lead time along the path: exact means when every part has a sum.

    With a per-trace lead time (traces), its mean is the lead; else the lead is the sum of
    the mean waits and process times.
    """
    proc: list[Distribution] = []
    wait: list[Distribution] = []
    for s in path:
        for name, bucket in (("process", proc), ("wait", wait)):
            r = s.part(name)
            if r is not None:
                if r.distribution is None:
                    return None
                bucket.append(r.distribution)
    if not proc:
        return None
    means = [d.mean for d in proc + wait]
    if all(m is not None for m in means):
        p: float = sum(d.mean for d in proc)  # type: ignore[misc]
        lead: float = p + sum(d.mean for d in wait)  # type: ignore[misc]
        if isinstance(lead_time, SampleDistribution) and lead_time.mean:
            lead = lead_time.mean
        method = "mean"
    else:
        medians = [d.quantile(0.5).value for d in proc + wait]
        if any(m is None for m in medians):
            return None
        p = sum(medians[: len(proc)])  # type: ignore[arg-type]
        lead = sum(medians)  # type: ignore[arg-type]
        method = "p50"
    if lead <= 0:
        return None
    return FlowEfficiency(p / lead, method, p, lead)
