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


def all_lines(data: DemoData) -> Iterator[str]:
    for line in openmetrics_lines(data):
        if line != "# EOF\n":
            yield line
    yield from quirk_lines()
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
