"""What "why the tail is slow" adds to a map: explain over the analysis benchmark's traces.

Issue requirement (issue 28): explaining the tail over the 1,000,000-trace analysis benchmark
(``benchmarks/analysis.py``) adds at most 30% to the map's time, measured in the same run.

Data: :func:`analysis.make_batch` (5 stages, ~5.5M spans), with attributes the decoders will
keep (:class:`~mapper.core.spans.SpanAttributes`): on every span the resource ``host.name``
(one of 6 per stage) and the span's ``http.route`` (one of 4); on the ``gateway`` span a
``user.id`` (one per item: personal, left out) and a ``batch.size`` (1..500, binned).

Timed: the map as ``analysis.run_latmap`` makes it (trace table, parts, ``analyse``, findings,
segments, the region slice), which now includes the map's two explanations (the bottleneck's
hop and the lead time); and those two explanations again on their own (the same calls
``analyse`` makes). Printed: both times, the explanations' share of the map without them
(``explain / (map - explain)``, the target at most 0.30) and what they found. The explanations
are timed from cold (the batch's attributes factorized again, as the map's first one does).

Usage::

    python benchmarks/explain.py [--traces N] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np
from analysis import FULL, QUICK, STAGES, make_batch, run_latmap, spec_and_window  # benchmarks/ on sys.path

from mapper.analysis.explain import explain
from mapper.analysis.explain.attributes import _CODED
from mapper.analysis.latency import example_thresholds
from mapper.core.span_attributes import encode_sparse
from mapper.core.spans import SpanAttributes, SpanBatch

TARGET = 0.30


def with_attributes(batch: SpanBatch, seed: int = 11) -> SpanBatch:
    """``batch`` with the attributes of the module docstring (vectorised)."""
    rng = np.random.default_rng(seed)
    n = len(batch)
    item = (batch.trace_lo - 1).astype(np.int64)
    n_items = int(item.max()) + 1
    stage = np.searchsorted(np.array(STAGES, dtype=object), batch.service, sorter=np.argsort(STAGES))
    stage = np.argsort(STAGES)[stage]
    hosts = np.array([f"{s}-{k}" for s in STAGES for k in range(6)], dtype=object)
    routes = np.array(["/a", "/b", "/c", "/d"], dtype=object)
    gw = np.flatnonzero(batch.service == "gateway")
    users = np.array([f"user-{k}" for k in range(n_items)], dtype=object)
    sizes = np.array([str(k) for k in range(1, 501)], dtype=object)
    host = stage * 6 + rng.integers(0, 6, n)  # the resource: one per host, attributes held once each
    rows = np.r_[np.arange(n), gw, gw]
    key = np.r_[np.full(n, "http.route", dtype=object), np.full(gw.size, "user.id", dtype=object),
                np.full(gw.size, "batch.size", dtype=object)]
    value = np.r_[routes[rng.integers(0, 4, n)], users[item[gw]], sizes[rng.integers(0, 500, gw.size)]]
    attrs = SpanAttributes(n, resource=host.astype(np.int32), resources=[{"host.name": h} for h in hosts],
                           sparse=encode_sparse(rows, key, value, n))
    return SpanBatch(**batch.columns(), links=batch.links, attributes=attrs)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--traces", type=int, default=FULL)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK:,} traces")
    args = ap.parse_args(argv)
    n = QUICK if args.quick else args.traces
    t = time.perf_counter()
    batch = with_attributes(make_batch(n))
    print(f"data: {n:,} traces, {len(batch):,} spans, {len(batch.attributes or ()):,} attributes "
          f"({time.perf_counter() - t:.1f}s to build)")
    spec, window = spec_and_window()
    run = run_latmap(batch, spec, window)
    map_s = sum(run.phases.values())
    lm, table = run.lm, run.table
    assert lm is not None
    assert table is not None
    q = 0.99
    thresholds = example_thresholds((q,), lm.stages, lm.end_to_end)
    wanted = [(x.target, x.part) for x in lm.explanations]
    _CODED.clear()  # the map's explanations factorized the attributes: time that again too
    t = time.perf_counter()
    found = [explain(table, target, part, q, th.low if (th := thresholds.get((target, part, q))) else None)
             for target, part in wanted]
    explain_s = time.perf_counter() - t
    ratio = explain_s / max(map_s - explain_s, 1e-9)
    for phase, s in run.phases.items():
        print(f"  map phase {phase:32s} {s:7.2f}s")
    print(f"map (with its explanations): {map_s:.2f}s; the explanations alone: {explain_s:.2f}s "
          f"({', '.join(f'{a} {b}' for a, b in wanted)})")
    print(f"explain / map without it: {ratio:.3f} (target <= {TARGET:.2f}: {'met' if ratio <= TARGET else 'MISSED'})")
    for e in found:
        top = e.findings[0] if e.findings else None
        print(f"  {e.target} {e.part}: {e.tail_items:,} tail vs {e.rest_items:,}, {e.tested} values tested, "
              f"left out {dict((k, len(v)) for k, v in e.left_out.items())}; first: "
              f"{'none' if top is None else f'{top.key}={top.value} q={top.q_value:.2g}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
