"""What the flow from traces (issue 27) adds to a map: ~1,000,000 spans of the branching chain
(market-data -> alerting, 30% on to notification, 3% of the deliveries redelivered), the
trace table built (the baseline: what every map does) and then the flow's sums and values
(:func:`~mapper.analysis.flow.flow_sums`, :func:`~mapper.analysis.flow_checks.traced_flows`),
each timed in the same run; prints both and the ratio (flow / table).

    PYTHONPATH=. python3 benchmarks/flow.py [--spans 1000000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mapper.analysis.flow import flow_sums
from mapper.analysis.flow_checks import traced_flows
from mapper.analysis.traces import StageMatch, build_trace_table
from mapper.core.spans import KIND_CONSUMER, KIND_PRODUCER, KIND_SERVER, SpanBatch

W0 = 1_789_999_200
NS = 1_000_000_000
MATCHES = [StageMatch("market-data", "market-data"), StageMatch("alerting", "alerting"),
           StageMatch("notification", "notification")]
UPSTREAM = {"market-data": None, "alerting": "market-data", "notification": "alerting"}


def chain(spans: int, seed: int = 1) -> SpanBatch:
    """About ``spans`` spans of the chain, built as whole columns."""
    rng = np.random.default_rng(seed)
    n = int(spans / 3.7)
    tr = np.arange(1, n + 1, dtype=np.uint64)
    t0 = np.sort(rng.uniform(W0 + 1, W0 + 3500, n))
    fail = rng.random(n) < 0.03
    alert = rng.random(n) < 0.3
    a0 = t0 + 0.003 + rng.exponential(0.02, n)
    ok0 = np.where(fail, a0 + 1.0, a0)
    parts = []

    def add(rows: np.ndarray, sid: int, parent: int, start: np.ndarray, end: np.ndarray, kind: int, svc: str,
            inst: np.ndarray, status: int = 0) -> None:
        m = rows.size
        parts.append({"trace_lo": tr[rows], "trace_hi": np.zeros(m, np.uint64),
                      "span_id": tr[rows] * np.uint64(8) + np.uint64(sid),
                      "parent_id": tr[rows] * np.uint64(8) + np.uint64(parent) if parent else np.zeros(m, np.uint64),
                      "start_ns": (start * NS).astype(np.int64), "end_ns": (end * NS).astype(np.int64),
                      "kind": np.full(m, kind, np.int8), "status": np.full(m, status, np.int8),
                      "service": np.full(m, svc, object), "name": np.full(m, svc, object),
                      "instance": inst, "exceptions": np.zeros(m, np.int16)})

    every = np.arange(n)
    md_inst = np.full(n, "md-1", object)
    add(every, 1, 0, t0, t0 + 0.002, KIND_SERVER, "market-data", md_inst)
    add(every, 2, 1, t0 + 0.001, t0 + 0.002, KIND_PRODUCER, "market-data", md_inst)
    f = np.flatnonzero(fail)
    al_inst = np.where(every % 2 == 0, "al-0", "al-1").astype(object)
    add(f, 3, 2, a0[f], a0[f] + 0.005, KIND_CONSUMER, "alerting", al_inst[f], status=2)
    add(every, 4, 2, ok0, ok0 + 0.005, KIND_CONSUMER, "alerting", al_inst)
    a = np.flatnonzero(alert)
    add(a, 5, 4, ok0[a] + 0.004, ok0[a] + 0.005, KIND_PRODUCER, "alerting", al_inst[a])
    add(a, 6, 5, ok0[a] + 0.01, ok0[a] + 0.02, KIND_CONSUMER, "notification", np.full(a.size, "n-1", object))
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return SpanBatch.from_columns(cols)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    batch = chain(args.spans)
    table_s, flow_s = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        table = build_trace_table(batch, MATCHES, UPSTREAM)
        table_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        sums = flow_sums(table, batch, MATCHES, UPSTREAM, (W0, W0 + 3600.0))
        traced_flows(sums, {"market-data": ["alerting"], "alerting": ["notification"], "notification": []}, {})
        flow_s.append(time.perf_counter() - t)
    base, added = min(table_s), min(flow_s)
    print(f"{len(batch):,} spans, {table.traces:,} items")
    print(f"trace table (baseline): {base:.3f}s   flow: {added:.3f}s   ratio flow/table: {added / base:.2f}")


if __name__ == "__main__":
    main()
