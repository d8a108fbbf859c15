"""The naive map of part (b) of the trace benchmark (:mod:`trace_map`): the obvious first
version, ``MessageToDict``, a dict per span and Python loops per trace, written out from the
definitions independently of :mod:`mapper.analysis.traces` so that every cell can be
cross-checked against ``latmap map`` in the same run."""

from __future__ import annotations

import base64
import statistics
import struct
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from naive import merge_intervals  # benchmarks/ is on sys.path when these run

_FRAME = struct.Struct("<I")


def _overlap(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> int:
    """Nanoseconds covered by both merged interval lists."""
    i = j = total = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def _summary(values: list[float], percentiles: Sequence[float]) -> dict[str, Any] | None:
    if not values:
        return None
    cuts = statistics.quantiles(values, n=10_000, method="inclusive") if len(values) > 1 else [values[0]] * 9999
    return {"count": len(values), "mean": sum(values) / len(values), "negative": sum(v < 0 for v in values),
            "quantiles": {str(q): cuts[round(q * 10_000) - 1] for q in percentiles}}


def naive_map(requests_path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The obvious first version of the map: MessageToDict, a dict per span, Python loops.

    The same definitions as :mod:`mapper.analysis.traces` (written out independently, per trace):
    a stage's process time is the union of its spans minus the time any later stage's span
    covers; its wait runs from the hand-over (the start of an upstream CLIENT parent, the end
    of another upstream parent, found by parent id or else the first link; without one, the
    end of the upstream stage's last span) to its first span's start; the hop is wait + process;
    the lead time runs from the first stage's start to the last one's end, in traces that have
    every stage. Spans count when they start in ``(start_ns, end_ns]``; repeats are dropped.
    """
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    stage_of = {svc: i for i, svc in enumerate(config["services"])}
    upstream: list[int | None] = config["upstream"]
    start_ns, end_ns = config["start_ns"], config["end_ns"]
    spans: dict[tuple[str, str], dict[str, Any]] = {}
    duplicates = 0
    data = requests_path.read_bytes()
    off = 0
    while off < len(data):
        (size,) = _FRAME.unpack_from(data, off)
        doc = MessageToDict(ExportTraceServiceRequest.FromString(data[off + 4:off + 4 + size]))
        off += 4 + size
        for rs in doc.get("resourceSpans", []):
            attrs = {a["key"]: a["value"] for a in rs.get("resource", {}).get("attributes", [])}
            service = attrs.get("service.name", {}).get("stringValue")
            for ss in rs.get("scopeSpans", []):
                for sp in ss.get("spans", []):
                    links = sp.get("links") or [{}]
                    row = {
                        "trace": base64.b64decode(sp["traceId"]).hex(),
                        "span_id": base64.b64decode(sp["spanId"]).hex(),
                        "parent": base64.b64decode(sp.get("parentSpanId", "")).hex(),
                        "link": base64.b64decode(links[0].get("spanId", "")).hex(),
                        "start": int(sp["startTimeUnixNano"]),
                        "end": int(sp["endTimeUnixNano"]),
                        "kind": sp.get("kind", "SPAN_KIND_UNSPECIFIED"),
                        "service": service,
                        "stage": stage_of.get(service),
                    }
                    if not start_ns < row["start"] <= end_ns:
                        continue
                    key = (row["trace"], row["span_id"])
                    if key in spans:
                        duplicates += 1
                        continue
                    spans[key] = row
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in spans.values():
        if row["stage"] is not None:
            traces[row["trace"]].append(row)
    n = len(stage_of)
    parts: dict[str, list[float]] = defaultdict(list)
    lead: list[float] = []
    ties = 0
    for rows in traces.values():
        by_stage: dict[int, list[dict[str, Any]]] = defaultdict(list)
        by_id: dict[str, dict[str, Any]] = {}
        for row in rows:
            by_stage[row["stage"]].append(row)
            by_id.setdefault(row["span_id"], row)
        for k, own in by_stage.items():
            mine = merge_intervals([(r["start"], r["end"]) for r in own])
            later = merge_intervals([(r["start"], r["end"]) for j, rs in by_stage.items() if j > k for r in rs])
            process = (sum(e - s for s, e in mine) - _overlap(mine, later)) * 1e-9
            first = min(own, key=lambda r: r["start"])
            ties += sum(r["start"] == first["start"] for r in own) - 1
            up = upstream[k]
            handed = by_id.get(first["parent"] or first["link"])
            if up is not None and handed is not None and handed["stage"] == up:
                hand = handed["start"] if handed["kind"] == "SPAN_KIND_CLIENT" else handed["end"]
            elif up is not None and up in by_stage:
                hand = max(r["end"] for r in by_stage[up])
            else:
                hand = None
            name = config["services"][k]
            parts[f"{name}/process"].append(process)
            if hand is None:
                parts[f"{name}/total"].append(process)
            else:
                wait = (first["start"] - hand) * 1e-9
                parts[f"{name}/wait"].append(wait)
                parts[f"{name}/total"].append(wait + process)
        if len(by_stage) == n:
            lead.append((max(r["end"] for r in rows) - min(r["start"] for r in rows)) * 1e-9)
    qs = config["percentiles"]
    return {"spans": len(spans), "duplicates": duplicates, "traces": len(traces), "first_span_ties": ties,
            "parts": {k: _summary(v, qs) for k, v in sorted(parts.items())}, "lead": _summary(lead, qs)}
