"""A branching chain with known timings, as span columns: every tick through market-data and
alerting, ~30% on to notification (one worker, a FIFO queue), 3% of the alerting deliveries
failing and redelivered (a second consumer span on the same producer span). The truth of
every flow figure is computed here from the generator's own numbers, not from the spans.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapper.core.spans import KIND_CONSUMER, KIND_PRODUCER, KIND_SERVER, SpanBatch

NS = 1_000_000_000
W0 = 1_789_999_200  # window start (Unix seconds), on a whole hour
WINDOW = 3600.0


@dataclass(frozen=True)
class Truth:
    ticks: int
    alerts: int
    failed: int
    alert_wait_s: float  # summed queue waits before alerting (first deliveries)
    notify_waits: np.ndarray  # per notification, seconds
    notify_arrive: np.ndarray  # hand-over instants (s)
    notify_busy_s: float


def chain(n: int = 6000, seed: int = 7, split: bool = False) -> tuple[SpanBatch, Truth]:
    """``n`` ticks over an hour; ``split``: each redelivery in a trace of its own linked to
    the producer instead of a child of it."""
    rng = np.random.default_rng(seed)
    t0 = np.sort(rng.uniform(W0 + 1, W0 + WINDOW - 120, n))
    md = rng.uniform(0.001, 0.003, n)
    a_wait = rng.exponential(0.02, n)
    a_proc = rng.uniform(0.004, 0.008, n)
    fail = rng.random(n) < 0.03
    redeliver = rng.uniform(0.5, 1.5, n)
    alert = rng.random(n) < 0.3
    cols: dict[str, list] = {k: [] for k in ("trace_hi", "trace_lo", "span_id", "parent_id", "link_trace_hi",
                                            "link_trace_lo", "link_span_id", "start_ns", "end_ns", "kind",
                                            "status", "service", "name", "instance", "exceptions")}

    def span(tr: int, sid: int, parent: int, start: float, end: float, kind: int, service: str, name: str,
             instance: str, status: int = 0, link: int = 0, own_trace: int | None = None) -> None:
        cols["trace_hi"].append(0)
        cols["trace_lo"].append(tr if own_trace is None else own_trace)
        cols["span_id"].append(sid)
        cols["parent_id"].append(parent)
        cols["link_trace_hi"].append(0)
        cols["link_trace_lo"].append(tr if link else 0)
        cols["link_span_id"].append(link)
        cols["start_ns"].append(round(start * NS))
        cols["end_ns"].append(round(end * NS))
        cols["kind"].append(kind)
        cols["status"].append(status)
        cols["service"].append(service)
        cols["name"].append(name)
        cols["instance"].append(instance)
        cols["exceptions"].append(1 if status else 0)

    # notification: one worker, first come first served, service 0.2-2.2 s (busy ~ 60%)
    a_start = t0 + md + a_wait
    ok_start = np.where(fail, a_start + a_proc + redeliver, a_start)
    handed = ok_start + a_proc  # the alert's enqueue ends with the consumer span
    svc = rng.uniform(0.2, 2.2, n)
    idx = np.flatnonzero(alert)
    order = idx[np.argsort(handed[idx], kind="stable")]
    n_start = np.zeros(n)
    free = 0.0
    for i in order.tolist():  # the generator's FIFO queue (truth, not the code under test)
        n_start[i] = max(handed[i], free)
        free = n_start[i] + svc[i]
    for i in range(n):
        tr, b = i + 1, 10 * i + 1
        span(tr, b, 0, t0[i], t0[i] + md[i], KIND_SERVER, "market-data", "tick", "md-1")
        span(tr, b + 1, b, t0[i] + md[i] * 0.8, t0[i] + md[i], KIND_PRODUCER, "market-data", "ticks publish", "md-1")
        inst = f"al-{i % 2}"
        if fail[i]:
            span(tr, b + 2, b + 1, a_start[i], a_start[i] + a_proc[i], KIND_CONSUMER, "alerting", "ticks process",
                 inst, status=2)
        own = 10_000_000 + tr if split and fail[i] else None
        span(tr, b + 3, 0 if own else b + 1, ok_start[i], ok_start[i] + a_proc[i], KIND_CONSUMER, "alerting",
             "ticks process", inst, link=b + 1 if own else 0, own_trace=own)
        if alert[i]:
            span(tr, b + 4, b + 3, handed[i] - a_proc[i] * 0.2, handed[i], KIND_PRODUCER, "alerting",
                 "alerts publish", inst, own_trace=own)
            span(tr, b + 5, b + 4, n_start[i], n_start[i] + svc[i], KIND_CONSUMER, "notification", "send", "n-1",
                 own_trace=own)
    truth = Truth(n, int(alert.sum()), int(fail.sum()), float(a_wait.sum()), (n_start - handed)[idx],
                  handed[idx], float(svc[idx].sum()))
    return SpanBatch.from_columns(cols), truth


def true_peak(arrive: np.ndarray, leave: np.ndarray) -> int:
    """The most intervals open at once, by brute force at every arrival instant."""
    at = arrive[:, None]
    return int(((arrive[None, :] <= at) & (leave[None, :] > at)).sum(axis=1).max(initial=0))
