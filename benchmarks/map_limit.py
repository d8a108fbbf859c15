"""``latmap map`` against its floor, and ``engine.memory_budget`` as a bound on memory.

One spool of linked 7-span items (``benchmarks/trace_scale.py``'s data: three traces an item,
joined by span links; Parquet files as compaction writes them) is mapped by the real CLI, each
map in a fresh process timed from start to exit with its own peak RSS (``VmHWM``):

* **floor**: reading the same spans (every Parquet file, every column, into Arrow), and
  reading them into a span batch (:func:`collectors.spool.reader.read_spool`: columns to
  numpy, deduplicated), in this process, best of two: the time no map of these spans can
  beat. Printed beside the map's seconds with the ratio (target: the map, reports written,
  within 4x of reading the spans into a batch);
* **fixed cost**: a map of a tiny spool (2,000 items): start-up, imports, reports;
* **unbounded**: ``memory_budget: 64GiB`` (the whole window in memory);
* **budgeted**: ``memory_budget: 256MiB`` (or ``--budget``): the partitions are sized from
  the budget (``EngineSpec.spans_per_partition``); target: peak RSS within the fixed cost
  plus 1.25x the budget, and every number of the report equal to the unbounded map's.

Each map is run with ``--format json`` (no report files) and, for the default engine, again
with ``--out`` (report.json, report.md, report.html with its charts, map.svg): the cost of
the report files is printed apart. The naive baseline (per-span Python dicts and loops) is
``benchmarks/trace_ingest.py --part b``'s; this script measures the limit and the budget.

Usage::

    python benchmarks/map_limit.py [--items N] [--budget SIZE] [--quick] [--keep DIR]

``--quick``: 3,000 items (21,000 spans) with a 4 MiB budget (10,000-span partitions), without
the default engine's runs: what the test suite runs. Exit code 1 when a map fails or the budgeted numbers differ; the
time and memory targets are printed, met or not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for p in (str(ROOT), str(ROOT / "benchmarks")):
    if p not in sys.path:
        sys.path.insert(0, p)

import pyarrow.parquet as pq  # noqa: E402
import trace_scale as ts  # noqa: E402

from mapper.core.sizes import parse_size  # noqa: E402
from mapper.core.spec.engine import EngineSpec  # noqa: E402

TARGET_FLOOR_RATIO = 4.0
BUDGET_SLACK = 1.25
FIXED_ITEMS = 2_000

_CHILD = """
import contextlib, io, json, resource, sys, time
sys.path.insert(0, {root!r})
t = time.perf_counter()
from mapper.cli import main
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    code = main({args!r})
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent (this script,
# which generated the spool), VmHWM is this process's own.
hwm = [int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:")]
rss = hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"code": code, "seconds": time.perf_counter() - t, "rss": rss,
                  "report": json.loads(buf.getvalue()) if {fmt!r} else None}}))
"""


def run_map(spec: Path, out: Path | None = None) -> dict[str, Any]:
    """``latmap map`` in a fresh process (``--format json``; with ``out``: ``--out`` too):
    seconds from interpreter start-up to exit (imports included), peak RSS, the report."""
    args = ["map", "-c", str(spec), "--until", ts.UNTIL, "--format", "json", "--no-progress"]
    if out is not None:
        args += ["--out", str(out)]
    code = _CHILD.format(root=str(ROOT), args=args, fmt=True)
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    wall = time.perf_counter() - t
    if done.returncode not in (0, 1):  # 1: an objective broken, still a map
        raise RuntimeError(f"map failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


def floor(spool: Path) -> tuple[float, float]:
    """Seconds to read the spool's spans into Arrow (every column), and into a span batch
    (:func:`~collectors.spool.reader.read_spool`); best of two each."""
    from collectors.spool.reader import read_spool

    files = sorted(spool.rglob("*.parquet"))
    arrow, batch = [], []
    for _ in range(2):
        t = time.perf_counter()
        for f in files:
            pq.read_table(f)
        arrow.append(time.perf_counter() - t)
        t = time.perf_counter()
        read_spool(spool)
        batch.append(time.perf_counter() - t)
    return min(arrow), min(batch)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=None, help="items (7 spans each); default 150,000 (1.05M spans)")
    ap.add_argument("--budget", default=None, help="the budgeted map's engine.memory_budget (default 256MiB)")
    ap.add_argument("--quick", action="store_true", help="3,000 items, a 4MiB budget (the test's run)")
    ap.add_argument("--keep", type=Path, help="generate into this directory and keep it")
    args = ap.parse_args(argv)
    items = args.items or (3_000 if args.quick else 150_000)
    budget_text = args.budget or ("4MiB" if args.quick else "256MiB")
    budget = parse_size(budget_text)
    base = args.keep or Path(tempfile.mkdtemp(prefix="latmap-map-limit-"))
    try:
        return _run(base, items, budget_text, budget, args.quick)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def _run(base: Path, items: int, budget_text: str, budget: int, quick: bool) -> int:
    spool, tiny = base / "spool", base / "tiny"
    spans = ts.write_spool(spool, items) if not spool.exists() else items * ts.SPANS_PER_ITEM
    if not tiny.exists():
        ts.write_spool(tiny, FIXED_ITEMS)
    load = os.getloadavg()[0]
    print(f"{spans:,} spans ({items:,} linked items) in Parquet; {os.cpu_count()} CPUs, load {load:.1f}", flush=True)
    read_arrow, read_batch = floor(spool)
    specs = {name: ts.write_spec(base / f"{name}.yaml", path, engine) for name, path, engine in (
        ("fixed", tiny, "{kind: local}"), ("default", spool, "{kind: local}"),
        ("unbounded", spool, "{kind: local, memory_budget: 64GiB}"),
        ("budgeted", spool, f"{{kind: local, memory_budget: {budget_text}}}"))}
    if quick:  # the default engine maps a small spool as the unbounded one does
        del specs["default"]
    runs = {name: run_map(spec) for name, spec in specs.items()}
    if not quick:
        (base / "out").mkdir(exist_ok=True)
        runs["default, reports written"] = run_map(specs["default"], base / "out")
    mib = 2**20
    print(f"{'':<28} {'seconds':>8} {'x floor':>8} {'peak MiB':>9} {'partitions':>10}")
    print(f"{'floor: read into Arrow':<28} {read_arrow:>8.2f}")
    print(f"{'floor: read into a batch':<28} {read_batch:>8.2f} {1.0:>8.2f}")
    for name, r in runs.items():
        parts = ts._partitions(r["report"])
        print(f"{'map ' + name:<28} {r['seconds']:>8.2f} {r['seconds'] / read_batch:>8.2f} "
              f"{r['rss'] / mib:>9.0f} {parts:>10}")
    failed = [n for n, r in runs.items() if r["report"] is None]
    fixed = runs["fixed"]["rss"]
    limit = fixed + BUDGET_SLACK * budget
    per_part = EngineSpec(memory_budget=budget).spans_per_partition
    b = runs["budgeted"]
    same = ts.numbers(b["report"]) == ts.numbers(runs["unbounded"]["report"])
    above = (runs["unbounded"]["rss"] - fixed) / spans
    print(f"memory_budget {budget_text}: {per_part:,} spans per partition; peak {b['rss'] / mib:,.0f} MiB, "
          f"limit fixed cost {fixed / mib:,.0f} + {BUDGET_SLACK}x budget = {limit / mib:,.0f} MiB: "
          f"{'MET' if b['rss'] <= limit else 'NOT MET'}")
    print(f"budgeted numbers equal to the unbounded map's (every count, mean, percentile, interval): "
          f"{'OK' if same else 'FAILED'}")
    print(f"unbounded: {above:,.0f} bytes per span above the fixed cost")
    if not quick:
        mapped = runs["default, reports written"]["seconds"]
        met = "MET" if mapped <= TARGET_FLOOR_RATIO * read_batch else "NOT MET"
        print(f"map with reports written / read into a batch: {mapped / read_batch:.2f}x "
              f"(target <= {TARGET_FLOOR_RATIO:g}x: {met}); the report files cost "
              f"{mapped - runs['default']['seconds']:+.2f} s, start-up and reports of a tiny map "
              f"{runs['fixed']['seconds']:.2f} s")
    if quick and ts._partitions(b["report"]) < 2:
        failed.append("the quick budgeted map was not partitioned")
    for f in failed:
        print(f"FAILED: {f}")
    return 1 if failed or not same else 0


if __name__ == "__main__":
    sys.exit(main())
