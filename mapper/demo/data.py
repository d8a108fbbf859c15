"""The built-in demo's data: a simulated trading chain, market data -> alerting -> notification.

Latencies are long-tailed (lognormal body, Pareto tail), follow a daily pattern (busier and
slower while the US market is open, 13:30-20:00 UTC) and a news-event burst (15 minutes of
5x traffic with queues backing up). The simulation is vectorised: it draws every item's
latency with numpy and counts them into each metric's buckets per scrape step, the same
cumulative counters a prometheus-client ``Histogram`` exports.

The raw latencies are kept, so tests can compare latmap's percentiles with the exact ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

STEP = 15.0  # seconds between scrapes, as a Prometheus default job would
NEWS_START_HOUR = 14.0  # UTC hour of the simulated news event (e.g. an FOMC statement)
NEWS_MINUTES = 15.0


@dataclass(frozen=True)
class MetricDef:
    """One simulated histogram: name, help, bucket bounds, and its labels."""

    name: str
    help: str
    buckets: tuple[float, ...]
    labels: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SeriesData:
    """One simulated series: cumulative bucket counts per step, and the raw latencies."""

    metric: MetricDef
    labels: tuple[tuple[str, str], ...]
    cumulative: np.ndarray  # shape (steps, buckets incl. +Inf): cumulative in time and le
    sums: np.ndarray  # cumulative sum of observations per step
    times: np.ndarray  # item timestamps (seconds)
    values: np.ndarray  # item latencies (seconds)


@dataclass(frozen=True)
class DemoData:
    start: float
    step: float
    timestamps: np.ndarray
    series: tuple[SeriesData, ...]

    def raw(self, name: str, labels: dict[str, str] | None = None,
            start: float = -math.inf, end: float = math.inf) -> np.ndarray:
        """The raw latencies of metric ``name`` (matching ``labels``) with time in (start, end]."""
        parts = []
        for s in self.series:
            if s.metric.name == name and all(dict(s.labels).get(k) == v for k, v in (labels or {}).items()):
                # An item counts at the scrape that first sees it: the step's end.
                seen = self.start + np.ceil((s.times - self.start) / self.step) * self.step
                parts.append(s.values[(seen > start) & (seen <= end)])
        return np.concatenate(parts) if parts else np.array([])


MD = MetricDef("md_tick_process_seconds", "Time to normalise and publish one market-data tick.",
               (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05),
               (("service", "market-data"),))
ALERT_WAIT = MetricDef("alert_queue_wait_seconds", "Time a tick waits in the alerting queue.",
                       (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
                       (("service", "alerting"),))
ALERT_EVAL = MetricDef("alert_eval_seconds", "Time to evaluate the user alerts against one tick.",
                       (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
                       (("service", "alerting"),))
NOTIFY_WAIT = MetricDef("notify_queue_wait_seconds", "Time a triggered alert waits for a sender.",
                        (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
                        (("service", "notification"),))
NOTIFY_SEND = MetricDef("notify_send_seconds", "Time for the provider to accept the notification.",
                        (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
                        (("service", "notification"),))
METRICS = (MD, ALERT_WAIT, ALERT_EVAL, NOTIFY_WAIT, NOTIFY_SEND)

# (metric, extra labels, median s, sigma, tail share, tail start s, tail alpha, load exponent,
#  items per tick)
_PLAN = (
    (MD, (), 0.0003, 0.5, 0.005, 0.002, 2.5, 0.2, 1.0),
    (ALERT_WAIT, (), 0.002, 0.8, 0.01, 0.02, 2.2, 1.6, 1.0),
    (ALERT_EVAL, (), 0.0015, 0.4, 0.002, 0.01, 3.0, 0.3, 1.0),
    (NOTIFY_WAIT, (), 0.015, 0.7, 0.01, 0.1, 2.5, 1.4, 0.05),
    (NOTIFY_SEND, (("provider", "twilio"),), 0.18, 0.5, 0.01, 0.8, 2.5, 0.2, 0.03),
    (NOTIFY_SEND, (("provider", "sns"),), 0.06, 0.4, 0.005, 0.3, 2.5, 0.2, 0.015),
    (NOTIFY_SEND, (("provider", "sendgrid"),), 0.25, 0.5, 0.01, 1.0, 2.5, 0.2, 0.005),
)


def load_factor(t: np.ndarray) -> np.ndarray:
    """Traffic relative to the average: quiet overnight, busy in US market hours, a burst."""
    hour = (t % 86400.0) / 3600.0
    market = 1 / (1 + np.exp(-(hour - 13.5) * 4)) - 1 / (1 + np.exp(-(hour - 20.0) * 4))
    news = (hour >= NEWS_START_HOUR) & (hour < NEWS_START_HOUR + NEWS_MINUTES / 60)
    return 0.4 + 1.3 * market + 4.0 * news


def simulate(start: float, end: float, tick_rate: float = 20.0, seed: int = 7,
             step: float = STEP) -> DemoData:
    """Simulate the chain from ``start`` to ``end`` (unix seconds), scraped every ``step``.

    Counters start at zero at ``start``; ``tick_rate`` is the average ticks per second.
    """
    rng = np.random.default_rng(seed)
    steps = math.floor((end - start) / step) + 1
    ts = start + np.arange(steps) * step
    load = load_factor(ts)
    series = []
    for metric, extra, median, sigma, tail, tail_start, alpha, load_exp, per_tick in _PLAN:
        lam = np.r_[0.0, tick_rate * per_tick * load[1:] * step]  # nothing before the first scrape
        n = np.asarray(rng.poisson(lam))
        idx = np.repeat(np.arange(steps), n)
        total = int(n.sum())
        body = rng.lognormal(math.log(median), sigma, total)
        tail_draw = tail_start * (1 + rng.pareto(alpha, total))
        values = np.where(rng.random(total) < tail, tail_draw, body)
        values *= load[idx] ** load_exp
        times = ts[idx] - rng.random(total) * step
        bounds = np.array([*metric.buckets, math.inf])
        b = np.searchsorted(bounds, values, side="left")  # le: value <= bound
        counts = np.bincount(idx * bounds.size + b, minlength=steps * bounds.size)
        counts = counts.reshape(steps, bounds.size)
        cumulative = np.cumsum(np.cumsum(counts, axis=0), axis=1).astype(float)
        sums = np.cumsum(np.bincount(idx, weights=values, minlength=steps))
        series.append(SeriesData(metric, metric.labels + extra, cumulative, sums, times, values))
    return DemoData(start, step, ts, tuple(series))


def _fmt_le(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(float(bound))


def _label_text(labels: tuple[tuple[str, str], ...], le: str | None = None) -> str:
    items = [f'{k}="{v}"' for k, v in labels] + ([f'le="{le}"'] if le is not None else [])
    return "{" + ",".join(items) + "}"


def openmetrics_lines(data: DemoData) -> Iterator[str]:
    """The simulation as OpenMetrics text with timestamps (``promtool tsdb create-blocks-from``)."""
    for metric in METRICS:
        yield f"# HELP {metric.name} {metric.help}\n"
        yield f"# TYPE {metric.name} histogram\n"
        for s in data.series:
            if s.metric is not metric:
                continue
            les = [_fmt_le(b) for b in (*metric.buckets, math.inf)]
            bucket_names = [f"{metric.name}_bucket{_label_text(s.labels, le)} " for le in les]
            count_name = f"{metric.name}_count{_label_text(s.labels)} "
            sum_name = f"{metric.name}_sum{_label_text(s.labels)} "
            tss = [f" {t:.3f}\n" for t in data.timestamps]
            cum = s.cumulative.astype(np.int64)
            for i, t in enumerate(tss):
                row = cum[i]
                yield "".join(f"{bn}{int(c)}{t}" for bn, c in zip(bucket_names, row, strict=True))
                yield f"{count_name}{int(row[-1])}{t}{sum_name}{float(s.sums[i])!r}{t}"
    yield "# EOF\n"


def final_families(data: DemoData) -> list[Any]:
    """The counters at the last step as prometheus-client metric families (scrape mode)."""
    from prometheus_client.core import HistogramMetricFamily

    out = []
    for metric in METRICS:
        names = [k for k, _ in metric.labels]
        rows = [s for s in data.series if s.metric is metric]
        extra = [k for k, _ in rows[0].labels if k not in names]
        fam = HistogramMetricFamily(metric.name, metric.help, labels=names + extra)
        for s in rows:
            last = s.cumulative[-1]
            buckets = [(_fmt_le(b), float(c)) for b, c in zip((*metric.buckets, math.inf), last, strict=True)]
            fam.add_metric([v for _, v in s.labels], buckets, float(s.sums[-1]))
        out.append(fam)
    return out
