"""What explaining the tail costs ``latmap map``: the same map three ways over the spool of
``trace_ingest.py --part b``: ``--explain`` (every span and resource attribute read from the
spool, the bottleneck's hop and the lead time explained by them), the default (explained by
the span fields latmap keeps as columns, no attribute read) and ``--no-explain`` (no
explanation).

Data: :func:`trace_map.build_stream_requests` (the value stream gateway -> marketdata ->
pricing -> alerting -> notification, resources and span attributes as the receiver gets them),
sent through the receiver's export path into a spool and compacted to Parquet, as part (b)
builds it. Timed: ``python -m mapper map -c stream.yaml --format json`` in its own process,
each way ``--repeats`` times, rotated so load on the shared machine hits all alike. Printed:
per way the median wall and CPU seconds and peak RSS, and the ratios to ``--no-explain``
(issue 28: explain adds at most 30% to the map, :data:`TARGET_RATIO`). CPU seconds are the
steadier figure on a shared machine. What decided ``latmap map``'s default (columns only):
reading every attribute of a million spans costs about 2.1x the CPU and 2.3x the memory
(the default: 1.06x the CPU, 1.02x the memory).

Usage::

    python benchmarks/explain_read.py [--spans N] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from trace_map import build_stream_requests, run_measured, write_spool, write_stream_spec  # benchmarks/ on sys.path

TARGET_RATIO = 1.30


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="latmap-bench-explain-") as tmp:
        work = Path(tmp)
        end_ns = time.time_ns()
        t0 = time.perf_counter()
        requests, spans = build_stream_requests(args.spans, end_ns=end_ns)
        files, size = write_spool(requests, work / "spool")
        del requests
        print(f"{spans:,} spans spooled into {files} Parquet files ({size / 2**20:.0f} MiB) in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        spec = work / "stream.yaml"
        write_stream_spec(spec, work / "spool")
        until, window = end_ns // 1_000_000_000 + 60, 3 * 3600
        ways = {"explain": ["--explain"], "default": [], "no-explain": ["--no-explain"]}
        runs: dict[str, list] = {w: [] for w in ways}
        names = list(ways)
        for i in range(args.repeats):
            for way in names[i % 3:] + names[:i % 3]:
                cmd = [sys.executable, "-m", "mapper", "map", "-c", str(spec), "--until", str(until), "--window",
                       f"{window}s", "--format", "json", "--no-progress", *ways[way]]
                r = run_measured(way, cmd, work / f"map-{way}-{i}.json")
                if r.exit_code not in (0, 1):
                    print((work / f"map-{way}-{i}.stderr").read_text()[-2000:])
                    return 1
                runs[way].append(r)
                print(f"  {r.run:>10}: {r.seconds:6.2f} s  cpu {r.cpu_seconds:6.2f} s  peak RSS "
                      f"{r.peak_rss_mib:6.0f} MiB", flush=True)
        found = {}
        for way in ("explain", "default"):
            report = json.loads((work / f"map-{way}-0.json").read_text())
            found[way] = [(e["kind"], e.get("stage"), e.get("part"),
                           [f"{f['key']}={f['value']}" for f in e.get("findings", []) if f.get("significant")][:3])
                          for e in report.get("explanations", [])]
    med = {w: (statistics.median(r.seconds for r in rs), statistics.median(r.cpu_seconds for r in rs),
               max(r.peak_rss_mib for r in rs)) for w, rs in runs.items()}
    base = med["no-explain"]
    print(f"latmap map over {spans:,} spans, medians of {args.repeats}:")
    for way, (sec, cpu, rss) in med.items():
        print(f"  {way:>10}: {sec:6.2f} s (x{sec / base[0]:.2f})  cpu {cpu:6.2f} s (x{cpu / base[1]:.2f})  "
              f"peak RSS {rss:6.0f} MiB (x{rss / base[2]:.2f})")
    for way, kinds in found.items():
        print(f"  {way} explanations: {kinds}")
    for way in ("explain", "default"):
        if med[way][1] / base[1] > TARGET_RATIO:
            print(f"target missed: {way} adds {med[way][1] / base[1] - 1:.0%} CPU to latmap map > "
                  f"{TARGET_RATIO - 1:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
