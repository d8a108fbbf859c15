"""Quantile accuracy: latmap's histogram percentiles vs Prometheus's ``histogram_quantile``.

For several known latency distributions (fixed seeds), the raw samples are counted into
classic Prometheus histograms with realistic bucket layouts; then p50, p99 and p99.99 are
estimated from the buckets alone by

* latmap: :meth:`mapper.core.distribution.HistogramDistribution.quantile` (default "powerlaw"
  interpolation: a power-law density inside the bucket where the neighbours show its shape), with its interval;
* Prometheus: ``histogram_quantile`` evaluated by a REAL Prometheus server (the
  ``prometheus`` binary, 2.42 here) over the very same bucket counts,

and both are compared with the exact quantile of the raw samples. "Exact" is numpy's
default sample quantile, ``np.quantile(x, q)`` (linear interpolation between order
statistics, Hyndman & Fan type 7), which is also the definition latmap's interval refers to.
The error of an estimate is ``|estimate - exact| / exact``.

Requirements (from the issue); the script exits 1 when one fails:

1. latmap's interval ``[low, high]`` contains the exact value, every time;
2. latmap's error is no worse than Prometheus's (within 1e-12), on every numeric cell.

A percentile whose rank falls in the ``+Inf`` bucket has no finite upper bound: Prometheus
returns the last finite bucket bound anyway, latmap returns no value and says "in the +Inf
bucket". That is counted as latmap being honest, shown as such in the table, and left out
of the numeric comparison (the interval check still applies: ``low <= exact``). The cases
are designed so that only one cell (the heaviest tail against the default buckets, whose
largest bound is 10 s) lands there.

As a harness check, latmap with ``interpolation="linear"`` must reproduce Prometheus's
number (relative difference <= 1e-9); a mismatch would mean the two did not see the same
buckets, so it fails the run too.

How the data gets into Prometheus, and why ``increase()``:
all cases go into one OpenMetrics file under different metric names, backfilled with
``promtool tsdb create-blocks-from openmetrics`` (:func:`mapper.demo.localprom.backfill`), and
one server answers every query. Each histogram has three scrapes: all counters 0 at T0, the
first half of the samples at T0+30 s, all samples at T1 = T0+60 s. Prometheus is queried
at T1 with ``histogram_quantile(q, sum by (le) (increase(NAME_bucket[10m])))``, the query
dashboards and latmap's own Prometheus collector use, so this measures Prometheus as it is
used. The query is exact here, not extrapolated: the window reaches back before T0 and the
counters start at 0, so Prometheus caps the extrapolation towards the window start at the
zero point (an extrapolation of 0 s), and there is nothing to extrapolate after T1, the
evaluation time. The script does not take that on trust: it first queries
``sum by (le) (increase(NAME_bucket[10m]))`` and requires every bucket to equal the counts
bit for bit (else exit 2). The raw-counter query (``histogram_quantile(q, NAME_bucket)``)
would sidestep extrapolation, but it is not what anyone runs against counters.

Usage::

    python benchmarks/quantile_accuracy.py [--quick] [--samples N] [--json PATH]

``main(argv)`` returns the exit code: 0 all requirements hold, 1 a requirement failed,
2 the benchmark could not run (no prometheus/promtool, a failed query, inexact increase).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import requests

from mapper.core.distribution import Estimate, HistogramDistribution, percentile_label
from mapper.demo.localprom import backfill, binaries_available, running_prometheus

QUANTILES = (0.5, 0.99, 0.9999)
SEED = 20240611
FULL_SAMPLES = 2_000_000
QUICK_SAMPLES = 200_000  # still >= 1 / (1 - 0.9999) = 10,000, so p99.99 is supported
T0 = 1_700_000_000.0  # an arbitrary fixed past time (inside the server's 3650d retention)
T_MID = T0 + 30.0
T1 = T0 + 60.0
WINDOW = "10m"
TOLERANCE = 1e-12  # latmap error may exceed Prometheus's by this much (float noise)
LINEAR_TOLERANCE = 1e-9  # latmap "linear" vs Prometheus, relative

# --------------------------------------------------------------------------- cases

#: Bucket layouts, upper bounds in seconds (+Inf is added).
LAYOUTS: dict[str, tuple[float, ...]] = {
    # prometheus_client's DEFAULT_BUCKETS (also Go's DefBuckets and OTel's ms defaults).
    "default": (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0),
    # Exponential, factor 2: 1 ms .. 16.384 s.
    "exp2": tuple(0.001 * 2.0**k for k in range(15)),
    # Finer exponential, factor 2^(1/4) (the bounds of a schema-2 native histogram):
    # 1 ms .. 32.768 s, 61 bounds.
    "exp2q": tuple(0.001 * 2.0 ** (k / 4) for k in range(61)),
    # Coarse: Prometheus's own prometheus_http_request_duration_seconds buckets, where a fast
    # handler's every request falls in the first bucket (issue 14).
    "coarse": (0.1, 0.2, 0.4, 1.0, 3.0, 8.0, 20.0, 60.0, 120.0),
}


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> np.ndarray:
    return rng.lognormal(math.log(median), sigma, n)


def _mixture(rng: np.random.Generator, p_second: float, first: np.ndarray,
             second: np.ndarray) -> np.ndarray:
    return np.where(rng.random(first.size) < p_second, second, first)


def _pareto(rng: np.random.Generator, start: float, alpha: float, n: int) -> np.ndarray:
    """Classic Pareto: P(X > x) = (start / x) ** alpha for x >= start."""
    return start * (1.0 + rng.pareto(alpha, n))


@dataclass(frozen=True)
class DistCase:
    name: str
    description: str
    draw: Callable[[np.random.Generator, int], np.ndarray]


DISTRIBUTIONS: tuple[DistCase, ...] = (
    DistCase("lognormal", "lognormal, median 20 ms, sigma 1.0",
             lambda r, n: _lognormal(r, 0.020, 1.0, n)),
    DistCase("bimodal", "cache: 80% hits lognormal(2 ms, 0.4) + 20% misses lognormal(80 ms, 0.5)",
             lambda r, n: _mixture(r, 0.20, _lognormal(r, 0.002, 0.4, n), _lognormal(r, 0.080, 0.5, n))),
    DistCase("pareto2.5", "lognormal(30 ms, 0.5) body + 2% Pareto tail, alpha 2.5, beyond 100 ms",
             lambda r, n: _mixture(r, 0.02, _lognormal(r, 0.030, 0.5, n), _pareto(r, 0.100, 2.5, n))),
    DistCase("pareto1.5", "lognormal(30 ms, 0.5) body + 5% Pareto tail, alpha 1.5, beyond 200 ms",
             lambda r, n: _mixture(r, 0.05, _lognormal(r, 0.030, 0.5, n), _pareto(r, 0.200, 1.5, n))),
    DistCase("narrow", "lognormal, median 45 ms, sigma 0.1",
             lambda r, n: _lognormal(r, 0.045, 0.1, n)),
)


@dataclass
class HistCase:
    """One distribution in one bucket layout, with everything known about it."""

    dist: str
    layout: str
    metric: str
    bounds: tuple[float, ...]  # finite upper bounds; +Inf implied
    cum_mid: np.ndarray  # cumulative counts per bound incl. +Inf, at T_MID
    cum_end: np.ndarray  # ... at T1
    sum_mid: float
    sum_end: float
    exact: dict[float, float]

    @property
    def name(self) -> str:
        return f"{self.dist}/{self.layout}"

    @property
    def all_bounds(self) -> tuple[float, ...]:
        return (*self.bounds, math.inf)


def _cumulative(sorted_x: np.ndarray, bounds: Sequence[float]) -> np.ndarray:
    """Cumulative counts with ``le`` semantics (value <= bound), +Inf last."""
    below = np.searchsorted(sorted_x, np.asarray(bounds, dtype=float), side="right")
    return np.append(below, sorted_x.size).astype(np.int64)


def make_cases(samples: int) -> list[HistCase]:
    cases = []
    for i, dist in enumerate(DISTRIBUTIONS):
        rng = np.random.default_rng([SEED, i])
        x = dist.draw(rng, samples)
        half = np.sort(x[: samples // 2])  # the samples are i.i.d.; the first half came first
        full = np.sort(x)
        exact = {q: float(np.quantile(full, q)) for q in QUANTILES}
        for layout, bounds in LAYOUTS.items():
            cases.append(HistCase(
                dist=dist.name, layout=layout,
                metric=f"bench_{dist.name.replace('.', '_')}_{layout}_seconds",
                bounds=bounds, cum_mid=_cumulative(half, bounds), cum_end=_cumulative(full, bounds),
                sum_mid=float(half.sum()), sum_end=float(full.sum()), exact=exact,
            ))
    return cases


# --------------------------------------------------------------------------- Prometheus


def _fmt_le(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(float(bound))


def openmetrics_lines(cases: Sequence[HistCase]) -> Iterator[str]:
    """All cases as one OpenMetrics exposition with timestamps, for promtool."""
    for c in cases:
        yield f"# HELP {c.metric} {c.name} (latmap quantile accuracy benchmark)\n"
        yield f"# TYPE {c.metric} histogram\n"
        les = [_fmt_le(b) for b in c.all_bounds]
        zeros = np.zeros_like(c.cum_end)
        for t, cum, total in ((T0, zeros, 0.0), (T_MID, c.cum_mid, c.sum_mid), (T1, c.cum_end, c.sum_end)):
            ts = f" {t:.3f}\n"
            yield "".join(
                f'{c.metric}_bucket{{le="{le}"}} {int(n)}{ts}' for le, n in zip(les, cum, strict=True)
            )
            yield f"{c.metric}_count {int(cum[-1])}{ts}{c.metric}_sum {total!r}{ts}"
    yield "# EOF\n"


class PromError(RuntimeError):
    pass


def prom_query(url: str, expr: str, at: float) -> list[dict]:
    resp = requests.post(f"{url}/api/v1/query", data={"query": expr, "time": f"{at:.3f}"}, timeout=30)
    try:
        body = resp.json()
    except ValueError as e:
        raise PromError(f"{expr}: HTTP {resp.status_code}, not JSON") from e
    if body.get("status") != "success" or body["data"]["resultType"] != "vector":
        raise PromError(f"{expr}: {body.get('error', body)}")
    return body["data"]["result"]


def increase_expr(c: HistCase) -> str:
    return f"sum by (le) (increase({c.metric}_bucket[{WINDOW}]))"


def verify_increase(url: str, c: HistCase) -> None:
    """Require Prometheus's windowed increase to equal the bucket counts exactly."""
    result = prom_query(url, increase_expr(c), T1)
    got = {float(r["metric"]["le"]): float(r["value"][1]) for r in result}
    want = dict(zip(c.all_bounds, (float(v) for v in c.cum_end), strict=True))
    if got != want:
        diffs = [f"le={b:g}: {got.get(b)} != {v:g}" for b, v in want.items() if got.get(b) != v]
        raise PromError(f"{c.metric}: increase() is not the exact counts: {'; '.join(diffs[:3])}"
                        f"{' ...' if len(diffs) > 3 else ''}")


def prom_quantile(url: str, c: HistCase, q: float) -> float:
    result = prom_query(url, f"histogram_quantile({q!r}, {increase_expr(c)})", T1)
    if len(result) != 1:
        raise PromError(f"{c.metric}: histogram_quantile({q}) returned {len(result)} series")
    return float(result[0]["value"][1])


# --------------------------------------------------------------------------- comparison


@dataclass
class Row:
    case: str
    q: float
    exact: float
    latmap: float | None
    low: float | None
    high: float | None
    note: str | None
    linear: float | None
    prom: float
    latmap_err: float | None
    prom_err: float
    contains: bool
    inf_bucket: bool
    linear_matches: bool
    #: interval width / width of the bucket holding the rank: from the buckets alone (before
    #: issue 14) and narrowed by the exact ``_sum`` (now); None when unbounded.
    width_before: float | None = None
    width_after: float | None = None

    @property
    def label(self) -> str:
        return percentile_label(self.q)

    @property
    def numeric(self) -> bool:
        return self.latmap is not None

    @property
    def worse(self) -> bool:
        """Requirement 2 fails: latmap has no number (not +Inf), or a larger error."""
        if self.inf_bucket:
            return False
        return self.latmap_err is None or self.latmap_err > self.prom_err + TOLERANCE

    @property
    def verdict(self) -> str:
        if self.inf_bucket:
            return "+Inf: latmap honest"
        if self.worse:
            return "PROMETHEUS BETTER"
        assert self.latmap_err is not None
        if abs(self.latmap_err - self.prom_err) <= TOLERANCE:
            return "tie"
        return "latmap"


def rel_err(est: float, exact: float) -> float:
    return abs(est - exact) / abs(exact)


def compare(c: HistCase, q: float, prom: float) -> Row:
    counts = [float(v) for v in c.cum_end]
    h = HistogramDistribution.from_cumulative(c.all_bounds, counts, sum=c.sum_end)
    est: Estimate = h.quantile(q)
    before = HistogramDistribution.from_cumulative(c.all_bounds, counts).quantile(q)
    b = int(h.bucket_of_rank(q * h.count))
    bucket = float(h.upper[b] - h.lower[b])

    def width(e: Estimate) -> float | None:
        if e.low is None or e.high is None or not math.isfinite(bucket) or bucket <= 0:
            return None
        return (e.high - e.low) / bucket

    lin = HistogramDistribution.from_cumulative(c.all_bounds, counts, interpolation="linear").quantile(q)
    exact = c.exact[q]
    low = -math.inf if est.low is None else est.low
    high = math.inf if est.high is None else est.high
    inf_bucket = est.value is None and est.high is None and "+Inf bucket" in (est.note or "")
    linear_matches = (
        lin.value is not None and math.isfinite(prom)
        and abs(lin.value - prom) <= LINEAR_TOLERANCE * abs(prom)
    ) or (inf_bucket and lin.value is None and prom == c.bounds[-1])
    return Row(
        case=c.name, q=q, exact=exact, latmap=est.value, low=est.low, high=est.high, note=est.note,
        linear=lin.value, prom=prom,
        latmap_err=None if est.value is None else rel_err(est.value, exact),
        prom_err=rel_err(prom, exact) if math.isfinite(prom) else math.inf,
        contains=low <= exact <= high, inf_bucket=inf_bucket, linear_matches=linear_matches,
        width_before=width(before), width_after=width(est),
    )


# --------------------------------------------------------------------------- output


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    if math.isinf(v):
        return "inf"
    ms = v * 1000
    return f"{ms:.0f}" if abs(ms) >= 10_000 else f"{ms:.4g}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.3f}%"


def format_table(rows: Sequence[Row]) -> str:
    head = ("case", "q", "exact ms", "latmap ms", "latmap interval ms", "width/bucket before->now", "latmap err",
            "prom ms", "prom err", "better")
    body = []
    for r in rows:
        low = "-inf" if r.low is None else _ms(r.low)
        high = "+inf" if r.high is None else _ms(r.high)
        interval = f"[{low}, {high}]"
        interval += "" if r.contains else " MISSES"
        latmap = _ms(r.latmap) if r.latmap is not None else ("None" if r.inf_bucket else f"None ({r.note})")
        widths_ = ("-" if r.width_before is None or r.width_after is None
                   else f"{r.width_before:.3f} -> {r.width_after:.3f}")
        body.append((r.case, r.label, _ms(r.exact), latmap, interval, widths_, _pct(r.latmap_err),
                     _ms(r.prom), _pct(r.prom_err), r.verdict))
    widths = [max(len(str(x[i])) for x in (head, *body)) for i in range(len(head))]
    right = {1, 2, 3, 5, 6, 7, 8}

    def line(cols: Sequence[str]) -> str:
        cells = zip(cols, widths, strict=True)
        padded = ((v.rjust(w) if i in right else v.ljust(w)) for i, (v, w) in enumerate(cells))
        return "  ".join(padded).rstrip()

    out = [line(head), line(["-" * w for w in widths])]
    prev = None
    for r, cols in zip(rows, body, strict=True):
        if prev is not None and r.case.split("/")[0] != prev:
            out.append("")
        prev = r.case.split("/")[0]
        out.append(line(cols))
    return "\n".join(out)


@dataclass
class Summary:
    cells: int
    numeric: int
    inf_bucket: int
    contains: int
    latmap_better: int
    ties: int
    prom_better: int
    linear_matches: int
    mean_err_latmap: float
    mean_err_prom: float
    ratio: float
    per_quantile: dict[str, tuple[float, float, float]]  # label -> (latmap, prom, ratio)
    max_err_latmap: float
    max_err_prom: float
    #: mean interval width / bucket width over bounded cells: (before, now), overall and per label
    widths: tuple[float, float] = (math.nan, math.nan)
    widths_per_quantile: dict[str, tuple[float, float]] | None = None


def summarise(rows: Sequence[Row]) -> Summary:
    num = [r for r in rows if r.numeric and math.isfinite(r.prom_err)]

    def means(sel: Sequence[Row]) -> tuple[float, float, float]:
        lm = float(np.mean([r.latmap_err for r in sel])) if sel else math.nan
        pm = float(np.mean([r.prom_err for r in sel])) if sel else math.nan
        return lm, pm, (lm / pm if pm > 0 else math.nan)

    lm, pm, ratio = means(num)

    def wmeans(sel: Sequence[Row]) -> tuple[float, float]:
        w = [(r.width_before, r.width_after) for r in sel if r.width_before is not None and r.width_after is not None]
        if not w:
            return math.nan, math.nan
        return float(np.mean([a for a, _ in w])), float(np.mean([b for _, b in w]))

    return Summary(
        cells=len(rows), numeric=len(num), inf_bucket=sum(r.inf_bucket for r in rows),
        contains=sum(r.contains for r in rows),
        latmap_better=sum(r.verdict == "latmap" for r in rows), ties=sum(r.verdict == "tie" for r in rows),
        prom_better=sum(r.worse for r in rows), linear_matches=sum(r.linear_matches for r in rows),
        mean_err_latmap=lm, mean_err_prom=pm, ratio=ratio,
        per_quantile={percentile_label(q): means([r for r in num if r.q == q]) for q in QUANTILES},
        max_err_latmap=max((r.latmap_err or 0.0) for r in num) if num else math.nan,
        max_err_prom=max(r.prom_err for r in num) if num else math.nan,
        widths=wmeans(rows),
        widths_per_quantile={percentile_label(q): wmeans([r for r in rows if r.q == q]) for q in QUANTILES},
    )


def format_summary(s: Summary) -> str:
    per_q = ", ".join(
        f"{k} {lm * 100:.3f}%/{pm * 100:.3f}% = {ra:.3f}" for k, (lm, pm, ra) in s.per_quantile.items()
    )
    return "\n".join([
        f"summary: mean |error| latmap {s.mean_err_latmap * 100:.3f}% vs Prometheus "
        f"{s.mean_err_prom * 100:.3f}%: ratio latmap/Prometheus {s.ratio:.3f} "
        f"over {s.numeric} numeric cells",
        f"  per percentile (latmap/Prometheus = ratio): {per_q}",
        f"  max |error|: latmap {s.max_err_latmap * 100:.3f}%, Prometheus {s.max_err_prom * 100:.3f}%",
        f"  latmap better {s.latmap_better}, tie {s.ties}, Prometheus better {s.prom_better}; "
        f"+Inf bucket (latmap None, Prometheus last bound) {s.inf_bucket}",
        "  mean interval width / bucket width, buckets only -> narrowed by _sum: "
        f"{s.widths[0]:.3f} -> {s.widths[1]:.3f} (" + ", ".join(
            f"{k} {a:.3f} -> {b:.3f}" for k, (a, b) in (s.widths_per_quantile or {}).items()) + ")",
        f"  interval contains exact: {s.contains}/{s.cells}; "
        f"latmap linear == Prometheus: {s.linear_matches}/{s.cells}",
    ])


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK_SAMPLES:,} samples per distribution instead of {FULL_SAMPLES:,}")
    p.add_argument("--samples", type=int, default=None, help="samples per distribution (overrides --quick)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="also write every row and the summary as JSON to PATH")
    return p.parse_args(argv)


def run(samples: int) -> tuple[list[Row], dict[str, float]]:
    """Generate, backfill, query; return the rows and the phase timings (seconds)."""
    timings: dict[str, float] = {}
    t = time.monotonic()
    cases = make_cases(samples)
    timings["samples"] = time.monotonic() - t
    with tempfile.TemporaryDirectory(prefix="latmap-bench-") as tmp:
        data = Path(tmp) / "data"
        t = time.monotonic()
        backfill(openmetrics_lines(cases), data)
        timings["backfill"] = time.monotonic() - t
        t = time.monotonic()
        with running_prometheus(data) as url:
            timings["prometheus start"] = time.monotonic() - t
            t = time.monotonic()
            rows = []
            for c in cases:
                verify_increase(url, c)
                rows.extend(compare(c, q, prom_quantile(url, c, q)) for q in QUANTILES)
            timings["queries"] = time.monotonic() - t
    return rows, timings


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    samples = args.samples or (QUICK_SAMPLES if args.quick else FULL_SAMPLES)
    if not binaries_available():
        print("quantile_accuracy: needs the prometheus and promtool binaries on PATH", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        rows, timings = run(samples)
    except Exception as e:
        print(f"quantile_accuracy: could not run: {e}", file=sys.stderr)
        return 2
    total = time.monotonic() - started

    print(f"latmap (powerlaw) vs Prometheus histogram_quantile vs exact np.quantile (type 7); "
          f"{samples:,} samples per distribution, seed {SEED}")
    for d in DISTRIBUTIONS:
        print(f"  {d.name}: {d.description}")
    print("  layouts: " + "; ".join(
        f"{k}: {len(v)} bounds {v[0] * 1000:g} ms .. {v[-1]:g} s" for k, v in LAYOUTS.items()))
    print()
    print(format_table(rows))
    print()
    summary = summarise(rows)
    print(format_summary(summary))
    print(f"runtime: {total:.1f} s (" + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) + ")")

    failures = []
    failures += [f"interval misses exact: {r.case} {r.label}: exact {r.exact!r} not in [{r.low}, {r.high}]"
                 for r in rows if not r.contains]
    failures += [f"latmap worse than Prometheus: {r.case} {r.label}: latmap {r.latmap!r} "
                 f"(err {_pct(r.latmap_err)}) vs Prometheus {r.prom!r} (err {_pct(r.prom_err)}), "
                 f"exact {r.exact!r}" for r in rows if r.worse]
    failures += [f"latmap linear != Prometheus: {r.case} {r.label}: {r.linear!r} vs {r.prom!r}"
                 for r in rows if not r.linear_matches]
    if args.json:
        args.json.write_text(json.dumps({
            "samples": samples, "seed": SEED, "runtime_s": total, "timings_s": timings,
            "rows": [asdict(r) | {"label": r.label, "verdict": r.verdict, "worse": r.worse} for r in rows],
            "summary": asdict(summary), "failures": failures,
        }, indent=1, allow_nan=True), encoding="utf-8")
    for f in failures:
        print(f"FAIL: {f}")
    print("result: " + ("FAIL" if failures else "OK: both requirements hold"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
