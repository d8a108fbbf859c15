"""Known data for the Prometheus tests: the demo's day, plus series made for one quirk each.

Everything is written as OpenMetrics with timestamps and backfilled with promtool, so the
expected bucket counts (and the raw samples behind them) are known exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from mapper.demo.data import DemoData, openmetrics_lines, simulate

DAY = 86400.0
#: The demo data's window end: a whole hour, two hours in the past when the tests start.
END = float(int((__import__("time").time() - 7200) // 3600) * 3600)
#: The quirk series span (QUIRK_START, END]; queries use a 2h window so increase() is exact.
QUIRK_START = END - 3600.0
QUIRK_WINDOW = 7200.0
STEP = 15.0


def demo() -> DemoData:
    return simulate(END - DAY + STEP, END, seed=11)


def _hist_lines(name: str, labels: str, bounds: list[float], cumulative_rows: list[list[float]],
                times: list[float], sums: list[float] | None = None,
                counts: list[float] | None = None) -> Iterator[str]:
    les = ["+Inf" if b == math.inf else repr(b) for b in bounds]
    sep = "," if labels else ""
    for row, t, i in zip(cumulative_rows, times, range(len(times)), strict=True):
        for le, c in zip(les, row, strict=True):
            yield f'{name}_bucket{{{labels}{sep}le="{le}"}} {c} {t:.3f}\n'
        yield f"{name}_count{{{labels}}} {counts[i] if counts else row[-1]} {t:.3f}\n"
        yield f"{name}_sum{{{labels}}} {sums[i] if sums else 0.0} {t:.3f}\n"


def quirk_times() -> list[float]:
    return list(np.arange(QUIRK_START, END + 1, STEP))


SPARSE_BOUNDS = [0.01, 0.05, 0.1, math.inf]
INF_BOUNDS = [0.01, 0.02, math.inf]


def quirk_lines() -> Iterator[str]:
    """One histogram or summary per quirk the collector must notice."""
    t = quirk_times()
    n = len(t)
    ramp = np.linspace(0, 1, n)
    # counter reset: 0..100 in the first half, restart, 0..50 in the second half.
    half = n // 2
    reset = [list(np.full(3, 100 * i / (half - 1))) for i in range(half)]
    reset += [list(np.full(3, 50 * i / (n - half - 1))) for i in range(n - half)]
    reset = [[round(v * f) for v, f in zip(r, (0.5, 0.9, 1.0), strict=True)] for r in reset]
    yield "# TYPE reset_seconds histogram\n"
    yield from _hist_lines("reset_seconds", "", [0.1, 0.5, math.inf], reset, t)
    # non-monotonic: le=0.1 bigger than le=0.5 at the end.
    nonmono = [[round(80 * r), round(60 * r), round(100 * r)] for r in ramp]
    yield "# TYPE nonmono_seconds histogram\n"
    yield from _hist_lines("nonmono_seconds", "", [0.1, 0.5, math.inf], nonmono, t)
    # _count disagrees with the +Inf bucket.
    mism = [[round(50 * r), round(100 * r)] for r in ramp]
    yield "# TYPE mismatch_seconds histogram\n"
    yield from _hist_lines("mismatch_seconds", "", [0.1, math.inf], mism, t,
                           counts=[round(130 * r) for r in ramp])
    # sparse: 50 observations only.
    sparse = [[round(10 * r), round(40 * r), round(49 * r), round(50 * r)] for r in ramp]
    yield "# TYPE sparse_seconds histogram\n"
    yield from _hist_lines("sparse_seconds", "", SPARSE_BOUNDS, sparse, t)
    # most observations beyond the last finite bound.
    inf = [[round(1000 * r), round(2000 * r), round(100000 * r)] for r in ramp]
    yield "# TYPE inf_seconds histogram\n"
    yield from _hist_lines("inf_seconds", "", INF_BOUNDS, inf, t)
    # a summary with two instances.
    yield "# TYPE rpc_latency_seconds summary\n"
    for inst, (p50, p99) in (("a:9100", (0.010, 0.080)), ("b:9100", (0.012, 0.300))):
        for i, ts in enumerate(t):
            yield f'rpc_latency_seconds{{instance="{inst}",quantile="0.5"}} {p50} {ts:.3f}\n'
            yield f'rpc_latency_seconds{{instance="{inst}",quantile="0.99"}} {p99} {ts:.3f}\n'
            yield f'rpc_latency_seconds_count{{instance="{inst}"}} {i * 10} {ts:.3f}\n'
            yield f'rpc_latency_seconds_sum{{instance="{inst}"}} {i * 0.2} {ts:.3f}\n'
    # a target whose scrapes failed for 20 steps (up == 0), with its histogram.
    yield "# TYPE up gauge\n"
    for i, ts in enumerate(t):
        yield f'up{{job="app",instance="a:1"}} {0 if 100 <= i < 120 else 1} {ts:.3f}\n'
    for ts in t:
        yield f'up{{job="app",instance="b:1"}} 1 {ts:.3f}\n'
    gappy = [[round(40 * r), round(80 * r)] for r in ramp]
    yield "# TYPE gappy_seconds histogram\n"
    yield from _hist_lines("gappy_seconds", 'job="app",instance="a:1"', [0.1, math.inf], gappy, t)
    yield from _hist_lines("gappy_seconds", 'job="app",instance="b:1"', [0.1, math.inf], gappy, t)
    # a label value that needs escaping in PromQL.
    yield "# TYPE odd_label_seconds histogram\n"
    odd = [[round(5 * r), round(10 * r)] for r in ramp]
    yield from _hist_lines("odd_label_seconds", 'route="/a\\"b\\\\c"', [0.1, math.inf], odd, t)


COARSE_BOUNDS = [0.1, 1.0, math.inf]
FINE_BOUNDS = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.15, 0.2, 0.5, math.inf]


def coarse_values() -> np.ndarray:
    """2,000 observations of a few ms, all in the coarse histogram's first bucket (<= 100ms)."""
    return np.clip(np.random.default_rng(5).lognormal(math.log(0.004), 0.6, 2000), 1e-4, 0.099)


def fine_values() -> np.ndarray:
    """3,000 observations with p99 around 80ms, in fine buckets."""
    return np.random.default_rng(6).lognormal(math.log(0.03), 0.42, 3000)


def _observed(name: str, labels: str, bounds: list[float], values: np.ndarray, times: list[float],
              seen: list[int]) -> Iterator[str]:
    """A histogram that has observed the first ``seen[i]`` of ``values`` at ``times[i]``."""
    rows = [[int(np.sum(values[:k] <= b)) for b in bounds] for k in seen]
    sums = [float(np.sum(values[:k])) for k in seen]
    yield from _hist_lines(name, labels, bounds, rows, times, sums=sums)


#: The born series: present from the middle of the quirk hour, 121 observations at its first scrape.
BORN_FIRST = 121
BORN_TOTAL = 700
BORN_OLD_TOTAL = 1000


def born_values() -> np.ndarray:
    return np.random.default_rng(7).exponential(0.02, BORN_TOTAL + BORN_OLD_TOTAL)


def born_start() -> float:
    return quirk_times()[len(quirk_times()) // 2]


def new_lines() -> Iterator[str]:
    """Series for issue 14: a summary family with a ``slice`` label, coarse vs fine buckets,
    a series born inside the window."""
    t = quirk_times()
    n = len(t)
    yield "# TYPE engine_query_seconds summary\n"
    for sl, (p50, p99) in (("inner_eval", (1.6e-5, 3e-5)), ("prepare_time", (4e-6, 9e-6)),
                           ("queue_time", (2e-6, 5e-6)), ("result_sort", (0.0, 0.0))):
        for i, ts in enumerate(t):
            yield f'engine_query_seconds{{instance="p:9090",slice="{sl}",quantile="0.5"}} {p50} {ts:.3f}\n'
            yield f'engine_query_seconds{{instance="p:9090",slice="{sl}",quantile="0.99"}} {p99} {ts:.3f}\n'
            yield f'engine_query_seconds_count{{instance="p:9090",slice="{sl}"}} {i * 3} {ts:.3f}\n'
            yield f'engine_query_seconds_sum{{instance="p:9090",slice="{sl}"}} {i * 3 * p50} {ts:.3f}\n'
    yield "# TYPE coarse_seconds histogram\n"
    cv = coarse_values()
    yield from _observed("coarse_seconds", "", COARSE_BOUNDS, cv, t, [round(cv.size * i / (n - 1)) for i in range(n)])
    yield "# TYPE fine_seconds histogram\n"
    fv = fine_values()
    yield from _observed("fine_seconds", "", FINE_BOUNDS, fv, t, [round(fv.size * i / (n - 1)) for i in range(n)])
    # a target that failed 30 scrapes before its series existed, then 4 while it did
    yield "# TYPE up gauge\n"
    for i, ts in enumerate(t):
        yield f'up{{job="late",instance="l:1"}} {0 if i < 30 or 200 <= i < 204 else 1} {ts:.3f}\n'
    late = [[round(30 * r), round(60 * r)] for r in np.linspace(0, 1, n - 30)]
    yield "# TYPE late_seconds histogram\n"
    yield from _hist_lines("late_seconds", 'job="late",instance="l:1"', [0.1, math.inf], late, t[30:])
    # bad input: a summary with NaN quantiles (nothing in the client's window)
    yield "# TYPE idle_seconds summary\n"
    for ts in t:
        yield f'idle_seconds{{quantile="0.5"}} NaN {ts:.3f}\n'
        yield f"idle_seconds_count 5 {ts:.3f}\n"
        yield f"idle_seconds_sum 0.5 {ts:.3f}\n"
    # bad input: a histogram whose _sum falls (negative observations in a latency?)
    ramp = np.linspace(0, 1, n)
    neg = [[round(20 * r), round(40 * r)] for r in ramp]
    yield "# TYPE negsum_seconds histogram\n"
    yield from _hist_lines("negsum_seconds", "", [0.1, math.inf], neg, t, sums=[-3.0 * r for r in ramp])
    # bad input: a series that goes away and comes back twice (gaps of 10 minutes)
    alive = [i for i in range(n) if not (60 <= i < 100 or 140 <= i < 180)]
    churn = [[round(10 * i / n), round(20 * i / n)] for i in alive]
    yield "# TYPE churn_seconds histogram\n"
    yield from _hist_lines("churn_seconds", "", [0.1, math.inf], churn, [t[i] for i in alive])
    bv = born_values()
    yield "# TYPE born_seconds histogram\n"
    old, new = bv[:BORN_OLD_TOTAL], bv[BORN_OLD_TOTAL:]
    yield from _observed("born_seconds", 'instance="old:1"', FINE_BOUNDS, old, t,
                         [round(old.size * i / (n - 1)) for i in range(n)])
    half = n // 2
    tb = t[half:]
    seen = [BORN_FIRST + round((new.size - BORN_FIRST) * i / (len(tb) - 1)) for i in range(len(tb))]
    yield from _observed("born_seconds", 'instance="new:1"', FINE_BOUNDS, new, tb, seen)


def all_lines(data: DemoData) -> Iterator[str]:
    for line in openmetrics_lines(data):
        if line != "# EOF\n":
            yield line
    yield from quirk_lines()
    yield from new_lines()
    from tests.flow_data import flow_lines  # it builds on this module's helpers

    yield from flow_lines()
    yield "# EOF\n"


def prometheus_text_ms(data: DemoData) -> str:
    """The demo data as Prometheus text with millisecond timestamps (VictoriaMetrics import)."""
    out = []
    for line in openmetrics_lines(data):
        if line.startswith("#"):
            continue
        head, value, ts = line.rsplit(" ", 2)
        out.append(f"{head} {value} {round(float(ts) * 1000)}\n")
    return "".join(out)
