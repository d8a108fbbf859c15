"""A stage's flow metrics from Prometheus: a counter's exact increase over the window and a
gauge over the window at a step (issue 27).

* Counters (an error or retry counter, or a histogram's ``_count`` under an outcome label)
  are counted like histogram buckets (:mod:`collectors.promcount`): per series, the exact
  increase over the window, a reset counted as a restart from zero and a series born in the
  window counted from zero; then added across series. ``increase()`` per series would
  extrapolate to the window's edges and drop a new series' first count; a rate averaged
  over steps would be no count at all.
* A gauge (queue depth, consumer lag) is read with one range query at a fixed step:
  ``sum`` across its series (the items waiting before the stage, over every partition or
  queue) and ``min`` of them (a negative series can hide in a positive sum), each point
  standing for the step that ends at it.
"""

from __future__ import annotations

import math

import numpy as np

from collectors import promql
from collectors.promcount import exact_increases
from collectors.prometheus import MAX_POINTS, PrometheusClient
from mapper.core.flowread import CounterRead, GaugeRead
from mapper.core.model import Check, Window
from mapper.core.redact import remote_text
from mapper.core.spec import SourceSpec
from mapper.core.spec.flow import FlowMetric

#: The finest step a gauge is read at (a common scrape interval): finer would only repeat
#: samples; a window of more than ~46 hours is read at a coarser step (Prometheus's
#: 11,000-point limit), which the provenance names.
GAUGE_STEP = 15.0


def _sel(metric: FlowMetric, suffix: str = "") -> str:
    return promql.selector(metric.name + suffix, metric.selector, metric.matchers)


def counter_increase(client: PrometheusClient, spec: SourceSpec, metric: FlowMetric, window: Window) -> CounterRead:
    """The exact increase of ``metric`` over ``window``, summed across its series (for a
    ``histogram`` metric: its ``_count``, with its ``_sum`` in seconds)."""
    suffix = "_count" if metric.kind == "histogram" else ""
    sel = _sel(metric, suffix)
    where = f"{metric.describe()} ({metric.place})"
    inc = exact_increases(client.query, sel, window, where)
    provenance = f"{spec.name} ({spec.url}): exact increase of {sel}"
    checks = list(inc.checks)
    if not inc.series:
        return CounterRead(None, provenance, tuple(checks))
    if inc.resets:
        checks.append(Check("info", "counter-reset", (
            f"{where}: {inc.resets} series reset in the window (a restart); counted sample by sample, a drop "
            "as a restart from zero")))
    if inc.born:
        checks.append(Check("info", "series-born", (
            f"{where}: {inc.born} series began inside the window; counted from zero at their first sample")))
    total: float | None = inc.total
    if total is None or not math.isfinite(total) or total < 0:
        checks.append(Check("warning", "counter-invalid", f"{where}: increased by {total!r}; not a count"))
        total = None
    seconds = None
    if metric.kind == "histogram":
        s = exact_increases(client.query, _sel(metric, "_sum"), window, where)
        checks += s.checks
        if s.series and math.isfinite(s.total) and s.total >= 0:
            seconds = s.total * metric.scale
    return CounterRead(total, provenance, tuple(checks), seconds, len(inc.series))


def gauge_query(metric: FlowMetric) -> str:
    """The gauge's sum across series and its smallest series, told apart by a label."""
    sel = _sel(metric)
    return " or ".join(f'label_replace({agg}({sel}), "{promql.PART_LABEL}", "{agg}", "", "")'
                       for agg in ("sum", "min"))


def gauge_range(client: PrometheusClient, spec: SourceSpec, metric: FlowMetric, window: Window) -> GaugeRead:
    """The gauge at each step of the window (points at ``start + step .. end``)."""
    step = max(GAUGE_STEP, window.seconds / (MAX_POINTS - 1))
    expr = gauge_query(metric)
    result = client.query_range(expr, window.start + step, window.end, step)
    where = f"{metric.describe()} ({metric.place})"
    checks = tuple(Check("warning", "source-warning", f"{where}: Prometheus warns: {remote_text(w, 500)}")
                   for w in result.warnings)
    parts = {s.labels.get(promql.PART_LABEL): s for s in result.series}
    total, low = parts.get("sum"), parts.get("min")
    provenance = f"{spec.name} ({spec.url}): sum({_sel(metric)}) every {step:g}s"
    if total is None or low is None or total.timestamps.size == 0:
        empty = np.array([], dtype=float)
        return GaugeRead(empty, empty, empty, step, provenance, checks)
    # sum and min exist at the same steps (wherever any series does); align defensively.
    common, i, j = np.intersect1d(total.timestamps, low.timestamps, return_indices=True)
    return GaugeRead(common, total.values[i], low.values[j], step, provenance, checks)
