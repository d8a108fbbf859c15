"""Traces at any scale: ``latmap map`` over 1M and 10M items (~7M and ~70M spans), local
engine (partitioned) and Dask engine, seconds and peak RSS side by side.

Data is generated vectorised (numpy columns -> Parquet files in a temp spool's hour
partitions), never span by span in Python. Each item is a chain of three traces joined by
span links (the OpenTelemetry messaging pattern), 7 spans:

* trace A: ``gateway`` SERVER (root) -> ``pricing`` SERVER (child) -> ``pricing`` PRODUCER;
* trace B: ``alerting`` CONSUMER linked to A's producer -> INTERNAL child -> PRODUCER child;
* trace C: ``notifier`` CONSUMER linked to B's producer.

Known timings per item (so tests can check every interval against the exact value):
``gateway`` process 1 ms, ``pricing`` wait 0.1 ms and process 2 ms + U(0, 1 ms),
``alerting`` wait 5 ms + Exp(2 ms) (1% of items: +500 ms: the tail) and process 3 ms,
``notifier`` wait 7 ms + Exp(1 ms) and process 4 ms; the lead time is their sum.

Run ``python benchmarks/trace_scale.py`` (full: 1M, 10M, Dask 10M; takes long on 2 cores)
or ``--items 20000`` to run small; ``--examples ROUNDS`` times the partitioned map with
examples (the default ``count: 3``: the fourth pass) against the same map without
(``examples: {count: 0}``), in alternating rounds. Targets: peak RSS at 10M < 2 GiB and within 1.5x of 1M;
time at 10M within 12x of 1M; Dask identical numbers.
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

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from collectors.spool.payload import SCHEMA  # noqa: E402
from mapper.core.spans import SpanBatch, SpanLinks  # noqa: E402

MS = 1_000_000
T0 = 1_790_000_000 * 1_000_000_000  # 2026-09-21T13:33:20Z
SPACING_NS = 100_000  # one item every 0.1 ms: 10M items in ~17 minutes
SPANS_PER_ITEM = 7
TAIL_SHARE = 0.01
TAIL_NS = 500 * MS
STAGES = ("gateway", "pricing", "alerting", "notifier")
TARGET_RSS = 2 << 30
TARGET_RSS_RATIO = 1.5
TARGET_TIME_RATIO = 12.0
_KIND = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}


def known(first: int, n: int, seed: int = 7) -> dict[str, np.ndarray]:
    """Items ``first .. first+n-1``: their random draws (deterministic per item index)."""
    rng = np.random.default_rng([seed, first])
    return {
        "pricing_extra": rng.integers(0, MS, n),
        "queue": 5 * MS + rng.exponential(2 * MS, n).astype(np.int64)
        + np.where(rng.random(n) < TAIL_SHARE, TAIL_NS, 0),
        "notify": 7 * MS + rng.exponential(1 * MS, n).astype(np.int64),
    }


def ranges(n_items: int, chunk: int, first: int = 0) -> list[tuple[int, int]]:
    """The (first item, count) of each chunk :func:`write_spool` writes (draws are per chunk)."""
    return [(f, min(chunk, first + n_items - f)) for f in range(first, first + n_items, chunk)]


def expected(chunks: list[tuple[int, int]], seed: int = 7) -> dict[str, np.ndarray]:
    """The exact per-item values (seconds) the map must find for items written in ``chunks``
    (see :func:`ranges`): waits, processes, lead."""
    parts = [known(f, n, seed) for f, n in chunks]
    d = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    pricing = (2 * MS + d["pricing_extra"]) / 1e9
    return {"alerting wait": d["queue"] / 1e9, "notifier wait": d["notify"] / 1e9,
            "pricing process": pricing,
            "lead": (MS + MS // 10 + 2 * MS + d["pricing_extra"] + d["queue"] + 3 * MS + d["notify"] + 4 * MS) / 1e9}


def chain(first: int, n: int, seed: int = 7) -> SpanBatch:
    """The spans of items ``first .. first+n-1`` (7 per item), as one batch."""
    d = known(first, n, seed)
    i = np.arange(first, first + n, dtype=np.int64)
    ui = i.astype(np.uint64)
    s0 = T0 + i * SPACING_NS
    gw_end = s0 + MS  # gateway: 1 ms of its own, then hands over (pricing starts 0.1 ms later)
    pr_start = gw_end + MS // 10
    pr_end = pr_start + 2 * MS + d["pricing_extra"]
    pub_start = pr_end - MS // 5
    al_start = pr_end + d["queue"]
    al_end = al_start + 3 * MS
    ap_start = al_end - MS // 2
    nt_start = al_end + d["notify"]
    nt_end = nt_start + 4 * MS
    tr_a, tr_b, tr_c = (ui * np.uint64(3) + np.uint64(k) for k in (1, 2, 3))
    span = ui * np.uint64(8)
    rows = [  # (trace, span id, parent id, service, name, kind, start, end)
        (tr_a, span + 1, 0, "gateway", "GET /quote", "server", s0, gw_end),
        (tr_a, span + 2, span + 1, "pricing", "price", "server", pr_start, pr_end),
        (tr_a, span + 3, span + 2, "pricing", "quotes publish", "producer", pub_start, pr_end),
        (tr_b, span + 4, 0, "alerting", "quotes process", "consumer", al_start, al_end),
        (tr_b, span + 5, span + 4, "alerting", "rules", "internal", al_start + MS, al_start + 2 * MS),
        (tr_b, span + 6, span + 4, "alerting", "alerts publish", "producer", ap_start, al_end),
        (tr_c, span + 7, 0, "notifier", "send", "consumer", nt_start, nt_end),
    ]
    k = len(rows)
    cols: dict[str, Any] = {
        "trace_hi": np.full(n * k, 0xABC, np.uint64),
        "trace_lo": np.stack([r[0] for r in rows], 1).ravel(),
        "span_id": np.stack([r[1] for r in rows], 1).ravel(),
        "parent_id": np.stack([np.broadcast_to(np.asarray(r[2], np.uint64), (n,)) for r in rows], 1).ravel(),
        "service": np.tile(np.array([r[3] for r in rows], dtype=object), n),
        "name": np.tile(np.array([r[4] for r in rows], dtype=object), n),
        "kind": np.tile(np.array([_KIND[r[5]] for r in rows], np.int8), n),
        "start_ns": np.stack([r[6] for r in rows], 1).ravel(),
        "end_ns": np.stack([r[7] for r in rows], 1).ravel(),
    }
    # Links: alerting's consumer -> A's producer, notifier's consumer -> B's producer.
    row = np.arange(n, dtype=np.int64) * k
    links = SpanLinks(np.concatenate([row + 3, row + 6]), np.full(2 * n, 0xABC, np.uint64),
                      np.concatenate([tr_a, tr_b]), np.concatenate([span + 3, span + 6]))
    order = np.argsort(links.row, kind="stable")
    links = SpanLinks(links.row[order], links.trace_hi[order], links.trace_lo[order], links.span_id[order])
    return SpanBatch.from_columns(cols, links)


def write_spool(root: Path, n_items: int, chunk: int = 70_000, seed: int = 7) -> int:
    """A spool of ``n_items`` chains as Parquet files in hour partitions; returns spans.
    Files of ~490k spans, as compaction writes them (one per 64 MiB segment and hour)."""
    from collectors.spool.payload import arrays

    total = 0
    for f, n in ranges(n_items, chunk):
        b = chain(f, n, seed)
        table = pa.table(arrays(b), schema=SCHEMA)
        hour = time.gmtime(int(b.start_ns.min()) // 1_000_000_000)
        d = root / time.strftime("date=%Y-%m-%d", hour) / time.strftime("hour=%H", hour)
        d.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, d / f"bench-{f:012d}.parquet", compression="zstd")
        total += len(b)
    return total


SPEC = """\
name: scale
window: 2d
percentiles: [50, 99, 99.99]
sources:
  spans: {{kind: traces, path: "{path}"}}
stages:
  - {{name: gateway, owner: a, traces: {{source: spans, service: gateway}}}}
  - {{name: pricing, owner: b, traces: {{source: spans, service: pricing}}}}
  - {{name: alerting, owner: c, traces: {{source: spans, service: alerting}}}}
  - {{name: notifier, owner: d, traces: {{source: spans, service: notifier}}}}
objectives: {{end_to_end: {{p99: 600ms}}}}
engine: {engine}
"""
UNTIL = "2026-09-22T12:00:00Z"


def write_spec(path: Path, spool: Path | str, engine: str = "{kind: local}") -> Path:
    path.write_text(SPEC.format(path=spool, engine=engine))
    return path


def numbers(report: dict[str, Any]) -> dict[str, Any]:
    """The report's numbers the engines must agree on: per stage parts and hop, end to end."""
    out: dict[str, Any] = {}
    for s in report["stages"]:
        for part in ("wait", "process", "total"):
            if s.get(part):
                out[f"{s['name']} {part}"] = {k: v for k, v in s[part].items() if k not in ("source", "checks")}
    out["end_to_end"] = {k: v for k, v in report["end_to_end"].items() if k != "checks"}
    return out


_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from mapper.cli import main
t = time.perf_counter()
code = main(["map", "-c", {spec!r}, "--until", {until!r}, "--out", {out!r}])
u = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM: ru_maxrss carries the parent's peak over exec on Linux (the generated spool's).
hwm = [int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(json.dumps({{"code": code, "seconds": time.perf_counter() - t, "rss": hwm[0] if hwm else u.ru_maxrss * 1024,
                  "cpu": u.ru_utime + u.ru_stime}}))
"""


def run_map(spec: Path, out: Path) -> dict[str, Any]:
    """``latmap map`` in a fresh process: its exit code, seconds and peak RSS (bytes)."""
    code = _CHILD.format(root=str(ROOT), spec=str(spec), until=UNTIL, out=str(out))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"map failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["report"] = json.loads((out / "report.json").read_text())
    return result


def _partitions(report: dict[str, Any]) -> int:
    """How many partitions the map used (from its ``traces-partitioned`` check)."""
    for c in report["checks"]:
        if c["code"] == "traces-partitioned":
            return int(c["message"].split(" spans analysed in ")[1].split(" ")[0])
    return 1


def _fmt(r: dict[str, Any]) -> str:
    return f"{r['seconds']:8.1f} s  {r['rss'] / 2**20:8.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, nargs="*", default=[1_000_000, 10_000_000],
                    help="item counts to map (the first is the baseline of the ratios)")
    ap.add_argument("--dask", action="store_true", default=None, help="also map the largest with Dask")
    ap.add_argument("--no-dask", dest="dask", action="store_false")
    ap.add_argument("--partition-spans", type=int, default=1_000_000)
    ap.add_argument("--worker-memory", default="2GiB")
    ap.add_argument("--keep", type=Path, help="generate into this directory and keep it")
    ap.add_argument("--examples", type=int, default=0, metavar="ROUNDS",
                    help="instead: the cost of examples on the first --items, ROUNDS alternating rounds each")
    args = ap.parse_args(argv)
    if args.examples:
        return examples_cost(args)
    base = args.keep or Path(tempfile.mkdtemp(prefix="latmap-trace-scale-"))
    print(f"load average at start: {os.getloadavg()}, cores: {os.cpu_count()}")
    rows = []
    # memory_budget 0: always partitioned (a small --items run too), never the in-memory path.
    engine = f"{{kind: local, partition_spans: {args.partition_spans}, memory_budget: 0}}"
    try:
        for n in args.items:
            spool = base / f"spool-{n}"
            t = time.perf_counter()
            if not spool.exists():
                spans = write_spool(spool, n)
                print(f"{n:,} items: {spans:,} spans generated in {time.perf_counter() - t:.1f} s")
            spec = write_spec(base / f"spec-{n}.yaml", spool, engine)
            r = run_map(spec, base / f"out-{n}")
            rows.append((n, r))
            parts = _partitions(r["report"])
            print(f"local  {n:>11,} items: {_fmt(r)}  {parts} partitions, {r['seconds'] / max(parts, 1):.1f} s "
                  f"per partition  (load {os.getloadavg()[0]:.2f})")
        if len(rows) > 1:
            (n0, a), (n1, b) = rows[0], rows[-1]
            print(f"ratio {n1:,} / {n0:,}: time {b['seconds'] / a['seconds']:.2f}x (target <= {TARGET_TIME_RATIO}x "
                  f"for 10x items), peak RSS {b['rss'] / a['rss']:.2f}x (target <= {TARGET_RSS_RATIO}x), "
                  f"peak RSS {b['rss'] / 2**30:.2f} GiB (target < {TARGET_RSS / 2**30:.0f} GiB)")
        want_dask = args.dask if args.dask is not None else True
        if want_dask and rows:
            n, local = rows[-1]
            r = run_dask(base, base / f"spool-{n}", n, args)
            same = numbers(r["report"]) == numbers(local["report"])
            print(f"dask   {n:>11,} items: {r['seconds']:8.1f} s  client peak RSS {r['rss'] / 2**20:.0f} MiB; "
                  f"numbers identical to local: {same}")
            if not same:
                return 1
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


def examples_cost(args: argparse.Namespace) -> int:
    """``latmap map`` with examples (count 3, the fourth pass) against without (count 0,
    the baseline), partitioned (local engine), alternating rounds; best and median of each."""
    n = args.items[0]
    base = args.keep or Path(tempfile.mkdtemp(prefix="latmap-trace-scale-"))
    engine = f"{{kind: local, partition_spans: {args.partition_spans}, memory_budget: 0}}"
    print(f"load average at start: {os.getloadavg()}, cores: {os.cpu_count()}")
    try:
        spool = base / f"spool-{n}"
        if not spool.exists():
            print(f"{n:,} items: {write_spool(spool, n):,} spans generated")
        specs = {"without": write_spec(base / "spec-without.yaml", spool, engine),
                 "with": write_spec(base / "spec-with.yaml", spool, engine)}
        with specs["without"].open("a") as f:
            f.write("examples: {count: 0}\n")
        times: dict[str, list[float]] = {"without": [], "with": []}
        cpu: dict[str, list[float]] = {"without": [], "with": []}
        reports = {}
        for i in range(args.examples):
            for name in (("without", "with") if i % 2 == 0 else ("with", "without")):
                r = run_map(specs[name], base / f"out-{name}")
                times[name].append(r["seconds"])
                cpu[name].append(r["cpu"])
                reports[name] = r["report"]
                print(f"round {i + 1} {name:>7} examples: {_fmt(r)}  {r['cpu']:6.1f} CPU-s  "
                      f"(load {os.getloadavg()[0]:.2f})")
        parts = _partitions(reports["with"])
        same = _no_examples(numbers(reports["with"])) == numbers(reports["without"])
        best = min(times["with"]) / min(times["without"])
        med = float(np.median(times["with"]) / np.median(times["without"]))
        cpu_best = min(cpu["with"]) / min(cpu["without"])
        cpu_med = float(np.median(cpu["with"]) / np.median(cpu["without"]))
        print(f"{n:,} items, {parts} partitions: with examples / without: wall best {best:.2f}x, median {med:.2f}x; "
              f"CPU time best {cpu_best:.2f}x, median {cpu_med:.2f}x ({args.examples} rounds each); "
              f"numbers unchanged: {same}")
        return 0 if same else 1
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def _no_examples(x: Any) -> Any:
    """``x`` without its ``examples`` and ``median_examples`` lists."""
    if isinstance(x, dict):
        return {k: _no_examples(v) for k, v in x.items() if k not in ("examples", "median_examples")}
    return [_no_examples(v) for v in x] if isinstance(x, list) else x


def run_dask(base: Path, spool: Path, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """The map with the Dask engine on a 2-worker LocalCluster (processes, a memory limit each)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=args.worker_memory,
                      dashboard_address=None, host="127.0.0.1") as cluster:
        engine = (f"{{kind: dask, scheduler: \"{cluster.scheduler_address}\", "
                  f"partition_spans: {args.partition_spans}, memory_budget: 0, scratch: \"{base / 'scratch'}\"}}")
        spec = write_spec(base / f"spec-dask-{n}.yaml", spool, engine)
        return run_map(spec, base / f"out-dask-{n}")


if __name__ == "__main__":
    sys.exit(main())
