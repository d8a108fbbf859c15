"""The PromQL of latmap's Grafana dashboards: pure functions of the stream spec.

Every expression the dashboards (and the recording rules) use is built here, so the dashboard
builder, the rules generator, ``latmap dashboards --check`` and the tests run the very same
text. Grafana fills in the variables:

* ``$__rate_interval`` (the rate range of time series and heatmaps),
* ``$__range`` (the dashboard's time range: the Node Graph's p99s are over the range shown,
  because a p99 from a one-minute rate of a slow stream rests on a few dozen samples),
* ``$<label>`` for each segment label of the spec, always matched with ``=~`` so the variable's
  "All" value (``.*``) also keeps series that lack the label.

Quantiles always come from bucket rates summed by ``le`` (and the segment labels), never from
an average of quantiles. Summaries cannot be aggregated: their quantiles are shown per series,
and where one number is needed (lead time, objectives) the *largest* instance quantile is used,
which bounds the stream's quantile from above. All values are in seconds (``scale`` applied).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from collectors.promql import WINDOW_PLACEHOLDER, escape_value, selector
from mapper.core.calendar import cron_fields
from mapper.core.distribution import percentile_label
from mapper.core.errors import LatmapError
from mapper.core.names import LEAD_TIME, STAGE_INVENTORY, STAGE_ITEMS, STAGE_PROCESS
from mapper.core.spec import Measurement, Stage, StreamSpec

RATE = "$__rate_interval"
RANGE = "$__range"
#: Labels latmap's expressions use itself; a segment label must not be one of them.
RESERVED_LABELS = ("le", "quantile", "id", "title", "source", "target", "__name__")
#: Template variable names the dashboard uses itself.
RESERVED_VARIABLES = ("datasource",)
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class DashboardError(LatmapError):
    """The spec cannot be turned into a dashboard (bad label names ...); names the field."""


@dataclass(frozen=True)
class NotDashboardable:
    """Something of the stream the dashboard leaves out, and why (``place`` is ``file:line``)."""

    what: str
    reason: str
    place: str = ""


def check_labels(spec: StreamSpec) -> None:
    """Raise :class:`DashboardError` listing every label name PromQL or the dashboard refuses."""
    problems = []
    names = [(label, f"{spec.path}: segments.labels") for label in spec.segments.labels]
    for stage in spec.stages:
        for part, m in (("wait", stage.wait), ("process", stage.process)):
            if m is not None:
                names += [(label, f"{m.place}: stages[{stage.name}].{part}.selector") for label in m.selector]
    for label, where in names:
        if not _LABEL.match(label):
            problems.append(f"{where}: {label!r} is not a valid PromQL label name "
                            "(letters, digits and '_', not starting with a digit)")
        elif label.startswith("__"):
            problems.append(f"{where}: {label!r}: names starting with '__' are reserved by Prometheus")
    for label in spec.segments.labels:
        if label in RESERVED_LABELS or label in RESERVED_VARIABLES:
            problems.append(f"{spec.path}: segments.labels: {label!r} is used by latmap's dashboard "
                            "itself and cannot be a segment label")
    if problems:
        raise DashboardError("\n".join(problems))


def _segment_matchers(spec: StreamSpec) -> str:
    return ",".join(f'{label}=~"${label}"' for label in spec.segments.labels)


def _scaled(expr: str, m: Measurement) -> str:
    return expr if m.scale == 1.0 else f"({expr}) * {m.scale:g}"


def _by(labels: Sequence[str]) -> str:
    return ", ".join(labels)


def bucket_rate(spec: StreamSpec, m: Measurement, by: Sequence[str] = ("le",)) -> str:
    """Per-second bucket rates of a histogram (or a raw bucket query), summed ``by``."""
    if m.kind == "query":
        return f"sum by ({_by(by)}) ({m.name.replace(WINDOW_PLACEHOLDER, RATE)})"
    sel = selector(m.name + "_bucket", m.selector, _segment_matchers(spec))
    return f"sum by ({_by(by)}) (rate({sel}[{RATE}]))"


def quantile(spec: StreamSpec, m: Measurement, q: float, per_segment: bool = True) -> str:
    """The q-quantile in seconds over time: per segment value (``per_segment``) or for the
    whole selection. For a summary: each series' own quantile, or the largest of them."""
    if m.kind == "summary":
        sel = selector(m.name, m.selector, ",".join(
            filter(None, [_segment_matchers(spec), f'quantile="{q:g}"'])))
        return _scaled(sel if per_segment else f"max({sel})", m)
    by = ("le", *spec.segments.labels) if per_segment and m.kind == "histogram" else ("le",)
    return _scaled(f"histogram_quantile({q:g}, {bucket_rate(spec, m, by)})", m)


def heatmap(spec: StreamSpec, m: Measurement) -> str | None:
    """Bucket rates by ``le`` for a heatmap panel (``format: heatmap``); None for summaries."""
    return None if m.kind == "summary" else bucket_rate(spec, m)


def request_rate(spec: StreamSpec, m: Measurement) -> str | None:
    """Items per second per segment value; None for a raw query (its count is not known)."""
    if m.kind == "query":
        return None
    sel = selector(m.name + "_count", m.selector, _segment_matchers(spec))
    by = f" by ({_by(spec.segments.labels)}) " if spec.segments.labels else ""
    return f"sum{by}(rate({sel}[{RATE}]))"


def mean(spec: StreamSpec, m: Measurement) -> str | None:
    """The mean in seconds (sum rate over count rate); None for a raw query."""
    if m.kind == "query":
        return None
    seg = _segment_matchers(spec)
    num = selector(m.name + "_sum", m.selector, seg)
    den = selector(m.name + "_count", m.selector, seg)
    return _scaled(f"sum(rate({num}[{RATE}])) / sum(rate({den}[{RATE}]))", m)


def parts(stage: Stage) -> list[tuple[str, Measurement]]:
    """The stage's measured parts, wait first: ``[("wait", m), ("process", m)]``."""
    return [(n, m) for n, m in (("wait", stage.wait), ("process", stage.process)) if m is not None]


def dashboardable(spec: StreamSpec, m: Measurement) -> str | None:
    """Why measurement ``m`` cannot be queried from Grafana's Prometheus, or None if it can."""
    src = spec.sources.get(m.source)
    if src is None:
        return f"unknown source {m.source!r}"
    if src.kind != "prometheus":
        return (f"source {m.source!r} is a {src.kind} source, not a PromQL API "
                "(scrape it with a Prometheus and point the source at that)")
    return None


def stage_parts(spec: StreamSpec, stage: Stage) -> list[tuple[str, Measurement]]:
    """The stage's parts that Grafana can query."""
    return [(n, m) for n, m in parts(stage) if dashboardable(spec, m) is None]


def hop_quantile(spec: StreamSpec, stage: Stage, q: float) -> str | None:
    """The hop's q-quantile as the *sum* of its parts' q-quantiles (whole selection).

    A sum of quantiles is not the quantile of the sum (``latmap map`` convolves the
    distributions); on a dashboard it is the readable approximation, labelled as such."""
    terms = [f"({quantile(spec, m, q, per_segment=False)})" for _, m in stage_parts(spec, stage)]
    return " + ".join(terms) or None


def lead_time_quantile(spec: StreamSpec, q: float) -> str | None:
    """Sum over the stages of their hop q-quantiles (see :func:`hop_quantile`): a live view
    of the hops, *not* the lead time's quantile (quantiles do not add up)."""
    terms = [t for s in spec.stages if (t := hop_quantile(spec, s, q))]
    return " + ".join(terms) or None


def pushed_lead_time(spec: StreamSpec, q: float | None = None) -> str:
    """The lead time's q-quantile as latmap computed it in its last run (per trace, or the
    convolution of the hops, from every source: Prometheus, Datadog, traces) and pushed with
    ``latmap report --pushgateway``; all pushed percentiles when ``q`` is None."""
    sel = f'stream="{escape_value(spec.name)}"'
    if q is not None:
        sel += f',percentile="{q_label(q)}"'
    return f"max by (percentile) ({LEAD_TIME}{{{sel}}})"


def is_pushed(expr: str) -> bool:
    """Whether a query reads what latmap pushes (empty until a ``--pushgateway`` run)."""
    return LEAD_TIME in expr


def flow_efficiency(spec: StreamSpec) -> str | None:
    """Mean process time over mean lead time (exact for means: expectations add up); None
    when a part has no mean (a raw query) or there is no process time at all."""
    process, everything = [], []
    for stage in spec.stages:
        for name, m in stage_parts(spec, stage):
            mu = mean(spec, m)
            if mu is None:
                return None
            everything.append(f"({mu})")
            if name == "process":
                process.append(f"({mu})")
    if not process:
        return None
    return f"({' + '.join(process)}) / ({' + '.join(everything)})"


# --------------------------------------------------------------------------- flow (issue 27)
# From the live exporter's series (``latmap serve --stream``, one set per traced stage): items by
# outcome (passed | stopped partition the items in; failed | retried count, once each, the items
# not right the first time), the inventory gauge, and the process histogram's sum. ``rng`` is the
# rate range (Grafana's ``$__rate_interval``, or the rules' ``5m``), ``by`` the labels kept.


def flow_stages(spec: StreamSpec) -> list[Stage]:
    """The stages the live exporter counts the flow of: the traced ones."""
    return [s for s in spec.stages if s.traces is not None]


def _stream(spec: StreamSpec) -> str:
    return f'stream="{escape_value(spec.name)}"'


def stage_items(spec: StreamSpec, outcomes: str, rng: str = RATE, by: str = "stage") -> str:
    """Items per second at each stage whose outcome matches ``outcomes`` (a regex: ``passed|stopped``)."""
    return f'sum by ({by}) (rate({STAGE_ITEMS}_total{{{_stream(spec)},outcome=~"{outcomes}"}}[{rng}]))'


def items_in(spec: StreamSpec, rng: str = RATE, by: str = "stage") -> str:
    """Items per second reaching each stage: those handed on plus those that stopped there."""
    return stage_items(spec, "passed|stopped", rng, by)


def flow_yield(spec: StreamSpec, rng: str = RATE, by: str = "stage") -> str:
    """Yield per stage: items handed on / items in (0 at a last stage, where all stop; a stage
    without a passed series is kept at 0 by ``or 0 *``, not dropped)."""
    inn = items_in(spec, rng, by)
    return f"({stage_items(spec, 'passed', rng, by)} or 0 * {inn}) / {inn}"


def first_pass_yield(spec: StreamSpec, rng: str = RATE, by: str = "stage") -> str:
    """%C&A per stage: 1 - (failed + retried) / items in; a stage without a failed or retried
    series is right first time (``or 0 *`` keeps it instead of dropping it)."""
    inn = items_in(spec, rng, by)
    return f"1 - ({stage_items(spec, 'failed|retried', rng, by)} or 0 * {inn}) / {inn}"


def inventory(spec: StreamSpec, over: str | None = None, rng: str = RATE, by: str = "stage") -> str:
    """Items waiting before each stage: the gauge now, or ``over`` the range (``avg`` for the
    time-average, ``max`` for the peak; summed over exporters, so a peak is an upper bound)."""
    sel = f"{STAGE_INVENTORY}{{{_stream(spec)}}}"
    return f"sum by ({by}) ({sel})" if over is None else f"sum by ({by}) ({over}_over_time({sel}[{rng}]))"


def busy_workers(spec: StreamSpec, rng: str = RATE, by: str = "stage") -> str:
    """Process seconds per second at each stage: the workers busy on average (utilisation x
    workers; the live series do not know the workers)."""
    return f"sum by ({by}) (rate({STAGE_PROCESS}_sum{{{_stream(spec)}}}[{rng}]))"


def _node(stage: Stage, expr: str) -> str:
    name = escape_value(stage.name)
    return f'label_replace(label_replace({expr}, "id", "{name}", "", ""), "title", "{name}", "", "")'


def _range_p99(spec: StreamSpec, m: Measurement | None) -> str:
    if m is None or dashboardable(spec, m) is not None:
        return "vector(NaN)"  # the node or edge is drawn, without a number
    expr = quantile(spec, m, 0.99, per_segment=False)
    return expr.replace(RATE, RANGE)


def graph_nodes(spec: StreamSpec) -> str:
    """Node Graph nodes as one instant query (table format): labels ``id`` and ``title``,
    the value is the stage's process p99 over the dashboard's range."""
    return " or ".join(_node(s, f"max({_range_p99(spec, s.process)})") for s in spec.stages)


def graph_edges(spec: StreamSpec) -> str:
    """Node Graph edges (hops): labels ``id``, ``source``, ``target``; the value is the wait
    p99 in front of the target stage, over the dashboard's range."""
    out = []
    for up, down in spec.hops:
        expr = f"max({_range_p99(spec, spec.stage(down).wait)})"
        for label, value in (("id", f"{up}->{down}"), ("source", up), ("target", down)):
            expr = f'label_replace({expr}, "{label}", "{escape_value(value)}", "", "")'
        out.append(expr)
    return " or ".join(out) or "vector(NaN)"


def _cron_terms(field_fn: str, values: frozenset[int], full: int) -> str | None:
    if len(values) == full:
        return None
    return "(" + " or ".join(f"{field_fn}() == {v}" for v in sorted(values)) + ")"


def event_window(spec: StreamSpec, name: str) -> str | None:
    """1 while event ``name`` is on, for a Prometheus annotation query; ``None`` for a
    recurring event in a zone other than UTC (PromQL's time functions know only UTC, and a
    fixed offset would be an hour wrong for half the year).

    Fixed windows compare ``time()``; cron windows match the cron fields with PromQL's time
    functions at every minute of a subquery as long as the event lasts (day of month OR day
    of week when both are restricted, as cron does)."""
    ev = next(e for e in spec.events if e.name == name)
    if ev.cron is None:
        return (f"vector(1) and on() (vector(time()) >= {ev.start:.0f}) "
                f"and on() (vector(time()) < {ev.end:.0f})")
    if ev.tz != "UTC":
        return None
    try:
        (minute, hour, day, month, weekday), day_or = cron_fields(ev.cron)
    except ValueError:
        return None
    days = [t for t in (_cron_terms("day_of_month", day, 31), _cron_terms("day_of_week", weekday, 7)) if t]
    if day_or and len(days) == 2:
        days = [f"({days[0]} or {days[1]})"]
    terms = [t for t in (_cron_terms("minute", minute, 60), _cron_terms("hour", hour, 24),
                         _cron_terms("month", month, 12)) if t] + days
    match = " and on() ".join(["vector(1)", *terms])
    minutes = max(1, round(ev.duration / 60))
    return f"max_over_time(({match})[{minutes}m:1m]) > 0"


def q_label(q: float) -> str:
    return percentile_label(q)


__all__ = [
    "RANGE",
    "RATE",
    "RESERVED_LABELS",
    "RESERVED_VARIABLES",
    "DashboardError",
    "NotDashboardable",
    "bucket_rate",
    "busy_workers",
    "check_labels",
    "dashboardable",
    "event_window",
    "first_pass_yield",
    "flow_efficiency",
    "flow_stages",
    "flow_yield",
    "graph_edges",
    "graph_nodes",
    "heatmap",
    "hop_quantile",
    "inventory",
    "is_pushed",
    "items_in",
    "lead_time_quantile",
    "mean",
    "parts",
    "pushed_lead_time",
    "q_label",
    "quantile",
    "request_rate",
    "stage_items",
    "stage_parts",
]
