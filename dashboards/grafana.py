"""One Grafana dashboard per value stream, built with grafana-foundation-sdk's typed builders.

Layout, top to bottom: the value stream as a **Node Graph** (stages are nodes with their
process p99, hops are edges with the wait p99 in front of the next stage); an end-to-end row
(lead time p50/p99/p99.99 with the objectives as threshold lines, flow efficiency); an
objectives row when a stage objective sits on one histogram (the error budget left over the
budget window and the burn rates, from the recorded error ratios of ``latmap rules --alerts``:
the same series the alerts read); one row per stage (wait and process quantiles, bucket
heatmaps, request rate, the hop against its objectives). With traced stages, a flow row
(inventory, yield, %C&A, busy workers per stage) from the series of ``latmap serve --stream``
(:data:`mapper.core.names.STAGE_ITEMS`, :data:`~mapper.core.names.STAGE_INVENTORY`). Template variables: the Prometheus
data source and one per segment label; event windows are annotations.

Why Node Graph rather than Canvas: Node Graph lays out the stages and hops from two queries
(nodes and edges), so a stream's shape never has to be drawn by hand, and it is the panel the
OTel demo and Tempo's service graph already use. It needs **Grafana >= 8.5** (the panel left
beta in 8.5; fields ``id``/``title``/``mainstat`` and ``id``/``source``/``target``/``mainstat``
are read from table frames named by the query refIds ``nodes`` and ``edges``). The
values come from Prometheus instant queries formatted as tables; ``label_replace`` makes the
id/title/source/target columns and an ``organize`` transformation renames the value column
(``Value``, or ``Value #<refId>`` with two queries) to ``mainstat``. The JSON is written with
the current ``schemaVersion`` (41, Grafana 12), and Grafana migrates it forward on load.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, nodegraph, stat, timeseries
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig, ReduceDataOptions
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as hm_model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from dashboards import flow_metrics as FM
from dashboards import queries as Q
from dashboards.alerts import DEFAULT_POLICY, ObjectiveSeries, objective_series
from dashboards.queries import NotDashboardable
from mapper.core.durations import format_duration
from mapper.core.escape import grafana_text
from mapper.core.names import STAGE_PROCESS, STAGE_WAIT
from mapper.core.spec import Measurement, Objective, Stage, StreamSpec, live_lead_time

SCHEMA_VERSION = 41
TAG = "latmap"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
#: Grafana's unit ids for the spec's units (heatmap bucket bounds are in the metric's unit).
GRAFANA_UNITS = {"s": "s", "ms": "ms", "us": "µs", "µs": "µs", "ns": "ns", "m": "m", "h": "h"}


def dashboard_uid(name: str) -> str:
    """``latmap-<name>``: stable across runs and Grafanas; at most 40 characters of
    ``[A-Za-z0-9_-]``, with a hash of the name when it had to be shortened or cleaned."""
    slug = re.sub(r"[^A-Za-z0-9_-]", "-", name)
    uid = f"latmap-{slug}"
    if slug != name or len(uid) > 40:
        uid = f"latmap-{slug[:24]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return uid


def _target(expr: str, legend: str = "__auto", ref: str = "A", fmt: PromQueryFormat | None = None,
            instant: bool = False, exemplar: bool = False) -> prom.Dataquery:
    t = prom.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    if exemplar:  # the dots of the observations behind the line, each opening its trace
        t = t.exemplar(True)
    if fmt is not None:
        t = t.format(fmt)
    return t.instant() if instant else t.range()


def _thresholds(objectives: Iterable[Objective], scale: float = 1.0) -> db.ThresholdsConfig:
    steps = [dm.Threshold(color="green", value=None)]
    steps += [dm.Threshold(color="red", value=o.threshold / scale)
              for o in sorted(objectives, key=lambda o: o.threshold)]
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps)


def _quantile_panel(title: str, targets: list[tuple[str, str]], objectives: list[Objective],
                    description: str = "", exemplar: bool = False) -> timeseries.Panel:
    p = (timeseries.Panel().title(title).unit("s").datasource(DATASOURCE).span(12).height(8)
         .thresholds(_thresholds(objectives))
         .thresholds_style(GraphThresholdsStyleConfig().mode(
             common.GraphTresholdsStyleMode.LINE if objectives else common.GraphTresholdsStyleMode.OFF)))
    if description:
        p = p.description(description)
    for i, (legend, expr) in enumerate(targets):
        p = p.with_target(_target(expr, legend, chr(ord("A") + i), exemplar=exemplar))
    return p


def _stat(title: str, targets: list[tuple[str, str]], objectives: list[Objective], unit: str = "s",
          description: str = "") -> stat.Panel:
    p = (stat.Panel().title(title).unit(unit).datasource(DATASOURCE).span(6).height(8)
         .thresholds(_thresholds(objectives))
         .color_mode(common.BigValueColorMode.BACKGROUND)
         .graph_mode(common.BigValueGraphMode.AREA)
         .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False)))
    if description:
        p = p.description(description)
    for i, (legend, expr) in enumerate(targets):
        p = p.with_target(_target(expr, legend, chr(ord("A") + i)))
    return p


def _heatmap(title: str, expr: str, m: Measurement) -> heatmap.Panel:
    return (heatmap.Panel().title(title).datasource(DATASOURCE).span(12).height(8)
            .calculate(False)
            .y_axis(heatmap.YAxisConfig().unit(GRAFANA_UNITS.get(m.unit, "s")))
            .rows_frame(heatmap.RowsHeatmapOptions().layout(common.HeatmapCellLayout.AUTO))
            .color(heatmap.HeatmapColorOptions().mode(hm_model.HeatmapColorMode.SCHEME)
                   .scheme("Spectral").scale(hm_model.HeatmapColorScale.EXPONENTIAL).exponent(0.5))
            .filter_values(heatmap.FilterValueRange().le(1e-9))
            .with_target(_target(expr, "{{le}}", fmt=PromQueryFormat.HEATMAP)))


def _node_graph(spec: StreamSpec) -> nodegraph.Panel:
    rename = {"Value": "mainstat", "Value #nodes": "mainstat", "Value #edges": "mainstat"}
    return (nodegraph.Panel().title(f"{grafana_text(spec.name)}: value stream (p99 over the time range)")
            .description("Stages with their process p99; hops with the wait p99 in front of the "
                         "next stage, both over the dashboard's time range. NaN: not measured by "
                         "Prometheus.")
            .datasource(DATASOURCE).span(24).height(10)
            .with_target(_target(Q.graph_nodes(spec), "", "nodes", PromQueryFormat.TABLE, instant=True))
            .with_target(_target(Q.graph_edges(spec), "", "edges", PromQueryFormat.TABLE, instant=True))
            .with_transformation(dm.DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True}, "renameByName": rename})))


def _percentiles(spec: StreamSpec) -> list[float]:
    return list(spec.percentiles)


def _end_to_end(spec: StreamSpec, missing: list[NotDashboardable]) -> list[Builder[Any]]:
    objectives = [o for o in spec.objectives if o.target == "end_to_end"]
    panels: list[Builder[Any]] = [_quantile_panel(
        "Lead time (latmap's runs)", [("{{percentile}}", Q.pushed_lead_time(spec))], objectives,
        "The lead time's percentiles as latmap computed them (per trace, or the convolution of the "
        "hops' distributions), pushed by each `latmap report --pushgateway` run: one point per run. "
        "Empty until a run has pushed.")]
    measured = live_lead_time(spec)
    if measured is not None:  # every stage traced: `latmap serve --stream` measures each item's lead time
        per_item = [(Q.q_label(q), Q.quantile(spec, measured, q, per_segment=False)) for q in _percentiles(spec)]
        panels.append(_quantile_panel(
            "Lead time per item (latmap serve --stream)", per_item, objectives,
            "The lead time of each item that passed every stage, measured live from its spans: a real "
            "lead-time percentile, from bucket rates."))
        hm = Q.heatmap(spec, measured)
        if hm:
            panels.append(_heatmap("Lead time buckets", hm, measured))
    lead = [(Q.q_label(q), e) for q in _percentiles(spec) if (e := Q.lead_time_quantile(spec, q))]
    if lead:
        panels.append(_quantile_panel(
            "Hop quantiles added up (live; not the lead time's quantile)", lead, [],
            "Each line adds up the stages' wait and process quantiles, live from Prometheus. Quantiles do "
            "not add up, so this is a view of the hops, not a lead-time percentile: compare objectives "
            "with latmap's runs above."))
    else:
        missing.append(NotDashboardable("live hop sum", "no stage is measured by a Prometheus source"))
    flow = Q.flow_efficiency(spec)
    if flow:
        panels.append(_stat("Flow efficiency", [("process / lead time (means)", flow)], [], "percentunit",
                            "Mean process time over mean lead time; means add up exactly."))
    else:
        missing.append(NotDashboardable("flow efficiency", "needs the mean (_sum and _count) of every "
                                        "part; a raw query or a missing process time has none"))
    for o in objectives:
        panels.append(_stat(f"Lead time {Q.q_label(o.q)} vs objective",
                            [(grafana_text(o.label), Q.pushed_lead_time(spec, o.q))],
                            [o], description="latmap's last run (pushed with --pushgateway)."))
    return panels


def _stage_row(spec: StreamSpec, stage: Stage, missing: list[NotDashboardable]) -> list[Builder[Any]]:
    objectives = [o for o in spec.objectives if o.target == stage.name]
    panels: list[Builder[Any]] = []
    name = grafana_text(stage.name)  # in titles: Grafana would expand a $var or ${__user.login} in it
    rates = []
    for part, m in Q.parts(stage):
        why = Q.dashboardable(spec, m)
        if why:
            missing.append(NotDashboardable(f"{stage.name} {part}", why, m.place))
            continue
        qs = [(f"{Q.q_label(q)} {{{{{','.join(spec.segments.labels)}}}}}" if spec.segments.labels
               else Q.q_label(q), Q.quantile(spec, m, q)) for q in _percentiles(spec)]
        desc = ("Per series: summary quantiles cannot be aggregated across instances."
                if m.kind == "summary" else "")
        # a histogram's exemplars show as dots on its percentile lines (summaries have none)
        panels.append(_quantile_panel(f"{name} {part} time", qs, [], desc, exemplar=m.kind == "histogram"))
        hm = Q.heatmap(spec, m)
        if hm:
            panels.append(_heatmap(f"{name} {part} buckets", hm, m))
        else:
            missing.append(NotDashboardable(f"{stage.name} {part} heatmap",
                                            "a summary has no buckets to draw", m.place))
        rate = Q.request_rate(spec, m)
        if rate:
            rates.append((part, rate))
        else:
            missing.append(NotDashboardable(f"{stage.name} {part} request rate",
                                            "a raw query gives no count of items", m.place))
    if stage.traces is not None and not any(m.name in (STAGE_WAIT, STAGE_PROCESS) for _, m in Q.parts(stage)):
        missing.append(NotDashboardable(
            f"{stage.name} traces", "traces live in latmap's spool, not in a Grafana data source; "
            "`latmap serve --stream` exposes them as histograms (read with mapper.core.spec.with_live_series, "
            "as `latmap dashboards` does)", stage.traces.place))
    if not panels:
        missing.append(NotDashboardable(stage.name, "no wait or process measured by Prometheus", stage.place))
        return panels
    if rates:
        panels.append(timeseries.Panel().title(f"{name} request rate").unit("reqps")
                      .datasource(DATASOURCE).span(12).height(8)
                      .targets([_target(e, f"{part} {{{{{','.join(spec.segments.labels)}}}}}"
                                        if spec.segments.labels else part, chr(ord("A") + i))
                                for i, (part, e) in enumerate(rates)]))
    hop = [(f"hop {Q.q_label(q)}", e) for q in _percentiles(spec) if (e := Q.hop_quantile(spec, stage, q))]
    panels.append(_stat(f"{name} hop vs objectives", hop, objectives,
                        description="Wait plus process quantile; red beyond the stage's objective."))
    return panels


def _flow_panel(title: str, unit: str, description: str, targets: list[tuple[str, str]]) -> timeseries.Panel:
    p = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).span(12).height(8).description(description)
    if unit == "percentunit":
        p = p.min(0).max(1)
    for i, (legend, expr) in enumerate(targets):
        p = p.with_target(_target(expr, legend, _ref(i)))
    return p


def _ref(i: int) -> str:
    """Grafana refIds A..Z, then AA, AB ... (a flow panel has a target per stage)."""
    return chr(ord("A") + i) if i < 26 else _ref(i // 26 - 1) + chr(ord("A") + i % 26)


def _metered_flow_panels(spec: StreamSpec) -> list[Builder[Any]]:
    """The flow from the metrics the spec names (:mod:`dashboards.flow_metrics`): the queue
    gauges' mean and peak, %C&A from the error counters, utilisation over the spec's workers;
    a panel only where some stage has its metric."""
    stages = FM.metered_flow_stages(spec)
    inventory = [(legend, e) for s in stages for legend, e in (
        (grafana_text(s.name), FM.inventory_mean(spec, s)),
        (f"{grafana_text(s.name)} peak", FM.inventory_peak(spec, s))) if e]
    fpy = [(grafana_text(s.name), e) for s in stages if (e := FM.first_pass_yield(spec, s))]
    util = [(grafana_text(s.name), e) for s in stages if (e := FM.utilisation(spec, s))]
    about = "From the metrics the spec names on each stage. "
    panels: list[Builder[Any]] = []
    if inventory:
        panels.append(_flow_panel(
            "Inventory from queue gauges: mean and peak", "short",
            about + "`inventory:` gauge summed over its series (queue depth, consumer lag): its time-average "
            "over the rate interval, and the most waiting at once (the peak of the sum).", inventory))
    if fpy:
        panels.append(_flow_panel(
            "%C&A from error counters", "percentunit",
            about + "1 - the `errors:` (or `retries:`, the larger of the two) counter's rate over the items' rate "
            "(the process histogram's count): attempts right the first time.", fpy))
    if util:
        panels.append(_flow_panel(
            "Utilisation: busy seconds / (second x workers)", "percentunit",
            about + "The process histogram's summed seconds per second over the spec's `workers:`; near 1 the "
            "waits climb steeply.", util))
    return panels


def _flow_panels(spec: StreamSpec) -> list[Builder[Any]]:
    """The flow row (issue 27): inventory, yield, %C&A and busy workers per traced stage, from
    the series ``latmap serve --stream`` exports, then the stages' flow metrics; empty when
    no stage has either."""
    metered = _metered_flow_panels(spec)
    if not Q.flow_stages(spec):
        return metered
    live = "Live, from `latmap serve --stream` (traced stages). "
    return [
        _flow_panel("Inventory: items waiting before each stage", "short",
                    live + "The items handed over to a stage and not yet started (a VSM inventory triangle): "
                    "now, and the most at once over the rate interval.",
                    [("{{stage}}", Q.inventory(spec)), ("{{stage}} peak", Q.inventory(spec, "max"))]),
        _flow_panel("Yield: items handed on / items in", "percentunit",
                    live + "Items a stage hands on to a next stage over the items that reached it; the rest "
                    "stopped there (complete for the stages they passed). 0 at a last stage.",
                    [("{{stage}}", Q.flow_yield(spec))]),
        _flow_panel("%C&A: first-pass yield", "percentunit",
                    live + "The share of items processed without an error or a retry at the stage "
                    "(1 - (failed + retried) / items in).",
                    [("{{stage}}", Q.first_pass_yield(spec))]),
        _flow_panel("Busy workers: process seconds per second", "short",
                    live + "The workers busy on average (utilisation x workers): the stage's process time "
                    "per second of the rate interval. Divide by the workers for the utilisation; `latmap "
                    "map` reports it with the workers counted from the spans.",
                    [("{{stage}}", Q.busy_workers(spec))]),
        *metered,
    ]


def _objective_panels(o: ObjectiveSeries) -> list[Builder[Any]]:
    """Budget left over the budget window and the burn rates: the alert rules' recorded
    error ratios (``latmap rules --alerts``), so the panels show what the alerts see."""
    name = grafana_text(f"{o.stage} {o.objective.label.split()[-1]} <= {o.objective.threshold:g}s")
    period = format_duration(DEFAULT_POLICY.period)
    left = (stat.Panel().title(f"{name}: error budget left ({period})").unit("percentunit")
            .datasource(DATASOURCE).span(6).height(8).min(-1).max(1)
            .description("1 - (observations above the threshold / all, over the budget window) / (1 - q); "
                         "from the recorded error ratios of `latmap rules --alerts` (load them into Prometheus).")
            .thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps([
                dm.Threshold(color="red", value=None), dm.Threshold(color="orange", value=0.0),
                dm.Threshold(color="green", value=0.25)]))
            .color_mode(common.BigValueColorMode.BACKGROUND)
            .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .with_target(_target(o.budget_remaining, "budget left")))
    burn = (timeseries.Panel().title(f"{name}: burn rate").unit("x").datasource(DATASOURCE).span(18).height(8)
            .description("Error ratio / error budget per alert window; the page alert fires above 14.4 (1h) "
                         "or 6 (6h) with its short window, the ticket above 1 (3d).")
            .thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps([
                dm.Threshold(color="green", value=None), dm.Threshold(color="orange", value=1.0),
                dm.Threshold(color="red", value=6.0)]))
            .thresholds_style(GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.LINE)))
    for i, (window, expr) in enumerate(o.burn_rates):
        burn = burn.with_target(_target(expr, f"burn {format_duration(window)}", chr(ord("A") + i)))
    return [left, burn]


def build(spec: StreamSpec) -> tuple[db.Dashboard, list[NotDashboardable]]:
    """The dashboard builder and what was left out of it."""
    Q.check_labels(spec)
    missing: list[NotDashboardable] = []
    d = (db.Dashboard(grafana_text(f"latmap: {spec.name}")).uid(dashboard_uid(spec.name)).tags([TAG])
         .description(grafana_text(f"Value stream {spec.name!r}, generated by latmap from {spec.path}; "
                                   "regenerate rather than edit."))
         .editable().time("now-24h", "now").refresh("1m").timezone("utc")
         .with_variable(db.DatasourceVariable("datasource").label("Prometheus").type("prometheus")))
    for label in spec.segments.labels:
        d = d.with_variable(
            db.QueryVariable(label).label(label).datasource(DATASOURCE)
            .query({"query": f"label_values({label})", "refId": "PrometheusVariableQueryEditor-VariableQuery"})
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True).include_all(True).all_value(".*")
            .current(dm.VariableOption(selected=True, text="All", value="$__all")))
    for ev in spec.events:
        if (expr := Q.event_window(spec, ev.name)) is None:
            continue  # a local-time recurring event has no PromQL form (UTC functions only)
        d = d.annotation(db.AnnotationQuery().name(grafana_text(ev.name)).datasource(DATASOURCE).enable(True)
                         .icon_color("orange").expr(expr))
    d = d.with_row(db.Row("Value stream")).with_panel(_node_graph(spec))
    d = d.with_row(db.Row("End to end"))
    for p in _end_to_end(spec, missing):
        d = d.with_panel(p)
    flow = _flow_panels(spec)
    if flow:
        d = d.with_row(db.Row("Flow"))
        for p in flow:
            d = d.with_panel(p)
    objectives = objective_series(spec)
    if objectives:
        d = d.with_row(db.Row("Objectives"))
        for o in objectives:
            for p in _objective_panels(o):
                d = d.with_panel(p)
    for stage in spec.stages:
        d = d.with_row(db.Row(grafana_text(f"Stage: {stage.name}" + (f" ({stage.owner})" if stage.owner else ""))))
        for p in _stage_row(spec, stage, missing):
            d = d.with_panel(p)
    return d, missing


def build_dashboard(spec: StreamSpec) -> tuple[dict[str, Any], list[NotDashboardable]]:
    """The dashboard as Grafana JSON (a dict), and the parts of the stream it cannot show.

    Offline: reads only the spec. Raises :class:`dashboards.queries.DashboardError` for label
    names PromQL refuses."""
    builder, missing = build(spec)
    doc: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    doc["schemaVersion"] = SCHEMA_VERSION
    doc.pop("id", None)
    next_id = 1
    for panel in doc["panels"]:
        panel["id"] = next_id
        next_id += 1
    return doc, missing


def dashboard_queries(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Every PromQL expression in a dashboard: ``(panel title, expr)``; annotations are
    named ``annotation: <name>``."""
    out = [(f"annotation: {a['name']}", a["expr"]) for a in doc.get("annotations", {}).get("list", [])
           if a.get("expr")]
    for panel in doc["panels"]:
        for t in panel.get("targets", []):
            out.append((f"{panel['title']} [{t.get('refId', '')}]", t["expr"]))
    return out


__all__ = ["DATASOURCE", "GRAFANA_UNITS", "SCHEMA_VERSION", "TAG", "build", "build_dashboard",
           "dashboard_queries", "dashboard_uid"]


def all_queries(spec: StreamSpec) -> list[tuple[str, str]]:
    """Every PromQL expression of the stream's dashboard as ``(panel title, expr)``, read
    back from the built dashboard so that nothing it holds escapes the tests and ``--check``."""
    return dashboard_queries(build_dashboard(spec)[0])
