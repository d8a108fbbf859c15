"""The traced service graph (``latmap discover --traces``) for people and machines: each edge's
wait (the hand-over into the server) and process time (the server's spans), both labelled."""

from __future__ import annotations

from typing import Any

from mapper.core.distribution import SampleDistribution
from mapper.render.cells import cell, latency_json

QS = (0.5, 0.99)


def _latency(values: Any) -> SampleDistribution | None:
    return SampleDistribution(values) if len(values) else None


def edge_json(e: Any) -> dict[str, Any]:
    """One traced edge for machines: ``wait`` is the hand-over into the server (consumer start -
    producer end; server start - client start), ``process`` the server's span durations; each a
    latency object of the report schema (``null``: not measured, e.g. a virtual node)."""
    return {"client": e.client, "server": e.server, "connection_type": e.connection_type, "count": e.count,
            "wait": latency_json(_latency(e.waits), QS, "traces: hand-over into the server"),
            "process": latency_json(_latency(e.latencies), QS, "traces: the server's span durations")}


def edge_table(edges: list[Any]) -> str:
    """The traced service graph for people: per edge, the wait (hand-over) and the process time
    of the server side, each labelled, p50 and p99."""
    lines = [f"{len(edges)} edges (wait: hand-over into the server; process: the server's spans)"]
    for e in edges:
        kind = f" [{e.connection_type}]" if e.connection_type else ""
        parts = []
        for label, values in (("wait", e.waits), ("process", e.latencies)):
            d = _latency(values)
            parts.append(f"{label} -" if d is None else
                         f"{label} p50 {cell(d.quantile(0.5))} p99 {cell(d.quantile(0.99))}")
        lines.append(f"  {e.client} -> {e.server}{kind}  n={e.count:,}  " + "  ".join(parts))
    return "\n".join(lines) + "\n"
