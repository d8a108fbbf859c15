"""Why a run exits 1, in one line per reason (for the CLI's stderr and for logs).

One line per broken objective (``objective broken: end_to_end p99 <= 2s: 2.58s [2.5s..2.7s]``,
or ``>2.58s`` when only a lower bound is known) and one per regression
(``regression: alerting process p99: 10ms -> 30ms (3.00x, ...)``).
"""

from __future__ import annotations

from collections.abc import Sequence

from mapper.analysis.baseline import Change
from mapper.analysis.latency import LatencyMap, ObjectiveResult
from mapper.core.durations import format_duration


def objective_line(o: ObjectiveResult) -> str:
    e = o.estimate
    if e is None:
        seen = "no data"
    elif e.value is not None:
        lo = "-∞" if e.low is None else format_duration(e.low)
        hi = "∞" if e.high is None else format_duration(e.high)
        seen = f"{format_duration(e.value)} [{lo}..{hi}]"
    else:
        seen = f">{format_duration(e.low)}" if e.low is not None else "no value"
    return (f"objective broken: {o.objective.label} <= "
            f"{format_duration(o.objective.threshold)}: {seen}")


def failure_lines(lm: LatencyMap, regressions: Sequence[Change]) -> list[str]:
    """Every reason for exit code 1, broken objectives first."""
    return ([objective_line(o) for o in lm.objectives if o.status == "broken"]
            + [f"regression: {c.message()}" for c in regressions])
