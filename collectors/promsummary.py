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


def summary_result(where: str, provenance: str, series: list[SummarySeries],
                   checks: list[Check]) -> MeasurementResult:
    """The measurement result for a summary family's series (already scaled to seconds)."""
    checks = list(checks)
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
