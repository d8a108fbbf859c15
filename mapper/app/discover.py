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
from mapper.app.draft import Candidate, DraftStage, Proposed, propose, stages_block
from mapper.app.exporters import SERVICE_GRAPH, convention
from mapper.core.distribution import SampleDistribution
from mapper.core.durations import prom_duration
from mapper.core.spec import SourceSpec
from mapper.render.cells import cell

MAX_SERIES = 500


@dataclass(frozen=True)
class Family:
    """A histogram family: its name and, per label, the values seen (up to 20)."""

    name: str
    labels: dict[str, list[str]]
    series: int
    help: str = ""
    unit: str = ""  # from the metadata, "" when it has none
    #: Each series' labels but ``le`` (up to :data:`MAX_SERIES`), for units of work.
    series_labels: tuple[tuple[tuple[str, str], ...], ...] = ()


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
        families.append(Family(name, {k: sorted(v)[:20] for k, v in values.items()}, len(keys), help_text, unit,
                               tuple(sorted(keys))[:MAX_SERIES]))
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


HEAD = ("# Drafted by `latmap discover`: a draft, with guesses. Confirm the order, the owners and each\n"
        "# `# guess:`, then remove `draft: true` (until then every map of it warns: spec-draft).\n")


def _header(url: str) -> str:
    doc = {"draft": True, "version": 1, "name": "my-stream", "owner": "TODO", "window": "24h",
           "percentiles": [50, 99, 99.99], "sources": {"prom": {"kind": "prometheus", "url": url}}}
    return HEAD + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=110)


def ordered(stages: list[DraftStage], edges: tuple[tuple[str, str, float], ...]) -> list[DraftStage]:
    """The stages in service-graph order, every node of the graph one or more stages: the
    node's own histograms where there are any, else the edge's server-side histogram from its
    busiest client, else (the root client) a stage with no measurement yet. Without edges,
    the order is a guess and the first stage says so."""
    if not edges:
        return [DraftStage(s.name, s.service, s.wait, s.process,
                           ("order: a guess (no service-graph series); put the stages in flow order",)
                           if i == 0 else ()) for i, s in enumerate(stages)]
    by_service: dict[str, list[DraftStage]] = defaultdict(list)
    for s in stages:
        by_service[s.service].append(s)
    out: list[DraftStage] = []
    taken = {s.name for s in stages}
    for node, up in _chain(edges):
        order = f"service graph: after {up}" if up else "service graph: a root client (nothing calls it)"
        own = by_service.pop(node, [])
        if own:
            out += [DraftStage(s.name, s.service, s.wait, s.process, (order,) if i == 0 else ())
                    for i, s in enumerate(own)]
            continue
        name = node if node not in taken else f"{node}-edge"
        if up:
            edge = Proposed(SERVICE_GRAPH, "s", (("client", up), ("server", node)), "process",
                            f"servicegraph edge {up} -> {node}, server side: no histogram of its own", False)
            out.append(DraftStage(name, node, None, edge, (order,)))
        else:
            out.append(DraftStage(name, node, None, None, (
                order, "no histogram of its own: give it a wait/process or remove it")))
    rest = [s for group in by_service.values() for s in group]
    return out + [DraftStage(s.name, s.service, s.wait, s.process,
                             ("not in the service graph: its place is a guess",) if i == 0 else ())
                  for i, s in enumerate(rest)]


def starter_spec(found: Discovery, url: str) -> str:
    """A starter ``stream.yaml`` marked ``draft: true``: it loads and maps as written, and says
    what is a guess (docs/sources/prometheus.md, rules in :mod:`mapper.app.draft`)."""
    generic = [Candidate(f.name, f.labels, f.unit, f.series_labels) for f in found.families
               if (c := convention(f.name)) is None or c.role != "edge"]
    stages, skipped = propose(generic)
    return _header(url) + stages_block(ordered(stages, found.edges), skipped)


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
