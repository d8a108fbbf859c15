"""``latmap whatif --workers STAGE=N``: the M/G/c model's answer as JSON and as lines for people.

The answer says it is a model and puts the model at today's workers beside the wait measured
today, so how far the model is off this stage is read before its answer at N workers is.
"""

from __future__ import annotations

from typing import Any

from mapper.analysis.queueing import MODEL, Q, QueueModel, WorkersAnswer
from mapper.core.durations import format_duration
from mapper.core.quantiles import percentile_label


def _model_json(m: QueueModel | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {"workers": m.workers, "utilisation": m.utilisation, "p_wait": m.p_wait, "wait_mean_s": m.wait_mean,
            "wait_p99_s": m.wait_p99, "note": m.note}


def _ratio(model: float | None, measured: float | None) -> float | None:
    return model / measured if model is not None and measured else None


def workers_json(a: WorkersAnswer) -> dict[str, Any]:
    """One stage's answer: ``model`` (what it is), ``inputs``, ``asked`` and ``today`` (the
    model at N and at today's workers), ``measured`` (today's wait) and ``model_vs_measured``
    (the model at today's workers / the measured wait: 1.0 is a model that fits)."""
    today = a.today
    return {
        "stage": a.stage,
        "model": MODEL,
        "inputs": {"arrival_per_s": a.arrival_per_s, "arrivals": a.arrivals, "arrival_source": a.arrival_source,
                   "window_s": a.window_s, "process_mean_s": a.process_mean, "process_scv": a.process_scv,
                   "arrival_scv": 1.0, "workers_today": a.today_workers, "workers_today_source": a.today_source},
        "asked": _model_json(a.asked),
        "today": _model_json(today),
        "measured": {"wait_mean_s": a.measured_mean, "wait_p99_s": a.measured_p99, "count": a.measured_count},
        "model_vs_measured": {
            "wait_mean": _ratio(today.wait_mean if today else None, a.measured_mean),
            "wait_p99": _ratio(today.wait_p99 if today else None, a.measured_p99),
        },
        "checks": [{"level": c.level, "code": c.code, "message": c.message, "stage": c.stage}
                   for c in a.checks],
    }


def _workers(n: int) -> str:
    return f"{n} worker" if n == 1 else f"{n} workers"


def _dur(x: float | None) -> str:
    return "-" if x is None else format_duration(x)


def _row(label: str, m: QueueModel) -> list[str]:
    if m.note is not None:  # no number: the note follows the row
        return [label, str(m.workers), f"{m.utilisation:.1%}", "-", "-", f"-  ({m.note})"]
    return [label, str(m.workers), f"{m.utilisation:.1%}", f"{m.p_wait:.1%}", _dur(m.wait_mean), _dur(m.wait_p99)]


def workers_table(a: WorkersAnswer) -> str:
    """The answer in a few lines: the inputs, the model at today's workers beside the measured
    wait (and their ratio), then the model at N workers."""
    p = percentile_label(Q)
    head = ["", "workers", "utilisation", "P(wait)", "wait mean", f"wait {p}"]
    rows = []
    if a.today is not None:
        rows.append(_row("model, today", a.today))
    if a.measured_mean is not None:
        rows.append(["measured, today", "-" if a.today_workers is None else str(a.today_workers), "", "",
                     _dur(a.measured_mean), _dur(a.measured_p99)])
    rows.append(_row(f"model, {_workers(a.asked.workers)}", a.asked))
    widths = [max(len(r[i]) for r in [head, *rows] if not r[i].startswith("-  (")) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    today = ("workers today unknown" if a.today_workers is None
             else f"today {_workers(a.today_workers)} ({a.today_source})")
    lines = [f"what-if: {a.stage} at {_workers(a.asked.workers)}; {today}",
             f"a model, not a measurement: {MODEL}",
             f"inputs: arrivals {a.arrival_per_s:.4g}/s ({a.arrivals:,.0f} {a.arrival_source} over "
             f"{format_duration(a.window_s)}), process mean {format_duration(a.process_mean)}, "
             f"cv\u00b2 {a.process_scv:.3g}",
             fmt.format(*head), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*r).rstrip() for r in rows]
    t = a.today
    if t is not None and a.measured_mean:
        fit = [f"{name} {m / x:.2f}x" for name, m, x in (("mean", t.wait_mean, a.measured_mean),
                                                        (p, t.wait_p99, a.measured_p99)) if m is not None and x]
        if fit:
            lines.append("model at today's workers / measured: " + ", ".join(fit)
                         + " (the measured wait also holds transport time the model does not know)")
    lines += [c.message for c in a.checks]
    return "\n".join(lines) + "\n"
