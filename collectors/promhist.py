"""A classic Prometheus histogram over a window, counted exactly (see :mod:`collectors.promcount`).

Per series, the exact increase of every ``_bucket``, of ``_count`` and of ``_sum``; buckets are
added by ``le`` across series (every instance's observations in the window, as integers).
The bad input this notices: ``_sum`` missing or negative (no mean, no narrowing by the sum),
``_count`` different from the ``+Inf`` bucket, counter resets, series that come and go; and
every bad bucket :mod:`collectors.classic` refuses (no ``le``, a negative or overflowing count,
observations below zero ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from collectors import promql
from collectors.classic import checked_histogram
from collectors.promcount import exact_increases
from collectors.promjson import QueryResult
from mapper.core.distribution import HistogramDistribution
from mapper.core.model import Check, Window
from mapper.core.spec import Measurement

Query = Callable[[str, float], QueryResult]


def classic_histogram(query: Query, m: Measurement, window: Window, where: str
                      ) -> tuple[HistogramDistribution | None, list[Check], str] | None:
    """``(distribution, checks, provenance query)``, or ``None`` when no ``_bucket`` series
    match (a native histogram, or nothing)."""
    buckets_sel = promql.selector(m.name + "_bucket", m.selector)
    b = exact_increases(query, buckets_sel, window, where)
    if not b.series:
        return None
    c = exact_increases(query, promql.selector(m.name + "_count", m.selector), window, where, raw=True)
    s = exact_increases(query, promql.selector(m.name + "_sum", m.selector), window, where)
    checks = [*b.checks, *c.checks, *s.checks]
    total: float | None = s.total
    if not s.series:
        total = None
        checks.append(Check("info", "missing-sum", f"{where}: no _sum series; no exact mean, and the "
                            "intervals cannot be narrowed by it"))
    elif total is not None and (total < 0 or not math.isfinite(total)):
        checks.append(Check("warning", "negative-sum", f"{where}: _sum increased by {total:g} in the window; "
                            "a latency sum cannot be negative, so it is not used (no mean)"))
        total = None
    dist, made = checked_histogram([(x.labels, x.increase) for x in b.series], m.scale, where, total)
    checks += made
    if dist is None and made:
        return None, checks, buckets_sel
    resets = max(b.resets, c.resets)
    if resets:
        checks.append(Check(
            "info", "counter-reset",
            f"{where}: {resets} series reset in the window (a restart); counted sample by sample, a drop "
            "as a restart from zero; observations between the last scrape and the restart are lost"))
    born = c.born
    if born:
        checks.append(Check(
            "info", "series-born",
            f"{where}: {born} series began inside the window; counted from zero at their first sample"))
    if dist is not None and c.series and not math.isclose(c.total, dist.count, rel_tol=0, abs_tol=0.5):
        checks.append(Check(
            "warning", "count-mismatch",
            f"{where}: _count increased by {c.total:.0f} but the +Inf bucket by {dist.count:.0f}; "
            "the exporter is inconsistent (the buckets are used)"))
    return dist, checks, buckets_sel
