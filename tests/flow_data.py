"""Known flow for the metered-flow tests (issue 27): a branching stream measured from
Prometheus, with its truth computed here from the very counts written.

ingest -> alerting -> {notify, sms}. Every 15 s: 30 items through ingest (0.05 s each) and
alerting (0.2 s each, 1 error per step on ``fp_alert_errors_total``); 9 go on to notify (one
worker, 0.3 s each, waiting 5 s each; 1 in 4 steps one fails, as ``outcome="error"`` on its
process histogram) and 3 to sms. The notify queue's depth is a gauge over two partitions
summing to 3 (Little: 0.6/s x 5 s), with one spike. Beside them, the bad inputs: a lag gauge
that goes negative, a counter that resets mid-window and one born mid-window.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from tests.data import END, STEP, _hist_lines

#: The window the tests map: two hours ending at END.
WINDOW = 7200.0
START = END - WINDOW
#: Samples start this long before the window (the start values of the exact increases).
LEAD_IN = 900.0
PROCESS_BOUNDS = [0.1, 0.5, 1.0, math.inf]
WAIT_BOUNDS = [1.0, 5.0, 10.0, math.inf]
PER_STEP = {"ingest": 30, "alerting": 30, "notify": 9, "sms": 3}
PROCESS = {"ingest": 0.05, "alerting": 0.2, "notify": 0.3, "sms": 0.1}
NOTIFY_WAIT = 5.0
SPIKE_STEP = 200
RESET_AT = 240  # steps into the window


def times() -> np.ndarray:
    return np.arange(START - LEAD_IN, END + 1, STEP)


def _in_window(t: np.ndarray) -> np.ndarray:
    return (t > START) & (t <= END)


def _cumulative(per_step: np.ndarray) -> np.ndarray:
    return np.cumsum(per_step)


def _process(stage: str, labels: str, per_step: np.ndarray, t: np.ndarray) -> Iterator[str]:
    n = _cumulative(per_step)
    value = PROCESS[stage]
    rows = [[float(c) if value <= b else 0.0 for b in PROCESS_BOUNDS] for c in n]
    yield from _hist_lines("fp_process_seconds", labels, PROCESS_BOUNDS, rows, list(t), list(n * value))


def notify_errors(t: np.ndarray) -> np.ndarray:
    """Failed notify deliveries per step (1 in 4 steps)."""
    return (np.arange(t.size) % 4 == 0).astype(float)


def queue(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The notify queue's two partitions: 1 and 2 alternating (sum 3), one spike."""
    i = np.arange(t.size)
    p0 = np.where(i % 2 == 0, 1.0, 2.0)
    p1 = 3.0 - p0
    spike = int(np.searchsorted(t, START)) + SPIKE_STEP
    p0[spike] = 10.0
    return p0, p1


def flow_lines() -> Iterator[str]:
    t = times()
    k = t.size
    yield "# TYPE fp_process_seconds histogram\n"
    for stage in ("ingest", "alerting", "sms"):
        yield from _process(stage, f'stage="{stage}"', np.full(k, PER_STEP[stage], float), t)
    err = notify_errors(t)
    yield from _process("notify", 'stage="notify",outcome="ok"', PER_STEP["notify"] - err, t)
    yield from _process("notify", 'stage="notify",outcome="error"', err, t)
    yield "# TYPE fp_wait_seconds histogram\n"
    n = _cumulative(np.full(k, PER_STEP["notify"], float))
    rows = [[float(c) if b >= NOTIFY_WAIT else 0.0 for b in WAIT_BOUNDS] for c in n]
    yield from _hist_lines("fp_wait_seconds", 'stage="notify"', WAIT_BOUNDS, rows, list(t), list(n * NOTIFY_WAIT))
    yield "# TYPE fp_alert_errors counter\n"
    for ts, c in zip(t, _cumulative(np.ones(k)), strict=True):
        yield f'fp_alert_errors_total{{stage="alerting"}} {c} {ts:.3f}\n'
    yield "# TYPE fp_queue_depth gauge\n"
    for part, values in enumerate(queue(t)):
        for ts, v in zip(t, values, strict=True):
            yield f'fp_queue_depth{{queue="notify",partition="{part}"}} {v} {ts:.3f}\n'
    yield "# TYPE fp_negative_lag gauge\n"
    for i, ts in enumerate(t):
        yield f'fp_negative_lag{{group="alerting"}} {-3.0 if i % 50 == 7 else 4.0} {ts:.3f}\n'
    yield "# TYPE fp_reset_errors counter\n"
    for ts, v in zip(t, reset_counter(t), strict=True):
        yield f"fp_reset_errors_total {v} {ts:.3f}\n"
    yield "# TYPE fp_born_errors counter\n"
    for ts, v in zip(*born_counter(t), strict=True):
        yield f"fp_born_errors_total {v} {ts:.3f}\n"


def reset_counter(t: np.ndarray) -> np.ndarray:
    """10 at the window's start, +1 per step; RESET_AT steps in, a restart from 0."""
    first = int(np.searchsorted(t, START, side="right"))  # the first step inside the window
    v = 10.0 + np.arange(t.size) - (first - 1)
    v = np.maximum(v, 0.0)
    cut = first + RESET_AT
    v[cut:] = np.arange(t.size - cut, dtype=float)  # 0, 1, 2 ... after the restart
    return v


def reset_truth(t: np.ndarray) -> float:
    """Every increment inside the window: before the restart, from 10 up; after, from 0."""
    v = reset_counter(t)
    first = int(np.searchsorted(t, START, side="right"))
    cut = first + RESET_AT
    return float(v[cut - 1] - v[first - 1] + v[-1])


def born_counter(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A counter that appears half way through the window at 5 and rises 1 per step."""
    mid = t > START + WINDOW / 2
    tb = t[mid]
    return tb, 5.0 + np.arange(tb.size)


def truth() -> dict[str, float]:
    """What the window holds, from the counts written (not from latmap)."""
    t = times()
    w = _in_window(t)
    steps = float(np.sum(w))
    p0, p1 = queue(t)
    depth = (p0 + p1)[w]
    return {
        "steps": steps,
        "ingest_in": PER_STEP["ingest"] * steps,
        "alerting_in": PER_STEP["alerting"] * steps,
        "notify_in": PER_STEP["notify"] * steps,
        "sms_in": PER_STEP["sms"] * steps,
        "alerting_errors": steps,
        "notify_errors": float(notify_errors(t)[w].sum()),
        "alerting_busy": PER_STEP["alerting"] * steps * PROCESS["alerting"],
        "notify_busy": PER_STEP["notify"] * steps * PROCESS["notify"],
        "queue_mean": float(depth.mean()),
        "queue_peak": float(depth.max()),
        "little": PER_STEP["notify"] * steps * NOTIFY_WAIT / WINDOW,
        "reset_increase": reset_truth(t),
        "born_increase": float(born_counter(t)[1][-1]),
    }
