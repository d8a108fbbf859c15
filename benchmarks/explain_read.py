"""What explaining the tail costs ``latmap map``: the same map with ``--explain`` (the default:
every span and resource attribute read from the spool, the bottleneck's hop and the lead time
explained) and with ``--no-explain`` (neither), over the spool of ``trace_ingest.py --part b``.

Data: :func:`trace_map.build_stream_requests` (the value stream gateway -> marketdata ->
pricing -> alerting -> notification, resources and span attributes as the receiver gets them),
sent through the receiver's export path into a spool and compacted to Parquet, as part (b)
builds it. Timed: ``python -m mapper map -c stream.yaml --format json`` in its own process,
with and without ``--no-explain``, ``--repeats`` times each, interleaved so load on the shared
machine hits both alike. Printed: the medians, their ratio (explain / no-explain), CPU seconds
and peak RSS; the map's default stays ``--explain`` while the ratio is at most
:data:`TARGET_RATIO` (issue 28: explain adds at most 30% to the map).

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
        runs: dict[bool, list] = {True: [], False: []}
        for i in range(args.repeats):
            for explain in ((True, False) if i % 2 == 0 else (False, True)):
                cmd = [sys.executable, "-m", "mapper", "map", "-c", str(spec), "--until", str(until), "--window",
                       f"{window}s", "--format", "json", "--no-progress", "--explain" if explain else "--no-explain"]
                r = run_measured("explain" if explain else "no-explain", cmd, work / f"map-{explain}-{i}.json")
                if r.exit_code not in (0, 1):
                    print((work / f"map-{explain}-{i}.stderr").read_text()[-2000:])
                    return 1
                runs[explain].append(r)
                print(f"  {r.run:>10}: {r.seconds:6.2f} s  cpu {r.cpu_seconds:6.2f} s  peak RSS "
                      f"{r.peak_rss_mib:6.0f} MiB", flush=True)
        report = json.loads((work / "map-True-0.json").read_text())
        kinds = [(e["kind"], e.get("stage"), e.get("part"), len([f for f in e.get("findings", [])
                                                                   if f.get("significant")]))
                 for e in report.get("explanations", [])]
    w = statistics.median(r.seconds for r in runs[True])
    wo = statistics.median(r.seconds for r in runs[False])
    cpu = statistics.median(r.cpu_seconds for r in runs[True]) / statistics.median(r.cpu_seconds for r in runs[False])
    print(f"latmap map over {spans:,} spans: --explain {w:.2f} s, --no-explain {wo:.2f} s (medians of "
          f"{args.repeats}); ratio {w / wo:.2f} (cpu {cpu:.2f}); target at most {TARGET_RATIO:.2f}")
    print(f"explanations: {kinds}")
    if w / wo > TARGET_RATIO:
        print(f"target missed: explain adds {w / wo - 1:.0%} to latmap map > {TARGET_RATIO - 1:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
