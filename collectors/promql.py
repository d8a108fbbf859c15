"""PromQL text built from the spec: selectors with escaped values, and the queries latmap runs.

Kept apart from the HTTP code so the dashboards and rules generators (and tests) build the
very same expressions.
"""

from __future__ import annotations

from collections.abc import Mapping

from mapper.core.durations import prom_duration
from mapper.core.escape import promql_string

#: Label latmap adds to tell apart the parts of its combined auxiliary query.
PART_LABEL = "latmap_part"
#: Placeholder a raw ``query`` may contain; replaced with the window as a PromQL range.
WINDOW_PLACEHOLDER = "$window"


def escape_value(value: str) -> str:
    """Escape a label value for a double-quoted PromQL string (:func:`mapper.core.escape.promql_string`:
    also safe from Grafana's variables when the query sits in a dashboard)."""
    return promql_string(value)


def selector(metric: str, labels: Mapping[str, str], extra: str = "") -> str:
    """``metric{a="b",...}`` with every value escaped; ``extra`` is raw matcher text."""
    parts = [f'{k}="{escape_value(v)}"' for k, v in sorted(labels.items())]
    if extra:
        parts.append(extra)
    return f"{metric}{{{','.join(parts)}}}" if parts else metric


def bucket_increase(metric: str, labels: Mapping[str, str], window: float) -> str:
    """Every bucket's increase over the window, summed across series by ``le``."""
    return f"sum by (le) (increase({selector(metric + '_bucket', labels)}[{prom_duration(window)}]))"


def native_increase(metric: str, labels: Mapping[str, str], window: float) -> str:
    """The increase of a native histogram over the window, summed across series."""
    return f"sum(increase({selector(metric, labels)}[{prom_duration(window)}]))"


def histogram_aux(metric: str, labels: Mapping[str, str], window: float) -> str:
    """One query for a classic histogram's sum, count and counter resets over the window."""
    rng = prom_duration(window)
    parts = {
        "sum": f"sum(increase({selector(metric + '_sum', labels)}[{rng}]))",
        "count": f"sum(increase({selector(metric + '_count', labels)}[{rng}]))",
        "resets": f"sum(resets({selector(metric + '_count', labels)}[{rng}]))",
    }
    return " or ".join(
        f'label_replace({expr}, "{PART_LABEL}", "{name}", "", "")' for name, expr in parts.items()
    )


def failed_scrapes(metric: str, labels: Mapping[str, str], window: float) -> str:
    """Per target (job, instance) behind the histogram: scrapes that failed in the window
    (``up == 0``), for targets that failed at least once."""
    rng = prom_duration(window)
    return (f"(count_over_time(up[{rng}]) - sum_over_time(up[{rng}])) > 0 and on (job, instance) "
            f"group by (job, instance) (last_over_time({selector(metric + '_count', labels)}[{rng}]))")


def summary_quantiles(metric: str, labels: Mapping[str, str]) -> str:
    """Every quantile series of a summary, per instance (never aggregated)."""
    return selector(metric, labels, 'quantile!=""')


def summary_count(metric: str, labels: Mapping[str, str], window: float) -> str:
    return f"sum(increase({selector(metric + '_count', labels)}[{prom_duration(window)}]))"


def quantile_over_time(metric: str, labels: Mapping[str, str], q: float, rate_range: float) -> str:
    """The q-quantile at each step, from bucket rates summed by ``le`` (for plots)."""
    return (
        f"histogram_quantile({q:g}, sum by (le) "
        f"(rate({selector(metric + '_bucket', labels)}[{prom_duration(rate_range)}])))"
    )


def raw_query(text: str, window: float) -> str:
    """A user's query with ``$window`` replaced by the window as a PromQL range."""
    return text.replace(WINDOW_PLACEHOLDER, prom_duration(window))
