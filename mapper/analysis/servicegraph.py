"""The service graph from spans: who calls or feeds whom, with counts and latencies.

Follows the OpenTelemetry Collector's ``servicegraph`` connector, so a graph latmap builds
from traces matches the ``traces_service_graph_*`` metrics a team may already have:

* a CLIENT span and its SERVER child in another service: an edge client -> server;
* a PRODUCER span and its CONSUMER child, or a CONSUMER linked to it (in any trace: the
  connector's link-based edges; a batch consumer linked to N producers is N hand-overs): an
  edge of connection type ``messaging_system``. A consumer that is both a child of the
  producer and linked to it is counted once;
* a CLIENT span with no SERVER child: a *virtual node* server named by the span's
  ``peer.service`` (or ``db.system``, type ``database``), else ``unknown``;
* a SERVER span with no parent and no link: a virtual client ``user``.

Array operations only (a merge of children onto parents), no loop per span.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mapper.core.spans import KIND_CLIENT, KIND_CONSUMER, KIND_PRODUCER, KIND_SERVER, SpanBatch

NS = 1e-9


@dataclass(frozen=True)
class Edge:
    """One edge: ``latencies`` are the server-side (or consumer) span durations, seconds;
    ``waits`` the hand-over times (consumer start - producer end; server start - client start)."""

    client: str
    server: str
    connection_type: str
    count: int
    latencies: np.ndarray
    waits: np.ndarray


def _frame(batch: SpanBatch) -> pd.DataFrame:
    return pd.DataFrame({
        "th": batch.trace_hi, "tl": batch.trace_lo, "span": batch.span_id, "parent": batch.parent_id,
        "service": batch.service, "kind": batch.kind,
        "start": batch.start_ns, "end": batch.end_ns, "peer": batch.peer_service, "db": batch.db_system,
    })


def service_graph(batch: SpanBatch) -> list[Edge]:
    """Every edge of the graph, sorted by (client, server)."""
    f = _frame(batch)
    if f.empty:
        return []
    parents = f[["th", "tl", "span", "service", "kind", "start", "end"]].rename(columns={
        "th": "rth", "tl": "rtl", "span": "ref", "service": "p_service", "kind": "p_kind", "start": "p_start",
        "end": "p_end"})
    # Each span's references: its parent (same trace), then every link (any trace).
    links = batch.all_links
    has_parent = np.flatnonzero(batch.parent_id != 0)
    refs = pd.DataFrame({
        "row": np.r_[has_parent, links.row],
        "rth": np.r_[batch.trace_hi[has_parent], links.trace_hi],
        "rtl": np.r_[batch.trace_lo[has_parent], links.trace_lo],
        "ref": np.r_[batch.parent_id[has_parent], links.span_id],
        "is_link": np.r_[np.zeros(has_parent.size, bool), np.ones(len(links), bool)],
    })
    f["referenced"] = np.bincount(refs["row"].to_numpy(), minlength=len(f)) > 0 if len(refs) else False
    joined = refs.join(f, on="row").merge(parents, how="inner", on=["rth", "rtl", "ref"])
    rows = []
    # Paired edges: SERVER under CLIENT, CONSUMER under (or linked to) PRODUCER, across services.
    paired = joined[joined["p_service"] != joined["service"]]
    by_parent = np.zeros(len(f), dtype=bool)
    by_parent[paired.loc[~paired["is_link"], "row"].to_numpy()] = True
    paired = paired[~paired["is_link"].to_numpy() | ~by_parent[paired["row"].to_numpy()]]
    sync = paired[(paired["kind"] == KIND_SERVER) & (paired["p_kind"] == KIND_CLIENT)]
    msg = paired[(paired["kind"] == KIND_CONSUMER) & (paired["p_kind"] == KIND_PRODUCER)]
    for part, ctype, hand in ((sync, "", "p_start"), (msg, "messaging_system", "p_end")):
        part = part.assign(lat=(part["end"] - part["start"]) * NS, wait=(part["start"] - part[hand]) * NS)
        rows.append(part.assign(client=part["p_service"], server=part["service"], ctype=ctype)
                    [["client", "server", "ctype", "lat", "wait"]])
    # Virtual servers: CLIENT spans no SERVER span hangs off.
    served = sync[["rth", "rtl", "ref"]].drop_duplicates().rename(columns={"rth": "th", "rtl": "tl", "ref": "span"})
    clients = f[f["kind"] == KIND_CLIENT]
    if not clients.empty:
        marked = clients.merge(served, how="left", on=["th", "tl", "span"], indicator=True)
        lone = marked[marked["_merge"] == "left_only"]
        server = lone["peer"].where(lone["peer"].notna(), lone["db"]).fillna("unknown")
        kinds = np.where(lone["peer"].isna() & lone["db"].notna(), "database", "virtual_node")
        rows.append(pd.DataFrame({"client": lone["service"], "server": server, "ctype": kinds,
                                  "lat": (lone["end"] - lone["start"]) * NS, "wait": np.nan}))
    # Virtual clients: root SERVER spans.
    roots = f[(f["kind"] == KIND_SERVER) & ~f["referenced"]]
    rows.append(pd.DataFrame({"client": "user", "server": roots["service"], "ctype": "virtual_node",
                              "lat": (roots["end"] - roots["start"]) * NS, "wait": np.nan}))
    allrows = pd.concat([r for r in rows if not r.empty], ignore_index=True) if any(
        not r.empty for r in rows) else pd.DataFrame(columns=["client", "server", "ctype", "lat", "wait"])
    edges = []
    for (c, s, t), g in allrows.groupby(["client", "server", "ctype"], sort=True):
        w = g["wait"].to_numpy(dtype=float)
        edges.append(Edge(str(c), str(s), str(t), len(g), g["lat"].to_numpy(dtype=float), w[~np.isnan(w)]))
    return edges
