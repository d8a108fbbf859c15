"""What "never average percentiles" means for a PromQL expression, precisely: no ``avg``
aggregation anywhere (latmap sums rates and bucket counts; an average across series of
anything quantile-like is the mistake), and ``avg_over_time`` only over a gauge (a queue
depth's time-average is its mean), never over a quantile or a recorded percentile."""

from __future__ import annotations

import re

#: The ``avg`` aggregation operator (``avg(``, ``avg by (x) (``), not ``avg_over_time``.
AVG_AGGREGATION = re.compile(r"\bavg\s*(?:(?:by|without)\s*\([^)]*\)\s*)?\(")
#: What an average over time must not hold: a quantile, or a recorded percentile series.
QUANTILE_LIKE = re.compile(r"histogram_quantile|quantile\s*=|:p\d+(?:_\d+)?_|quantile_over_time")


def averages_a_percentile(expr: str) -> bool:
    """Whether ``expr`` averages across series, or averages a quantile over time."""
    if AVG_AGGREGATION.search(expr):
        return True
    for m in re.finditer(r"\bavg_over_time\s*\(", expr):
        depth, i = 1, m.end()
        while i < len(expr) and depth:
            depth += {"(": 1, ")": -1}.get(expr[i], 0)
            i += 1
        if QUANTILE_LIKE.search(expr[m.end():i]):
            return True
    return False
