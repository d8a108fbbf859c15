"""Grafana dashboards and provisioning: every query runs on a real Prometheus holding the
demo's day; the demo's dashboard is a golden file; provisioning YAML has Grafana's keys."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from dashboards.grafana import SCHEMA_VERSION, all_queries, build_dashboard, dashboard_queries, dashboard_uid
from dashboards.provisioning import check_queries, concrete, write_provisioning
from dashboards.queries import DashboardError
from mapper.core.files import dumps
from mapper.core.spec import StreamSpec, loads_spec
from mapper.core.spec.extra import Segments
from mapper.demo.run import demo_spec
from tests import data
from tests.dashboards.averages import averages_a_percentile
from tests.paths import GOLDEN, ROOT

GOLDEN = GOLDEN / "dashboard-trading.json"
DEPLOY = ROOT / "deploy" / "grafana"
DEPLOY_DASHBOARDS = "/var/lib/grafana/dashboards/latmap"
DEPLOY_PROMETHEUS = "http://prometheus:9090"


def demo(url: str = "http://127.0.0.1:9090") -> StreamSpec:
    return loads_spec(demo_spec("prometheus", url, None), "<demo>")


RAW_QUERY = ("process: {source: prom, histogram: alert_eval_seconds}",
             'process: {source: prom, query: "sum by (le) (increase(alert_eval_seconds_bucket[$window]))"}')
VARIANTS = ("demo", "segment-labels", "raw-query")


def variant(name: str, url: str) -> StreamSpec:
    """The demo's stream, with segment labels (one only some metrics carry), or with a raw query."""
    if name == "segment-labels":
        return replace(demo(url), segments=Segments(labels=("provider", "service")))
    if name == "raw-query":
        return loads_spec(demo_spec("prometheus", url, None).replace(*RAW_QUERY), "<demo>")
    return demo(url)


@pytest.mark.parametrize("name", VARIANTS)
def test_every_dashboard_query_returns_data_on_the_demo(prom_url: str, name: str) -> None:
    spec = variant(name, prom_url)
    assert check_queries(spec, prom_url, at=data.END) == []


def test_check_names_the_query_that_returns_nothing(prom_url: str) -> None:
    spec = loads_spec(demo_spec("prometheus", prom_url, None).replace(
        "alert_eval_seconds", "alert_eval_typo_seconds"), "<demo>")
    problems = check_queries(spec, prom_url, at=data.END)
    assert problems
    assert all("alert_eval_typo_seconds" in p for p in problems)
    assert any(p.startswith("alerting process time [B]: no data: histogram_quantile(0.99") for p in problems)


def test_queries_use_rate_interval_sum_by_le_and_no_average_of_quantiles() -> None:
    spec = replace(demo(), segments=Segments(labels=("provider",)))
    for title, expr in all_queries(spec):
        assert not averages_a_percentile(expr), title
        if "histogram_quantile" in expr and "value stream" not in title:
            assert "[$__rate_interval]" in expr, title
    qs = dict(all_queries(spec))
    assert qs["alerting process time [B]"] == (
        'histogram_quantile(0.99, sum by (le, provider) '
        '(rate(alert_eval_seconds_bucket{provider=~"$provider"}[$__rate_interval])))')
    assert concrete(qs["alerting process time [B]"], spec) == (
        'histogram_quantile(0.99, sum by (le, provider) (rate(alert_eval_seconds_bucket{provider=~".*"}[5m])))')


def test_demo_dashboard_matches_golden_file() -> None:
    doc, missing = build_dashboard(demo())
    text = dumps(doc)
    if os.environ.get("LATMAP_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")
    assert missing == []


def test_dashboard_shape() -> None:
    doc, _ = build_dashboard(replace(demo(), segments=Segments(labels=("provider",))))
    assert doc["uid"] == "latmap-trading" and doc["tags"] == ["latmap"]
    assert doc["schemaVersion"] == SCHEMA_VERSION
    types = [p["type"] for p in doc["panels"]]
    assert types.count("nodeGraph") == 1 and types.count("heatmap") == 5
    node = next(p for p in doc["panels"] if p["type"] == "nodeGraph")
    assert [t["refId"] for t in node["targets"]] == ["nodes", "edges"]
    assert all(t["format"] == "table" and t["instant"] for t in node["targets"])
    assert all(t["format"] == "heatmap" for p in doc["panels"] if p["type"] == "heatmap" for t in p["targets"])
    rows = [p["title"] for p in doc["panels"] if p["type"] == "row"]
    assert rows == ["Value stream", "End to end", "Stage: market-data (md-team)",
                    "Stage: alerting (alerts-team)", "Stage: notification (notify-team)"]
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["provider"]["includeAll"] and variables["provider"]["allValue"] == ".*"
    assert [a["name"] for a in doc["annotations"]["list"]] == ["daily-news"]
    lead = next(p for p in doc["panels"] if p["title"] == "Lead time (latmap's runs)")
    assert [s["value"] for s in lead["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 2.0]
    ids = [p["id"] for p in doc["panels"]]
    assert len(set(ids)) == len(ids)


def test_uid_is_stable_short_and_valid() -> None:
    assert dashboard_uid("trading") == "latmap-trading"
    long = dashboard_uid("a.very.long.stream-name-that-goes-on-and-on")
    assert long == dashboard_uid("a.very.long.stream-name-that-goes-on-and-on")
    assert len(long) <= 40 and long.replace("-", "").replace("_", "").isalnum()
    assert dashboard_uid("a.b") != dashboard_uid("a-b")


def test_summaries_raw_queries_and_traces_are_listed_as_not_dashboardable() -> None:
    text = demo_spec("prometheus", "http://127.0.0.1:9090", "spool").replace(
        "histogram: alert_queue_wait_seconds", "summary: alert_queue_wait_seconds").replace(*RAW_QUERY)
    doc, missing = build_dashboard(loads_spec(text, "<demo>"))
    what = {m.what: m.reason for m in missing}
    assert "summary has no buckets" in what["alerting wait heatmap"]
    assert "no count" in what["alerting process request rate"]
    assert "spool" in what["notification traces"]
    assert "mean" in what["flow efficiency"]
    qs = dict(dashboard_queries(doc))
    assert qs["alerting wait time [B]"] == 'alert_queue_wait_seconds{quantile="0.99"}'
    assert "max(alert_queue_wait_seconds{quantile=\"0.99\"})" in qs["alerting hop vs objectives [B]"]


def test_invalid_label_names_get_clear_messages() -> None:
    spec = replace(demo(), segments=Segments(labels=("region-name", "le", "__meta")))
    with pytest.raises(DashboardError) as err:
        build_dashboard(spec)
    msg = str(err.value)
    assert "'region-name' is not a valid PromQL label name" in msg
    assert "'le' is used by latmap's dashboard" in msg
    assert "'__meta': names starting with '__' are reserved" in msg


def test_provisioning_layout_and_grafana_keys(tmp_path: Path) -> None:
    written = write_provisioning(demo(), tmp_path, "http://prom:9090")
    rel = sorted(str(p.relative_to(tmp_path)) for p in written)
    expected = ["dashboards/latmap-trading.json", "provisioning/dashboards/latmap.yaml",
                "provisioning/datasources/latmap.yaml"]
    try:
        import dashboards.rules  # noqa: F401
        expected.append("rules/trading.rules.yml")
    except ImportError:
        pass
    assert rel == sorted(expected)
    doc = json.loads((tmp_path / "dashboards/latmap-trading.json").read_text())
    assert doc["uid"] == "latmap-trading"
    prov = yaml.safe_load((tmp_path / "provisioning/dashboards/latmap.yaml").read_text())
    assert prov["apiVersion"] == 1
    provider = prov["providers"][0]
    assert provider["type"] == "file"
    assert Path(provider["options"]["path"]) == (tmp_path / "dashboards").resolve()
    ds = yaml.safe_load((tmp_path / "provisioning/datasources/latmap.yaml").read_text())
    assert ds["apiVersion"] == 1
    (source,) = ds["datasources"]
    assert (source["type"], source["url"], source["access"], source["isDefault"]) == (
        "prometheus", "http://prom:9090", "proxy", True)


def test_deploy_example_is_what_latmap_writes(tmp_path: Path) -> None:
    write_provisioning(demo(), tmp_path, DEPLOY_PROMETHEUS, dashboards_path=DEPLOY_DASHBOARDS, rules=False)
    for rel in ("dashboards/latmap-trading.json", "provisioning/dashboards/latmap.yaml",
                "provisioning/datasources/latmap.yaml"):
        assert (DEPLOY / rel).read_text() == (tmp_path / rel).read_text(), rel


def test_node_graph_frames_carry_ids_and_p99s(prom_url: str) -> None:
    from collectors.prometheus import PrometheusClient

    spec = demo(prom_url)
    client = PrometheusClient(spec.sources["prom"])
    node = next(p for p in build_dashboard(spec)[0]["panels"] if p["type"] == "nodeGraph")
    nodes, edges = (client.query(concrete(t["expr"], spec), data.END).samples for t in node["targets"])
    assert sorted((s.labels["id"], s.labels["title"]) for s in nodes) == [
        ("alerting", "alerting"), ("market-data", "market-data"), ("notification", "notification")]
    assert sorted((s.labels["id"], s.labels["source"], s.labels["target"]) for s in edges) == [
        ("alerting->notification", "alerting", "notification"),
        ("market-data->alerting", "market-data", "alerting")]
    assert all(s.value is not None and 0 < s.value < 10 for s in (*nodes, *edges))


def test_percentile_panels_show_exemplars_and_the_data_source_links_them_to_the_viewer(tmp_path: Path) -> None:
    from mapper.core.spec.links import Links

    doc, _ = build_dashboard(demo())
    timed = [p for p in doc["panels"] if p["type"] == "timeseries" and p["title"].endswith(" time")]
    assert timed and all(t.get("exemplar") is True for p in timed for t in p["targets"])
    # no links: no destinations
    write_provisioning(demo(), tmp_path / "a", "http://prom:9090")
    ds = yaml.safe_load((tmp_path / "a/provisioning/datasources/latmap.yaml").read_text())
    assert "exemplarTraceIdDestinations" not in ds["datasources"][0]["jsonData"]
    tempo = replace(demo(), links=Links(preset="grafana-tempo", url="http://grafana", datasource="tempo-1"))
    write_provisioning(tempo, tmp_path / "b", "http://prom:9090")
    ds = yaml.safe_load((tmp_path / "b/provisioning/datasources/latmap.yaml").read_text())
    assert ds["datasources"][0]["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": "tempo-1"}, {"name": "traceID", "datasourceUid": "tempo-1"}]
    jaeger = replace(demo(), links=Links(preset="jaeger", url="http://jaeger:16686"))
    write_provisioning(jaeger, tmp_path / "c", "http://prom:9090")
    ds = yaml.safe_load((tmp_path / "c/provisioning/datasources/latmap.yaml").read_text())
    dest = ds["datasources"][0]["jsonData"]["exemplarTraceIdDestinations"][0]
    # $$ in a provisioning file is a literal $ once Grafana has expanded environment variables
    assert dest == {"name": "trace_id", "url": "http://jaeger:16686/trace/$${__value.raw}",
                    "urlDisplayLabel": "Open the trace"}
