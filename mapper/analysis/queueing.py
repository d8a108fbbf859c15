"""What-if for a stage's workers: the utilisation at N workers and the wait an M/G/c queue
model implies (``latmap whatif --workers STAGE=N``).

This is a **model**, not a measurement: it assumes items arrive at random (Poisson, squared
coefficient of variation of the gaps 1), any free worker takes the next item (one FIFO queue
in front of ``c`` identical workers), and the process times are those measured. It is checked
against the stage's measured wait at today's workers, and both are shown, so the distance
between the model and this stage is in plain sight (a measured wait also holds transport
time and batching the model does not know).

* arrival rate ``lam``: the stage's items in over the window (``LatencyMap.flow``) when the map
  has a flow, else the process distribution's count over the window;
* process time: its mean ``E[S]`` and squared coefficient of variation ``cs2 = Var[S] / E[S]^2``
  from the stage's measured process distribution (samples: exact; histograms: their
  interpolated quantile function);
* offered load ``a = lam E[S]``, utilisation ``rho = a / c``; at ``rho >= 1`` the queue grows
  without bound and no wait is given;
* Erlang C ``C(c, a)``, the probability an item waits (from the Erlang B recursion, stable for
  any ``c``); M/M/c mean wait ``C E[S] / (c - a)``; the **Allen-Cunneen** approximation for
  M/G/c multiplies it by ``(ca2 + cs2) / 2`` (``ca2 = 1``: Poisson arrivals);
* p99 of the wait: in M/M/c the wait of an item that waits is exponential with mean
  ``E[S] / (c - a)``, so ``P(W > t) = C exp(-t (c - a) / E[S])``. The same tail with the
  Allen-Cunneen mean (``E[W | W > 0]`` scaled by ``(ca2 + cs2) / 2``, as for the mean) gives
  ``p99 = theta ln(C / 0.01)`` (0 when ``C <= 1%``: the 99th percentile item does not wait).
  Exact for M/M/c; for M/G/c an approximation (the conditional wait is close to exponential
  in heavy traffic, Kingman), labelled as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mapper.analysis.latency import LatencyMap
from mapper.core.distribution import Distribution, HistogramDistribution
from mapper.core.errors import DataError, UsageError
from mapper.core.estimate import addable
from mapper.core.model import Check

#: The model, as the answer names it.
MODEL = "M/G/c: Erlang C with the Allen-Cunneen correction, Poisson arrivals assumed"
#: The wait percentile the model gives beside the mean.
Q = 0.99
UNBOUNDED = "the queue grows without bound"


@dataclass(frozen=True)
class QueueModel:
    """The model's answer at ``workers``: utilisation, the chance an item waits, its mean wait
    and p99 (seconds); None with ``note`` :data:`UNBOUNDED` at utilisation >= 1."""

    workers: int
    utilisation: float
    p_wait: float | None
    wait_mean: float | None
    wait_p99: float | None
    note: str | None = None


@dataclass(frozen=True)
class WorkersAnswer:
    """``latmap whatif --workers STAGE=N`` for one stage: the inputs, the model at the asked
    and at today's workers, and the measured wait today (None: not measured)."""

    stage: str
    asked: QueueModel
    today: QueueModel | None
    today_workers: int | None
    today_source: str | None
    arrival_per_s: float
    arrival_source: str
    arrivals: float
    window_s: float
    process_mean: float
    process_scv: float
    measured_mean: float | None
    measured_p99: float | None
    measured_count: float | None
    checks: tuple[Check, ...] = ()


def erlang_c(c: int, a: float) -> float:
    """The probability an arrival waits in M/M/c with offered load ``a`` (< c)."""
    b = 1.0
    for k in range(1, c + 1):  # Erlang B: B(k) = a B(k-1) / (k + a B(k-1))
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1.0 - rho * (1.0 - b))


def mgc(c: int, lam: float, mean_s: float, cs2: float, ca2: float = 1.0) -> QueueModel:
    """The M/G/c model (Allen-Cunneen) at ``c`` workers (see the module's definitions)."""
    a = lam * mean_s
    rho = a / c
    if rho >= 1.0:
        return QueueModel(c, rho, None, None, None, UNBOUNDED)
    pw = erlang_c(c, a)
    factor = (ca2 + cs2) / 2.0
    theta = mean_s / (c - a) * factor  # mean wait of an item that waits
    p99 = theta * math.log(pw / (1.0 - Q)) if pw > 1.0 - Q else 0.0
    return QueueModel(c, rho, pw, pw * theta, p99)


def scv(d: Distribution) -> tuple[float, float]:
    """Mean and squared coefficient of variation of a process distribution (seconds)."""
    if not addable(d):
        raise DataError(f"its process times are client-computed quantiles ({d.kind}): no variance to model with")
    if isinstance(d, HistogramDistribution) and not np.any(d.counts[np.isfinite(d.upper)] > 0):
        # every count in the +Inf bucket: its masses would all sit at one point (cv² 0, a
        # deterministic process made up)
        raise DataError("every process time is above its histogram's last finite bound: no variance to model with")
    m = d.point_masses("mid")
    w = np.asarray(m.weights, float) / float(np.sum(m.weights))
    v = np.asarray(m.values, float)
    mean = float(d.mean) if d.mean is not None else float(np.sum(w * v))
    if not mean > 0:
        raise DataError("its mean process time is 0: no load to model")
    var = float(np.sum(w * (v - float(np.sum(w * v))) ** 2))
    return mean, var / mean**2


def parse_workers(text: str, stage_names: list[str]) -> tuple[str, int]:
    """``STAGE=N`` (N a whole number >= 1) or a UsageError naming the option."""
    stage, eq, n = text.partition("=")
    if not eq or stage not in stage_names:
        known = ", ".join(stage_names)
        raise UsageError(f"--workers {text!r}: use STAGE=N with STAGE one of the spec's stages ({known})")
    try:
        workers = int(n)
    except ValueError:
        workers = 0
    if workers < 1 or str(workers) != n.strip():
        raise UsageError(f"--workers {text!r}: N must be a whole number >= 1, got {n!r}")
    return stage, workers


def workers_answer(lm: LatencyMap, stage: str, workers: int) -> WorkersAnswer:
    """The answer for ``stage`` at ``workers``; DataError (one line, naming the stage) when the
    map cannot give the arrival rate or the process times."""
    s = lm.stage_result(stage)
    proc = s.process.distribution if s.process is not None else None
    if proc is None or proc.count <= 0:
        raise DataError(f"{stage}: no process times in the window: no arrival rate or process time to model")
    try:
        mean_s, cs2 = scv(proc)
    except DataError as err:
        raise DataError(f"{stage}: {err}") from None
    window = lm.window.seconds
    flow = lm.flow.of(stage) if lm.flow is not None else None
    checks = []
    if flow is not None and flow.items_in:
        arrivals, source = float(flow.items_in), "items in (flow)"
    else:
        arrivals, source = float(proc.count), "process samples"
    if window <= 0 or arrivals <= 0:
        raise DataError(f"{stage}: no arrivals in the window: no load to model")
    lam = arrivals / window
    today_n: int | None = lm.spec.stage(stage).workers
    today_src: str | None = "spec"
    if today_n is None and flow is not None and flow.utilisation is not None:
        today_n, today_src = flow.utilisation.workers, flow.utilisation.workers_source
    if today_n is None:
        today_src = None
        checks.append(Check("info", "workers-unknown", f"{stage}: workers today unknown (set `workers:` on the "
                            "stage, or send spans with service.instance.id): the model is not checked against "
                            "the measured wait", stage))
    wait = s.wait.distribution if s.wait is not None else None
    m_mean = m_p99 = m_count = None
    if wait is not None and wait.count > 0:
        m_mean, m_count = wait.mean, wait.count
        m_p99 = wait.quantile(Q).value
    elif today_n is not None:
        checks.append(Check("info", "no-measured-wait", f"{stage}: no measured wait in the window: the model is "
                            "not checked against one", stage, "wait"))
    today = mgc(today_n, lam, mean_s, cs2) if today_n else None
    return WorkersAnswer(stage, mgc(workers, lam, mean_s, cs2), today, today_n, today_src, lam, source,
                         arrivals, window, mean_s, cs2, m_mean, m_p99, m_count, tuple(checks))
