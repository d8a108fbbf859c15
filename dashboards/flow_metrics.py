"""The flow from the metrics a spec names (issue 27): PromQL for the stages with ``errors:``,
``retries:``, ``inventory:`` or ``workers:``, used by the dashboard's flow row and by the
recording rules, so both run the very same text.

Per stage ``s``, over a rate range ``rng`` (Grafana's ``$__rate_interval``, or the rules' 5m):

* **inventory**: the queue-depth gauge summed over its series (every partition or queue
  before the stage); its time-average is ``sum(avg_over_time(g[rng]))`` (averaging a gauge
  over time is its mean, which adds up across series), its peak the most waiting at once,
  ``max_over_time(sum(g)[rng:])`` (the peak of the sum, not the sum of each series' peaks);
* **%C&A**: ``1 - bad / items`` per second, ``bad`` the error (or retry) counter's rate, the
  larger of the two when both are named (a failure that is retried is counted in each, as
  :mod:`mapper.analysis.flow_metrics` does), ``items`` the rate of the stage's process
  histogram's ``_count`` (its wait histogram's without one); no error series: right first
  time (``or 0 *``);
* **utilisation**: the process histogram's ``_sum`` rate (seconds busy per second, in
  seconds) over the spec's ``workers``.

Segment variables do not narrow these (a counter or gauge rarely carries the histograms'
labels). A part the metrics cannot give is left out; :func:`metered_flow_stages` lists the
stages that have any.
"""

from __future__ import annotations

from collectors.promql import selector
from mapper.core.spec import Measurement, Stage, StreamSpec
from mapper.core.spec.flow import FlowMetric

RATE = "$__rate_interval"


def _prom(spec: StreamSpec, source: str) -> bool:
    src = spec.sources.get(source)
    return src is not None and src.kind == "prometheus"


def _sel(m: FlowMetric, suffix: str = "") -> str:
    return selector(m.name + suffix, m.selector, m.matchers)


def _counted(spec: StreamSpec, s: Stage) -> Measurement | None:
    """The histogram (or summary) whose ``_count`` counts the stage's items."""
    for m in (s.process, s.wait):
        if m is not None and m.kind in ("histogram", "summary") and _prom(spec, m.source):
            return m
    return None


def metered_flow_stages(spec: StreamSpec) -> list[Stage]:
    """Stages with a flow metric the dashboard can show (a Prometheus gauge, counter, or
    workers with a process histogram)."""
    return [s for s in spec.stages
            if inventory_mean(spec, s) or first_pass_yield(spec, s) or utilisation(spec, s)]


def inventory_mean(spec: StreamSpec, s: Stage, rng: str = RATE) -> str | None:
    """The gauge's time-average over ``rng``, summed over its series."""
    g = s.inventory
    if g is None or not _prom(spec, g.source):
        return None
    return f"sum(avg_over_time({_sel(g)}[{rng}]))"


def inventory_peak(spec: StreamSpec, s: Stage, rng: str = RATE) -> str | None:
    """The most items waiting at once over ``rng``: the peak of the gauge's sum."""
    g = s.inventory
    if g is None or not _prom(spec, g.source):
        return None
    return f"max_over_time(sum({_sel(g)})[{rng}:])"


def _rate(m: FlowMetric, rng: str) -> str:
    return f"sum(rate({_sel(m, '_count' if m.kind == 'histogram' else '')}[{rng}]))"


def first_pass_yield(spec: StreamSpec, s: Stage, rng: str = RATE) -> str | None:
    """%C&A: 1 - attempts gone wrong / items, per second over ``rng``."""
    counters = [(k, m) for k, m in (("errors", s.errors), ("retries", s.retries))
                if m is not None and _prom(spec, m.source)]
    items = _counted(spec, s)
    if not counters or items is None:
        return None
    inn = f"sum(rate({selector(items.name + '_count', items.selector)}[{rng}]))"
    if len(counters) == 1:
        bad = _rate(counters[0][1], rng)
    else:
        bad = "max(" + " or ".join(f'label_replace({_rate(m, rng)}, "counted", "{k}", "", "")'
                                   for k, m in counters) + ")"
    return f"1 - ({bad} or 0 * {inn}) / {inn}"


def utilisation(spec: StreamSpec, s: Stage, rng: str = RATE) -> str | None:
    """Busy seconds per second over the spec's workers; None without ``workers:`` or a
    process histogram with a ``_sum``."""
    m = s.process
    if s.workers is None or m is None or m.kind not in ("histogram", "summary") or not _prom(spec, m.source):
        return None
    busy = f"sum(rate({selector(m.name + '_sum', m.selector)}[{rng}]))"
    scale = "" if m.scale == 1.0 else f" * {m.scale:g}"
    return f"{busy}{scale} / {s.workers}"

