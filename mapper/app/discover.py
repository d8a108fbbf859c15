"""``latmap discover``: what latency histograms a Prometheus has, and a starter spec.

Histogram families come from ``/api/v1/metadata`` and from metric names ending in
``_bucket`` (backfilled or remote-written data has no metadata). When the OpenTelemetry
Collector's service-graph metrics are present, the chain comes from their client -> server
edges; span-metrics histograms are listed like any other family.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import yaml

from collectors.prometheus import PrometheusClient
from collectors.promjson import decode_list
from collectors.promql import escape_value
from mapper.app.draft import Candidate, draft_stages
from mapper.core.distribution import SampleDistribution
from mapper.core.durations import prom_duration
from mapper.core.spec import SourceSpec
from mapper.render.cells import cell

SERVICE_GRAPH = "traces_service_graph_request_server_seconds"
#: Names of the spanmetrics connector's duration histogram, old and new.
SPAN_METRICS = ("traces_span_metrics_duration_milliseconds", "traces_span_metrics_duration_seconds",
                "duration_milliseconds", "duration_seconds")


@dataclass(frozen=True)
class Family:
    """A histogram family: its name and, per label, the values seen (up to 20)."""

    name: str
    labels: dict[str, list[str]]
    series: int
    help: str = ""
    unit: str = ""  # from the metadata, "" when it has none


@dataclass(frozen=True)
class Discovery:
    families: tuple[Family, ...]
    edges: tuple[tuple[str, str, float], ...] = field(default_factory=tuple)  # client, server, count

    def to_json(self) -> dict[str, Any]:
        return {
            "histograms": [{"name": f.name, "series": f.series, "labels": f.labels, "help": f.help}
                           for f in self.families],
            "service_graph_edges": [{"client": c, "server": s, "requests": n} for c, s, n in self.edges],
        }

    def to_table(self) -> str:
        lines = [f"{len(self.families)} histogram families"]
        for f in self.families:
            labels = ", ".join(f"{k}({len(v)})" for k, v in sorted(f.labels.items())) or "-"
            lines.append(f"  {f.name}  series={f.series}  labels: {labels}")
        if self.edges:
            lines.append("service graph:")
            lines += [f"  {c} -> {s}  ({n:,.0f} requests)" for c, s, n in self.edges]
        return "\n".join(lines) + "\n"


def discover(url: str, window: float, timeout: float = 30.0) -> Discovery:
    """Look at the Prometheus at ``url`` (read-only) over the last ``window`` seconds, giving
    each request ``timeout`` seconds."""
    import time

    client = PrometheusClient(SourceSpec(name="discover", kind="prometheus", url=url.rstrip("/"),
                                         place="--prometheus", timeout=timeout))
    end = time.time()
    start = end - window
    meta = client.metadata()
    names = {n for n, entries in meta.items() if any(e.get("type") == "histogram" for e in entries)}
    _, body = client.http.json("GET", "/api/v1/label/__name__/values",
                                    params={"start": f"{start:.0f}", "end": f"{end:.0f}"})

    all_names = decode_list(body, client.http.url("/api/v1/label/__name__/values"))
    names |= {n[: -len("_bucket")] for n in all_names if isinstance(n, str) and n.endswith("_bucket")}
    families = []
    for name in sorted(names):
        series = client.series(f"{name}_bucket", start, end)
        if not series:
            continue
        values: dict[str, set[str]] = defaultdict(set)
        keys = set()
        for s in series:
            keys.add(tuple(sorted((k, v) for k, v in s.items() if k not in ("le", "__name__"))))
            for k, v in s.items():
                if k not in ("le", "__name__"):
                    values[k].add(v)
        help_text = next((e.get("help", "") for e in meta.get(name, [])), "")
        unit = next((e.get("unit", "") for e in meta.get(name, []) if e.get("unit")), "")
        families.append(Family(name, {k: sorted(v)[:20] for k, v in values.items()}, len(keys), help_text, unit))
    edges: list[tuple[str, str, float]] = []
    if any(f.name == SERVICE_GRAPH for f in families):
        q = f"sum by (client, server) (increase({SERVICE_GRAPH}_count[{prom_duration(window)}]))"
        res = client.query(q, end)
        edges = sorted(((s.labels.get("client", ""), s.labels.get("server", ""), s.value or 0.0)
                        for s in res.samples), key=lambda e: (e[0], e[1]))
    return Discovery(tuple(families), tuple(edges))


def _chain(edges: tuple[tuple[str, str, float], ...]) -> list[tuple[str, str | None]]:
    """Services in flow order with their busiest upstream, from service-graph edges."""
    ups: dict[str, list[tuple[float, str]]] = defaultdict(list)
    nodes: list[str] = []
    for c, s, n in edges:
        ups[s].append((n, c))
        for x in (c, s):
            if x not in nodes:
                nodes.append(x)
    order: list[str] = []
    remaining = list(nodes)
    while remaining:
        ready = [x for x in remaining if all(u in order or u == x for _, u in ups[x])] or remaining[:1]
        order.append(ready[0])
        remaining.remove(ready[0])
    return [(x, max(ups[x])[1] if ups[x] else None) for x in order]


def starter_spec(found: Discovery, url: str) -> str:
    """A starter ``stream.yaml``: a place to begin, to be put in flow order and given owners."""
    stages: list[dict[str, Any]] = []
    if found.edges:
        for service, upstream in _chain(found.edges):
            stage: dict[str, Any] = {"name": service, "owner": "TODO"}
            if upstream is not None:
                stage["process"] = {"source": "prom", "histogram": SERVICE_GRAPH,
                                    "selector": {"client": upstream, "server": service}}
            stages.append(stage)
        stages = [s for s in stages if "process" in s] or stages
    else:

        generic = [Candidate(f.name, f.labels, f.unit) for f in found.families
                   if f.name not in SPAN_METRICS and not f.name.startswith("traces_service_graph")]
        doc = {"version": 1, "name": "my-stream", "owner": "TODO", "window": "24h",
               "percentiles": [50, 99, 99.99], "sources": {"prom": {"kind": "prometheus", "url": url}}}
        head = ("# Drafted by `latmap discover`: time histograms only. Stages: one per `service` label\n"
                "# value, else `job` value, else metric-name prefix; `# guess:` marks each wait/process\n"
                "# guessed from the name. Put the stages in flow order and give each an owner.\n")
        return (head + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=110)
                + draft_stages(generic))
    doc = {"version": 1, "name": "my-stream", "owner": "TODO", "window": "24h",
           "percentiles": [50, 99, 99.99],
           "sources": {"prom": {"kind": "prometheus", "url": url}}, "stages": stages}
    head = ("# Drafted by `latmap discover` from service-graph metrics: give each stage an owner.\n")
    return head + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=110)


__all__ = ["Discovery", "Family", "discover", "escape_value", "starter_spec"]


def starter_spec_from_traces(edges: list[Any], path: str) -> str:
    """A starter spec whose stages are the services of the traced graph, in flow order.

    Virtual nodes (``user``, ``unknown``, databases) are not stages: nothing of theirs is
    traced.
    """
    real = [(e.client, e.server, float(e.count)) for e in edges if e.connection_type != "virtual_node"
            and e.connection_type != "database"]
    services = [s for s, _ in _chain(tuple(real))] if real else sorted(
        {e.server for e in edges if e.client == "user"})
    stages = [{"name": s, "owner": "TODO", "traces": {"source": "spans", "service": s}} for s in services]
    doc = {"version": 1, "name": "my-stream", "owner": "TODO", "window": "24h",
           "percentiles": [50, 99, 99.99], "sources": {"spans": {"kind": "traces", "path": path}},
           "stages": stages}
    head = "# Drafted by `latmap discover --traces`: check the order and give each stage an owner.\n"
    return head + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=110)


def graph_table(edges: list[Any]) -> str:
    """The traced service graph for people: edge, type, count, p50/p99 of the server side."""

    lines = [f"{len(edges)} edges"]
    for e in edges:
        d = SampleDistribution(e.latencies)
        kind = f" [{e.connection_type}]" if e.connection_type else ""
        lines.append(f"  {e.client} -> {e.server}{kind}  n={e.count:,}  p50 {cell(d.quantile(0.5))}"
                     f"  p99 {cell(d.quantile(0.99))}")
    return "\n".join(lines) + "\n"
