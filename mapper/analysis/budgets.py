"""Per-hop budgets: split an end-to-end objective into one threshold per hop that, held by
every hop, keeps the objective.

Why the per-hop percentile is higher than the end-to-end one: percentiles do not add up (the
sum of the hops' p99s is not the lead time's p99, and with dependent hops it need not even
bound it). The union bound does hold whatever the dependence: if each of ``k`` hops exceeds
its budget ``b_i`` with probability at most ``m = (1 - q) / k``, the lead time exceeds
``sum(b_i)`` with probability at most ``1 - q``. So a p99 end-to-end objective over three
hops becomes budgets at p99.7 (the per-hop miss ``(1 - q) / k`` is rounded *down* to a
mantissa of 1, 1.5, 2, 2.5, 3, 4 ... 9, which keeps the bound and gives a readable percentile), and the budgets
add up to the threshold.

Time in the lead that no hop explains (gaps between stages in traces) is a *fixed part*:
its upper quantile at the same per-hop miss is reserved first (one more term of the union
bound). When the fixed parts alone reach the threshold, no split can meet the objective and
no budget is given (:attr:`BudgetPlan.feasible` is False, with an ``error`` check).

The split follows the hops' current shares of the tail (their per-hop percentile) unless
every stage on the path has a ``weight`` in the spec. Every plan is then verified on the
data: every hop capped at its budget with the what-if machinery (trace replay when the lead
time comes from traces, else convolution) and the end-to-end percentile recomputed; the
margin is the threshold minus its upper bound.

Pure functions over a :class:`~mapper.analysis.latency.LatencyMap`; no I/O, no formatting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mapper.analysis.latency import LatencyMap
from mapper.analysis.merge import MergedSamples
from mapper.analysis.whatif import future_state
from mapper.core.distribution import Distribution, Estimate, HistogramDistribution, SampleDistribution
from mapper.core.errors import DataError, UsageError
from mapper.core.model import Check
from mapper.core.quantiles import min_count, percentile_label
from mapper.core.spec import Objective
from mapper.core.spec.extra import Change

#: A cap this small removes a hop from the replayed lead time while keeping the hop on the
#: path (what-if refuses removing every hop): what is left is the time no hop explains.
_NEAR_ZERO = 1e-12
#: Per-hop misses are rounded down to these mantissas: readable percentiles (p99.7, p99.85,
#: p99.75), never a larger miss than the exact split.
_MANTISSAS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)


@dataclass(frozen=True)
class HopBudget:
    """One hop's budget: its ``q``-quantile must stay at or below ``threshold`` seconds.

    ``current`` is the hop's measured ``q``-quantile now; ``share`` the fraction of the
    split it got; ``over`` is True when the hop already exceeds its budget (its value, or
    its lower bound when there is no value, is above the threshold).
    """

    stage: str
    owner: str | None
    q: float
    threshold: float
    share: float
    current: Estimate | None
    over: bool

    @property
    def label(self) -> str:
        return percentile_label(self.q)


@dataclass(frozen=True)
class BudgetPlan:
    """The budgets for one end-to-end objective, and how they were checked.

    ``budgets`` is empty when no split can meet the objective (``feasible`` False; the
    checks say why). ``reserve`` is the time kept for what no hop explains (seconds).
    ``verified`` is the end-to-end ``objective.q``-quantile with every hop capped at its
    budget, by ``method`` (trace replay or convolution); ``margin`` is the threshold minus
    its upper bound (``None`` when unbounded). Hops over budget come first in ``budgets``.
    """

    objective: Objective
    hop_q: float
    split: str  # "tail shares" | "weights"
    reserve: float
    budgets: tuple[HopBudget, ...]
    verified: Estimate | None
    method: str | None
    checks: tuple[Check, ...]

    @property
    def feasible(self) -> bool:
        return bool(self.budgets)

    @property
    def margin(self) -> float | None:
        if self.verified is None or self.verified.high is None:
            return None
        return self.objective.threshold - self.verified.high

    @property
    def holds(self) -> bool:
        """True when the capped replay or convolution shows the objective met, bounds included."""
        m = self.margin
        return m is not None and m >= 0


def hop_quantile(q: float, k: int) -> float:
    """The per-hop quantile for ``k`` union-bound terms: miss ``(1-q)/k`` rounded down to a
    readable mantissa (never above the exact split, so the bound holds)."""
    if k < 1:
        raise ValueError("need at least one hop")
    miss = (1.0 - q) / k
    digits = math.floor(math.log10(miss))
    mantissa = round(miss / 10**digits, 9)
    rounded = max(m for m in _MANTISSAS if m <= mantissa) * 10**digits
    return round(1.0 - rounded, 12)


def plan_budgets(lm: LatencyMap) -> tuple[BudgetPlan, ...]:
    """One :class:`BudgetPlan` per end-to-end objective of the spec.

    Raises :class:`UsageError` when the spec has no end-to-end objective or gives weights to
    only some stages of the path, :class:`DataError` when there is no end to end to split.
    """
    objectives = [o for o in lm.spec.objectives if o.target == "end_to_end"]
    if not objectives:
        raise UsageError(f"{lm.spec.path}: objectives: no end_to_end objective to split "
                         "(add `objectives: {end_to_end: {p99: 2s}}`)")
    if lm.end_to_end is None:
        raise DataError("no end-to-end lead time: a stage on the path has no data; no budget can be verified")
    stages = [lm.spec.stage(n) for n in lm.path]
    weighted = [s for s in stages if s.weight is not None]
    if weighted and len(weighted) != len(stages):
        missing = ", ".join(s.name for s in stages if s.weight is None)
        raise UsageError(f"{lm.spec.path}: stages[].weight: give a weight to every stage on the path "
                         f"or to none (missing: {missing})")
    return tuple(_plan(lm, o, bool(weighted)) for o in objectives)


def _unexplained(lm: LatencyMap) -> SampleDistribution | MergedSamples | None:
    """Per traced item, the lead time no hop explains (gaps, overlap), or ``None`` (metrics;
    a partitioned analysis without its trace replay)."""
    if lm.end_to_end_method != "traces" or lm.traces is None:
        return None
    if not lm.traces.can_replay:
        return None
    fs = future_state(lm, [Change(n, "cap", _NEAR_ZERO) for n in lm.path])
    if isinstance(fs.future, MergedSamples):  # replayed partition by partition: the same values
        return fs.future.shifted(-_NEAR_ZERO * len(lm.path))
    if not isinstance(fs.future, SampleDistribution):
        return None
    return SampleDistribution(fs.future.values - _NEAR_ZERO * len(lm.path))


def _largest(d: SampleDistribution | MergedSamples) -> float | None:
    if isinstance(d, MergedSamples):
        return d.order_stat(d.n) if d.n else None
    return float(d.values[-1]) if d.values.size else None


def _plan(lm: LatencyMap, o: Objective, weighted: bool) -> BudgetPlan:
    checks: list[Check] = []
    gaps = _unexplained(lm)
    top = _largest(gaps) if gaps is not None else None
    positive_gaps = top is not None and top > 1e-9
    k = len(lm.path) + (1 if positive_gaps else 0)
    hq = hop_quantile(o.q, k)
    label = f"end_to_end {percentile_label(o.q)} <= {o.threshold:g}s"
    reserve = 0.0
    if positive_gaps and gaps is not None:
        ge = gaps.quantile(hq)
        if ge.high is None:
            checks.append(Check("error", "budget-fixed-unbounded", (
                f"{label}: the time no hop explains (gaps between stages) has no bound at {percentile_label(hq)} "
                f"from {gaps.count:,.0f} items; no budget can be shown to hold")))
            return BudgetPlan(o, hq, "weights" if weighted else "tail shares", math.nan, (), None, None,
                              tuple(checks))
        reserve = max(0.0, ge.high)
    available = o.threshold - reserve
    if available <= 0:
        checks.append(Check("error", "budget-infeasible", (
            f"{label}: the fixed parts alone take {reserve:g}s at {percentile_label(hq)} (time between "
            "stages no hop explains); no split of the hops can meet it")))
        return BudgetPlan(o, hq, "weights" if weighted else "tail shares", reserve, (), None, None, tuple(checks))
    totals = {s.stage.name: s.total for s in lm.stages}
    current = {n: (d.quantile(hq) if d is not None else None) for n, d in totals.items() if n in lm.path}
    for n, ce in current.items():
        if ce is None or ce.value is None:
            why = ce.note if ce is not None and ce.note else "no data"
            count = ce.count if ce is not None else 0
            checks.append(Check("warning", "budget-percentile-too-high", (
                f"{n}: {percentile_label(hq)} (the per-hop percentile for {label}) cannot be measured: {why}; "
                f"{min_count(hq):,.0f} observations are needed, {count:,.0f} were seen"), n))
    if weighted:
        raw = {n: float(lm.spec.stage(n).weight or 0.0) for n in lm.path}
        split = "weights"
    else:
        split = "tail shares"
        unknown = [n for n in lm.path if current[n] is None or current[n].value is None]  # type: ignore[union-attr]
        if unknown:
            checks.append(Check("error", "budget-no-shares", (
                f"{label}: the hops' shares of the tail are unknown for {', '.join(unknown)}; give every stage "
                "on the path a `weight` in the spec, or widen the window")))
            return BudgetPlan(o, hq, split, reserve, (), None, None, tuple(checks))
        # A hop whose tail is zero still gets a sliver: a budget (a cap) must be > 0.
        raw = {n: max(float(current[n].value), 1e-9) for n in lm.path}  # type: ignore[union-attr, arg-type]
    total = sum(raw.values())
    budgets = []
    for n in lm.path:
        b = available * raw[n] / total
        e = current[n]
        now = None if e is None else (e.value if e.value is not None else e.low)
        budgets.append(HopBudget(n, lm.spec.stage(n).owner, hq, b, raw[n] / total, e,
                                 now is not None and now > b))
        checks += _range_checks(lm, n, b, hq)
    budgets.sort(key=lambda h: (not h.over, -_ratio(h) if h.over else 0.0))
    fs = future_state(lm, [Change(h.stage, "cap", h.threshold) for h in budgets])
    verified = fs.future.quantile(o.q)
    if verified.high is None or verified.high > o.threshold:
        checks.append(Check("error", "budget-not-verified", (
            f"{label}: with every hop capped at its budget the lead time's {percentile_label(o.q)} is "
            f"{_show(verified)} (up to {_show_high(verified)}) by {fs.method}; the budgets are not shown to hold")))
    checks += [Check("warning", "budget-exceeded", (
        f"{h.stage}: {h.label} is {_show(h.current)} now, over its budget {h.threshold:g}s for {label}"), h.stage)
        for h in budgets if h.over]
    return BudgetPlan(o, hq, split, reserve, tuple(budgets), verified, fs.method, tuple(checks))


def _ratio(h: HopBudget) -> float:
    e = h.current
    now = None if e is None else (e.value if e.value is not None else e.low)
    return (now or 0.0) / h.threshold if h.threshold > 0 else math.inf


def _show(e: Estimate | None) -> str:
    if e is None:
        return "unknown"
    if e.value is not None:
        return f"{e.value:g}s"
    return f">{e.low:g}s" if e.low is not None else "unknown"


def _show_high(e: Estimate) -> str:
    return "unbounded" if e.high is None else f"{e.high:g}s"


def _range_checks(lm: LatencyMap, stage: str, budget: float, hq: float) -> list[Check]:
    """A budget below every observation of the hop, or above its largest finite bucket bound."""
    out = []
    sr = lm.stage_result(stage)
    parts = [r.distribution for r in (sr.wait, sr.process) if r is not None and r.distribution is not None]
    smallest = _smallest(parts) if parts else None
    if smallest is not None and budget < smallest:
        out.append(Check("warning", "budget-below-observations", (
            f"{stage}: budget {budget:g}s is below the smallest observation of the hop ({smallest:g}s): "
            "no item meets it without changing the hop"), stage))
    if len(parts) == 1 and isinstance(parts[0], HistogramDistribution):
        finite = parts[0].upper[np.isfinite(parts[0].upper)]
        if finite.size and budget > float(finite[-1]):
            out.append(Check("warning", "budget-above-buckets", (
                f"{stage}: budget {budget:g}s at {percentile_label(hq)} is above the largest finite bucket bound "
                f"{float(finite[-1]):g}s: Prometheus cannot tell whether it holds; add a bound at it "
                "(`latmap buckets`)"), stage))
    return out


def _smallest(parts: Sequence[Distribution]) -> float | None:
    """A lower bound of the hop's smallest observation: the parts' smallest observations added."""
    total = 0.0
    for d in parts:
        if isinstance(d, SampleDistribution):
            if d.values.size == 0:
                return None
            total += float(d.values[0])
        elif isinstance(d, HistogramDistribution):
            filled = np.nonzero(d.counts > 0)[0]
            if filled.size == 0:
                return None
            low = float(d.lower[filled[0]])
            if not math.isfinite(low):
                return None
            total += low
        else:
            return None
    return total
