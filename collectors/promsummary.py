"""Prometheus summaries read honestly: one distribution per distinct thing, never merged.

A summary's quantiles were computed by the client over its own sliding window (``max_age``:
10 minutes by default in the Go, Java and Python clients) with a rank-approximate sketch;
latmap can neither check them nor give them an interval (see
:class:`~mapper.core.distribution.SummaryDistribution`).

Series of one family are grouped by their labels minus the instance-like ones
(:data:`INSTANCE_LABELS`):

* one group, one series: that series;
* one group, several instances: the same thing measured by several processes; the map shows
  the worst instance per quantile (a check says so), ``n`` and ``_sum`` are added;
* several groups (``slice="inner_eval"`` vs ``slice="result_sort"``): different things. No
  number is made from them together; each is kept in ``per_instance`` and a
  ``summary-series-differ`` check names the labels and values, asking for a selector.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mapper.core.distribution import SummaryDistribution, percentile_label
from mapper.core.model import Check, MeasurementResult
from mapper.core.redact import remote_text

#: Labels that tell apart processes measuring the same thing, not different things.
INSTANCE_LABELS = frozenset({
    "instance", "pod", "pod_name", "kubernetes_pod_name", "host", "hostname", "node", "container",
    "container_id", "replica", "prometheus_replica",
})


@dataclass(frozen=True)
class SummarySeries:
    """One summary series: its labels (no ``quantile``), quantiles, window count and sum."""

    labels: Mapping[str, str]
    quantiles: Mapping[float, float]
    count: float
    sum: float | None


def quantile_label(text: object) -> float | None:
    """A ``quantile`` label's value as a float in [0, 1]; None for anything else (missing,
    ``"abc"``, ``"2"``, ``"NaN"``): such a series says nothing latmap can place."""
    try:
        q = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return q if 0.0 <= q <= 1.0 else None  # NaN fails both


def invalid_quantile(where: str, series: str, text: object) -> Check:
    """The check for a quantile series whose ``quantile`` label is no quantile (it is left out)."""
    said = "no quantile label" if text is None else f"quantile={remote_text(repr(text), 40)}"
    return Check("error", "invalid-quantile",
                 f"{where}: {remote_text(series, 160)} has {said}, not a number in [0, 1]; the series is left out")


def checked_quantiles(quantiles: Mapping[float, float], series: str, where: str
                      ) -> tuple[dict[float, float], list[Check]]:
    """The quantiles a summary series can show: keys in [0, 1], values finite and >= 0, or NaN
    (no observations; :func:`summary_result` says so). The rest are left out with a check:
    a latency cannot be negative or infinite, and a quantile outside [0, 1] is no percentile."""
    keep: dict[float, float] = {}
    checks: list[Check] = []
    for q, v in sorted(quantiles.items()):
        if not 0.0 <= q <= 1.0:
            checks.append(invalid_quantile(where, series, q))
        elif v < 0 or math.isinf(v):
            checks.append(Check(
                "error", "negative-observations" if v < 0 else "invalid-quantile-value",
                f"{where}: {remote_text(series, 160)} reports {v:g} for {percentile_label(q)}; a latency "
                f"cannot be {'negative' if v < 0 else 'infinite'}, so that percentile is not shown"))
        else:
            keep[q] = v
    return keep, checks


def series_key(labels: Mapping[str, str], drop: Iterable[str] = ()) -> str:
    d = {"quantile", "__name__", *drop}
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k not in d) + "}"


def _merged(per: list[SummarySeries], origin: str) -> SummaryDistribution:
    qs = sorted({q for s in per for q in s.quantiles})
    worst = {q: max((s.quantiles[q] for s in per if q in s.quantiles and not math.isnan(s.quantiles[q])),
                    default=math.nan) for q in qs}
    sums = [s.sum for s in per]
    total = None if any(x is None for x in sums) else float(sum(x for x in sums if x is not None))
    return SummaryDistribution(worst, sum(s.count for s in per), total, origin=origin)


def _checked(s: SummarySeries, where: str, checks: list[Check]) -> SummarySeries:
    """``s`` with its unusable quantiles, count and sum left out (a check for each)."""
    key = series_key(s.labels)
    quantiles, bad = checked_quantiles(s.quantiles, key, where)
    checks += bad
    count, total = s.count, s.sum
    if not (math.isfinite(count) and count >= 0):
        checks.append(Check("warning", "invalid-count", f"{where}: {key} _count increased by {count:g} in the "
                            "window; a count cannot be that, so the sample count is unknown (0)"))
        count = 0.0
    if total is not None and not (math.isfinite(total) and total >= 0):
        checks.append(Check("warning", "negative-sum", f"{where}: {key} _sum increased by {total:g} in the "
                            "window; a latency sum cannot be that, so it is not used (no mean)"))
        total = None
    return SummarySeries(s.labels, quantiles, count, total)


def summary_result(where: str, provenance: str, series: list[SummarySeries],
                   checks: list[Check]) -> MeasurementResult:
    """The measurement result for a summary family's series (already scaled to seconds)."""
    checks = list(checks)
    series = [_checked(s, where, checks) for s in series]
    checks.append(Check(
        "info", "summary-window",
        f"{where}: summary quantiles are computed by each client over its own sliding window "
        "(max_age, 10m by default) at the window's end, not over the window; latmap cannot "
        "verify them, so they have no interval"))
    for s in series:
        nan = [percentile_label(q) for q, v in sorted(s.quantiles.items()) if math.isnan(v)]
        if nan:
            checks.append(Check(
                "warning", "summary-nan",
                f"{where}: {series_key(s.labels)} reports NaN for {', '.join(nan)}: no observations in the "
                "client's sliding window, so no percentile"))
    per = tuple((series_key(s.labels), SummaryDistribution(s.quantiles, s.count, s.sum,
                                                           origin=f"summary {series_key(s.labels)}"))
                for s in sorted(series, key=lambda s: series_key(s.labels)))
    groups: dict[str, list[SummarySeries]] = {}
    for s in series:
        groups.setdefault(series_key(s.labels, INSTANCE_LABELS), []).append(s)
    if len(groups) > 1:
        differ = sorted({k for s in series for k in s.labels if k not in INSTANCE_LABELS
                         and k not in ("quantile", "__name__")
                         and len({x.labels.get(k) for x in series}) > 1})
        values = "; ".join(f"{k}: {', '.join(sorted({x.labels.get(k, '') for x in series}))}" for k in differ)
        checks.append(Check(
            "warning", "summary-series-differ",
            f"{where}: {len(groups)} different series (labels {', '.join(differ)} differ: {values}); "
            "summary quantiles of different things cannot be combined, so no number is shown for "
            f"them together; add a selector, e.g. {{{differ[0]}: ...}}, to map one of them"))
        return MeasurementResult(None, provenance, tuple(checks), per)
    (group,) = groups.values()
    if len(group) == 1:
        return MeasurementResult(per[0][1], provenance, tuple(checks), per)
    checks.append(Check(
        "warning", "summary-not-aggregatable",
        f"{where}: {len(group)} instances; summary quantiles cannot be aggregated, so the map "
        "shows the worst instance per quantile (use a histogram to get the true percentile)"))
    return MeasurementResult(_merged(group, f"worst of {len(group)} summary instances"),
                             provenance, tuple(checks), per)
