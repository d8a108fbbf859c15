"""Files Grafana and Prometheus load at start-up, written into one output folder.

``write_provisioning(spec, out)`` writes::

    out/dashboards/<uid>.json                 the stream's dashboard
    out/rules/<stream>.rules.yml              Prometheus recording rules (dashboards.rules)
    out/provisioning/dashboards/latmap.yaml   a file provider reading out/dashboards
    out/provisioning/datasources/latmap.yaml  the Prometheus data source

The provisioning files follow Grafana's documented layout
(https://grafana.com/docs/grafana/latest/administration/provisioning/): mount
``out/provisioning`` as ``/etc/grafana/provisioning`` and ``out/dashboards`` where the
provider's ``options.path`` points (``dashboards_path``; by default the absolute path of
``out/dashboards`` on this machine). ``check_queries`` runs every dashboard query against
the stream's Prometheus for ``latmap dashboards --check``.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import yaml

from collectors.prometheus import PrometheusClient
from dashboards.grafana import build_dashboard, dashboard_queries
from dashboards.queries import is_pushed
from dashboards.rules import render_rules
from mapper.core.errors import LatmapError, SourceError, UsageError
from mapper.core.escape import grafana_provisioning, grafana_url
from mapper.core.files import dumps, write_atomic
from mapper.core.spec import StreamSpec
from mapper.core.tracelinks import viewer_destination

log = logging.getLogger(__name__)

DATASOURCE_NAME = "latmap Prometheus"
DATASOURCE_UID = "latmap-prometheus"
FOLDER = "latmap"
#: Grafana's placeholder for the exemplar's value (the trace id) in a data link.
VALUE_PLACEHOLDER = "${__value.raw}"


def source_url(spec: StreamSpec) -> str:
    """The URL of the stream's first Prometheus source (the dashboards' data source)."""
    for src in spec.sources.values():
        if src.kind == "prometheus":
            return src.url
    raise UsageError(f"{spec.path}: the stream has no prometheus source; give --prometheus URL")


def exemplar_destinations(spec: StreamSpec) -> list[dict[str, str]]:
    """Grafana's ``exemplarTraceIdDestinations``: for each exemplar label that holds a trace
    id, the trace viewer of the spec's ``links:`` (a Tempo data source by uid, else the URL
    with Grafana's ``${__value.raw}``); none without ``links:``.

    Two expansions to survive: Grafana interpolates the data link (``${__value.raw}``, but
    also any ``$var`` or ``${__user.login}``) when the dot is clicked, so the spec's parts of
    the URL around the placeholder go through :func:`grafana_url`; and it expands environment
    variables in provisioning files when it loads them, which :func:`datasources_yaml`
    undoes with :func:`grafana_provisioning` on every value."""
    if spec.links is None:
        return []
    dest = viewer_destination(spec.links)
    if dest is None:
        return []
    kind, value = dest
    out = []
    for label in spec.examples.trace_id_labels:
        if kind == "datasourceUid":
            out.append({"name": label, "datasourceUid": value})
        else:
            url = VALUE_PLACEHOLDER.join(grafana_url(part) for part in value.split(VALUE_PLACEHOLDER))
            out.append({"name": label, "url": url, "urlDisplayLabel": "Open the trace"})
    return out


def datasources_yaml(url: str, destinations: list[dict[str, str]] | None = None) -> str:
    """The data source provisioning file. Every value that is not latmap's own constant goes
    through :func:`grafana_provisioning` (``$`` doubled), so a ``$__file{...}`` or ``$HOME``
    in a URL or uid reaches Grafana as written instead of being expanded on load."""
    json_data: dict[str, object] = {"httpMethod": "POST", "timeInterval": "15s"}
    if destinations:
        json_data["exemplarTraceIdDestinations"] = [{k: grafana_provisioning(v) for k, v in d.items()}
                                                    for d in destinations]
    doc = {"apiVersion": 1, "datasources": [{
        "name": DATASOURCE_NAME, "uid": DATASOURCE_UID, "type": "prometheus", "access": "proxy",
        "url": grafana_provisioning(url), "isDefault": True, "editable": False,
        "jsonData": json_data,
    }]}
    return "# Written by latmap: the Prometheus the stream's dashboards read.\n" + yaml.safe_dump(doc, sort_keys=False)


def dashboards_yaml(path: str) -> str:
    """The dashboard provider file reading ``path`` (``$`` doubled: Grafana expands variables
    in it, see :func:`grafana_provisioning`)."""
    doc = {"apiVersion": 1, "providers": [{
        "name": "latmap", "orgId": 1, "folder": FOLDER, "type": "file", "disableDeletion": False,
        "updateIntervalSeconds": 30, "allowUiUpdates": False,
        "options": {"path": grafana_provisioning(path), "foldersFromFilesStructure": False},
    }]}
    return ("# Written by latmap: load the value-stream dashboards (tagged latmap) from a folder.\n"
            + yaml.safe_dump(doc, sort_keys=False))


def _rules_text(spec: StreamSpec) -> str:

    return render_rules(spec)


def write_provisioning(spec: StreamSpec, out_dir: str | Path, datasource_url: str | None = None,
                       dashboards_path: str | None = None, rules: bool = True) -> list[Path]:
    """Write the dashboard, the rules and Grafana's provisioning files under ``out_dir``.

    ``datasource_url`` defaults to the stream's Prometheus source. Returns the paths written
    (``build_dashboard(spec)[1]`` lists what the dashboard cannot show)."""
    out = Path(out_dir)
    doc, _ = build_dashboard(spec)
    written = [write_atomic(out / "dashboards" / f"{doc['uid']}.json", dumps(doc))]
    if rules:
        text = _rules_text(spec)
        written.append(write_atomic(out / "rules" / f"{spec.name}.rules.yml", text))
    prov = out / "provisioning"
    path = dashboards_path or str((out / "dashboards").resolve())
    written.append(write_atomic(prov / "dashboards" / "latmap.yaml", dashboards_yaml(path)))
    written.append(write_atomic(prov / "datasources" / "latmap.yaml",
                                datasources_yaml(datasource_url or source_url(spec), exemplar_destinations(spec))))
    return written


# --------------------------------------------------------------------------- --check

#: What Grafana would put in for its variables when a query is run outside Grafana.
CHECK_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def concrete(expr: str, spec: StreamSpec, rate: str = "5m", rng: str = "1h") -> str:
    """``expr`` with Grafana's variables replaced: rate range, interval, range, and every
    segment label's variable by ``.*`` (the dashboard's "All")."""
    out = expr.replace("$__rate_interval", rate).replace("$__interval", "1m").replace("$__range", rng)
    for label in sorted(spec.segments.labels, key=len, reverse=True):
        out = re.sub(rf"\${label}\b", ".*", out)
    return out


def check_queries(spec: StreamSpec, prometheus_url: str | None = None, at: float | None = None,
                  ) -> list[str]:
    """Run every query of the stream's dashboard against its Prometheus (or ``prometheus_url``)
    and return one line per query that fails or returns nothing: ``panel: why: expr``.

    Panel queries run as instant queries at ``at`` (default now); annotation queries as a
    range query over the spec's window, since an event is not on at every instant. Raises
    :class:`SourceError` when the Prometheus does not answer at all."""

    url = prometheus_url or source_url(spec)
    sources = [s for s in spec.sources.values() if s.kind == "prometheus"]
    if not sources:
        raise UsageError(f"{spec.path}: the stream has no prometheus source to check against")
    client = PrometheusClient(spec.with_source_url("prometheus", url).sources[sources[0].name])
    now = time.time() if at is None else at
    try:  # one probe, so a source that is down is one error, not one per query
        client.query("vector(1)", now)
    except LatmapError as err:
        raise SourceError(f"--check: the Prometheus at {url} does not answer: {err}") from err
    problems = []
    doc, _ = build_dashboard(spec)
    for title, expr in dashboard_queries(doc):
        text = concrete(expr, spec)
        try:
            if title.startswith("annotation: "):
                result: Any = client.query_range(text, now - spec.window, now, 60.0)
                empty = not result.series
            else:
                result = client.query(text, now)
                empty = not result.samples and result.scalar is None
        except LatmapError as err:
            problems.append(f"{title}: query failed: {err}: {text}")
            continue
        if empty and not is_pushed(text):  # latmap's own gauges exist once a run has pushed
            problems.append(f"{title}: no data: {text}")
    return problems


__all__ = ["DATASOURCE_NAME", "DATASOURCE_UID", "FOLDER", "VALUE_PLACEHOLDER", "check_queries", "concrete",
           "dashboards_yaml", "datasources_yaml", "exemplar_destinations", "source_url", "write_provisioning"]
