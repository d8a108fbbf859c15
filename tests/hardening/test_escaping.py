"""Issue 25, template injection: a name is data in every language latmap writes.

One test per output language, each with hostile names (the issue's examples and more), each
asserting that the output still parses in its language with the names as written, and that
ordinary names come out unchanged. The functions are in :mod:`mapper.core.escape`.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from collectors.promql import escape_value
from dashboards.alerts import (
    Layout,
    alert_group,
    alert_targets,
    not_alertable,
    promtool_tests,
    to_yaml,
    with_alert_group,
)
from dashboards.grafana import build_dashboard, dashboard_queries
from dashboards.provisioning import concrete, datasources_yaml, write_provisioning
from dashboards.rules import render_rules
from mapper.analysis.examples import Example, StageTime
from mapper.analysis.latency import LatencyMap, MapInput, analyse
from mapper.app.discover import Discovery, Family, starter_spec
from mapper.core.distribution import HistogramDistribution
from mapper.core.escape import (
    go_template,
    grafana_provisioning,
    grafana_text,
    grafana_url,
    html_text,
    markdown_code,
    markdown_text,
    promql_string,
    xml_attr,
    xml_text,
    yaml_comment,
    yaml_scalar,
)
from mapper.core.files import dumps
from mapper.core.model import MeasurementResult, Window
from mapper.core.redact import is_unicode_text
from mapper.core.spec import StreamSpec, loads_spec
from mapper.core.spec.links import Links
from mapper.demo.data import MD
from mapper.render.examples import timeline_svg
from mapper.render.html import to_html
from mapper.render.report import to_markdown
from mapper.render.trend_svg import TrendPoint, trend_svg
from mapper.render.vsm_svg import to_svg
from tests.servers import require_binary

#: Names a spec may give a stage, an owner or an event (no control characters: the spec
#: refuses those), each aimed at one language.
HOSTILE = [
    "${__user.login}", "$__file{/etc/passwd}", "$__env{HOME}", "$1", "$datasource", "[[var]]", "[[[x]]]",
    "b{{ x", "a}}b", "{{ .ExternalURL }}", "end{", 'q"uote\\back', "a|b`c`<img src=x>", "x: y # z",
]
#: What XML and YAML cannot hold at all, and what would end a CDATA section or open a tag.
UNWRITABLE = ["x\ufffey", "a\ud800b", "\uffff", "]]>", "<script>alert(1)</script>"]
ORDINARY = ["market-data", "alerting", "notify_send", "p99.99", "Order Book 2", "café"]


def _spec(names: list[str], path: str = "stream.yaml", event: str = "news") -> StreamSpec:
    """One stage per name, each a histogram with a p99 objective at a bucket bound (alertable)."""
    stages = "".join(
        f"  - {{name: {json.dumps(n)}, owner: {json.dumps(n)}, process: {{source: prom, histogram: m{i}_seconds, "
        f"selector: {{svc: {json.dumps(n)}}}}}, objectives: {{p99: 25ms}}}}\n" for i, n in enumerate(names))
    return loads_spec("name: hostile\nsources: {prom: {kind: prometheus, url: \"http://127.0.0.1:9\"}}\n"
                      f"stages:\n{stages}events:\n  - {{name: {json.dumps(event)}, start: \"2026-01-01T00:00:00Z\", "
                      "end: \"2026-01-01T01:00:00Z\"}\n", path)


def test_every_escape_leaves_ordinary_names_alone() -> None:
    for name in ORDINARY:
        for f in (go_template, grafana_provisioning, grafana_text, grafana_url, promql_string, markdown_text,
                  markdown_code, xml_text, html_text, yaml_comment):
            # report.md has always written an underscore \_ (emphasis); nothing else changes
            expected = name.replace("_", "\\_") if f is markdown_text else name
            assert f(name) == expected, (f.__name__, name)
        assert yaml_scalar(name) == (json.dumps(name) if name.isascii() else f'"{name}"')
        assert xml_attr(name) == f'"{name}"'


# --------------------------------------------------------------------------- Grafana provisioning


def _grafana_expands(value: str) -> str:
    """What Grafana makes of a provisioning value: split on ``$$``, expand each part, join with
    ``$``. A part that still holds a ``$`` would be expanded: none may."""
    parts = value.split("$$")
    assert not [p for p in parts if "$" in p], value
    return "$".join(parts)


def test_provisioning_files_give_grafana_the_urls_and_paths_as_written(tmp_path: Path) -> None:
    out = tmp_path / "out$HOME${X}$__file{x}"
    url = "http://prom:9090/$__file{/etc/passwd}/${GF_SECURITY_ADMIN_PASSWORD}$$x$"
    template = "https://viewer.test/$__env{HOME}/t/{trace_id}?u=${__user.login}&v=[[var]]"
    spec = replace(_spec(["a"]), links=Links(template=template))
    write_provisioning(spec, out, url)
    ds = yaml.safe_load((out / "provisioning/datasources/latmap.yaml").read_text())["datasources"][0]
    assert _grafana_expands(ds["url"]) == url
    link = _grafana_expands(ds["jsonData"]["exemplarTraceIdDestinations"][0]["url"])
    # after provisioning, the data link holds latmap's placeholder only; the spec's $ are %24
    assert re.findall(r"\$\{[^}]*\}|\$\w+|\[\[", link) == ["${__value.raw}"]
    assert link.startswith("https://viewer.test/%24__env%7BHOME%7D/t/${__value.raw}?u=%24%7B__user.login%7D")
    providers = yaml.safe_load((out / "provisioning/dashboards/latmap.yaml").read_text())["providers"]
    assert _grafana_expands(providers[0]["options"]["path"]) == str((out / "dashboards").resolve())
    # ordinary values are written as they are
    assert "url: http://prom:9090\n" in datasources_yaml("http://prom:9090")


# --------------------------------------------------------------------------- Grafana dashboard JSON

_TOKEN = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]|\{\{[^}]*\}\}")
#: latmap's own templates in its dashboard; no other variable may appear.
OURS = {"${datasource}", "$__all", "$__rate_interval", "$__range", "{{le}}", "{{percentile}}"}


def _strings(doc: Any, key: str = "") -> list[tuple[str, str]]:
    """Every string of a dashboard with the key it is under."""
    if isinstance(doc, dict):
        return [s for k, v in doc.items() for s in _strings(v, k)]
    if isinstance(doc, list):
        return [s for v in doc for s in _strings(v, key)]
    return [(key, doc)] if isinstance(doc, str) else []


def test_dashboard_text_and_queries_hold_no_grafana_variable_of_a_name(tmp_path: Path) -> None:
    names = [*HOSTILE, *UNWRITABLE[2:]]
    spec = _spec(names, path="/specs/$__file{x}/stream.yaml", event="${__user.login} [[x]] {{y}}")
    doc, _ = build_dashboard(spec)
    back = json.loads(dumps(doc))  # writes (no lone surrogate reaches the encoder) and loads
    strings = _strings(back)
    assert set(_TOKEN.findall("\n".join(s for k, s in strings if k not in ("expr", "query")))) <= OURS
    # in a query Grafana expands $ and [[ (a legend's {{label}} is not a query's)
    assert set(_TOKEN.findall("\n".join(s.replace("{{", "") for k, s in strings if k in ("expr", "query")))) <= OURS
    titles = {p["title"] for p in back["panels"]}
    assert grafana_text("Stage: ${__user.login} (${__user.login})") in titles
    assert f"Stage: {names[0]}".replace("$", "$\u200b") == grafana_text(f"Stage: {names[0]}")
    # every query still parses as PromQL and matches the real label value (Prometheus reads \x24 as $)
    queries = [concrete(expr, spec) for _, expr in dashboard_queries(back)]
    assert not [q for q in queries if "$" in q]  # Grafana's own variables replaced, the names' are \x24
    rules = tmp_path / "q.rules.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": [
        {"record": f"q{i}", "expr": q} for i, q in enumerate(queries)]}]}, allow_unicode=True))
    promtool = require_binary("promtool")
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60,
                           check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    # an ordinary stream's dashboard is the golden file's (tests/dashboards); its names untouched here
    plain, _ = build_dashboard(_spec(ORDINARY))
    assert {"Stage: market-data (market-data)", "café process time"} <= {p["title"] for p in plain["panels"]}


# --------------------------------------------------------------------------- Prometheus rules


def test_rule_files_for_hostile_names_pass_promtool_and_their_alerts_carry_the_names(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    names = [*HOSTILE, "]]>", "<script>"]
    spec = _spec(names, path="stream.yaml\ngroups: [evil]")  # a path with a newline: comments stay comments
    layouts = {(n, "process"): Layout(MD.buckets) for n in names}
    targets, checks = alert_targets(spec, layouts)
    assert len(targets) == len(names)
    text = with_alert_group(render_rules(spec), alert_group(spec, targets), not_alertable(checks))
    assert [g["name"] for g in yaml.safe_load(text)["groups"]] == ["latmap-hostile", "latmap-hostile-alerts"]
    rules = tmp_path / "hostile.rules.yml"
    rules.write_text(text)
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60,
                           check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    # the generated tests fire each alert: the escaped selectors match the real label values, and the
    # labels and annotations expand back to the names as written
    tests = tmp_path / "hostile.rules.test.yml"
    tests.write_text(to_yaml(promtool_tests(spec, targets, rules.name)))
    run = subprocess.run([promtool, "test", "rules", tests.name], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert escape_value('q"uote\\back\nx') == 'q\\"uote\\\\back\\nx'
    assert go_template("b{{ x") == 'b{{ "{{" }} x' and go_template("end{") == 'end{{ "{" }}'


# --------------------------------------------------------------------------- YAML (discover --write)


def test_discover_draft_keeps_its_keys_whatever_the_metric_names_say() -> None:
    evil = "\nsources: evil"
    families = (
        Family(f"svc_wait{evil}_seconds", {"service": [f"api{evil}", "db # c: d"]}, 2, help=f"help{evil}"),
        Family("queue_seconds", {"job": ["x\u2028sources: evil", "y\x85stages: []"]}, 2, unit="seconds"),
        Family(f"odd_bytes{evil}", {}, 1, unit=f"bytes{evil}\r\nname: evil"),
        Family("fine_seconds", {}, 1, unit="seconds"),
    )
    text = starter_spec(Discovery(families), "http://prom:9090/$x")
    doc = yaml.safe_load(text)
    assert list(doc) == ["draft", "version", "name", "owner", "window", "percentiles", "sources", "stages"]
    assert doc["sources"] == {"prom": {"kind": "prometheus", "url": "http://prom:9090/$x"}}
    names = {m["histogram"] for s in doc["stages"] for part in ("wait", "process") if (m := s.get(part))}
    assert f"svc_wait{evil}_seconds" in names and "queue_seconds" in names
    selectors = [m["selector"] for s in doc["stages"] for part in ("wait", "process")
                 if (m := s.get(part)) and "selector" in m]
    assert {"service": f"api{evil}"} in selectors and {"service": "db # c: d"} in selectors
    skipped = [line for line in text.splitlines() if line.startswith("# left out")]
    assert len(skipped) == 1 and "odd_bytes" in skipped[0]
    # an ordinary draft is unchanged: quoted names, the same comment
    plain = starter_spec(Discovery((Family("api_latency_seconds", {"service": ["api"]}, 1),)), "http://p")
    assert '  - name: "api"\n    owner: TODO  # guess: who owns it?\n    process: {source: prom, histogram: ' \
           '"api_latency_seconds", unit: s}  # guess: process (no wait/queue/backlog/lag/delay in the name)\n' in plain


# --------------------------------------------------------------------------- XML / SVG / HTML

BOUNDS = [0.001, 0.005, 0.025, 0.1, math.inf]


def _map(names: list[str]) -> LatencyMap:
    spec = _spec(names)
    rng = np.random.default_rng(1)
    results = {}
    for n in names:
        x = rng.lognormal(math.log(0.004), 0.3, 2000)
        results[(n, "process")] = MeasurementResult(HistogramDistribution.from_cumulative(
            BOUNDS, [(x <= b).sum() for b in BOUNDS], sum=float(x.sum())), "test")
    return analyse(spec, Window(0, 86400), MapInput(results))


def test_svgs_and_report_html_are_well_formed_xml_with_any_name() -> None:
    # A lone surrogate never reaches a map through a spec (the spec refuses it with its line,
    # tests/hardening/test_spec_inputs.py); the renderers' own defence is tested below.
    names = [*(n for n in UNWRITABLE if is_unicode_text(n)), "${__user.login}", 'q"uote\\back']
    lm = _map(names)
    svg = to_svg(lm)
    root = ET.fromstring(svg.encode())
    assert "<script" not in svg
    shown = "".join(root.itertext())
    assert "x\ufffdy" in shown and "]]>" in shown and "<script>alert(1)</script>" in shown
    html = to_html(lm)
    html.encode()  # writable as UTF-8: no lone surrogate
    assert "<script" not in html
    inline = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
    assert len(inline) > 1  # the map and the charts
    for one in inline:
        ET.fromstring(one.encode())
    trend = trend_svg({"p50": [TrendPoint(0.1, 0.09, 0.11)] * 2}, ["a\ud800]]><script>", "\ufffe"])
    ET.fromstring(trend.encode())
    assert "<script" not in trend
    # ordinary text escapes as before (the SVG and HTML goldens of an ordinary map are unchanged)
    assert xml_text("a < b & c") == "a &lt; b &amp; c" and html_text("it's") == "it&#x27;s"


def test_example_timelines_parse_with_hostile_stages_and_trace_ids() -> None:
    e = Example(("t\ufffe1", "<script>"), 10.0, 0.5,
                (StageTime("a\ud800]]>", None, 0.2), StageTime("<script>", 0.1, 0.2)), lead=0.5)
    svg = timeline_svg(e)
    ET.fromstring(svg.encode())
    assert "<script" not in svg


# --------------------------------------------------------------------------- Markdown


def test_report_md_keeps_every_name_in_its_table_cell() -> None:
    names = ["a|b", "`code`", "<img src=x onerror=alert(1)>", "x\ufffey", "*em* [l](http://x)"]
    md = to_markdown(_map(names))
    table = [line for line in md.splitlines() if line.startswith("| ")]
    columns = {len(re.split(r"(?<!\\)\|", line)) for line in table}
    assert len(columns) == 1  # no name adds a column
    assert "<img" not in md.replace("\\<img", "")
    assert markdown_text("a|b`c`<img>") == "a\\|b\\`c\\`\\<img>"
    assert markdown_code("a`b\nc") == "a'b c"


@pytest.mark.parametrize("text", ["\nsources: evil", "a\r\nb", "x\x85y", "p\u2028q", "s\ud800t", "\ufffe"])
def test_yaml_comments_and_scalars_stay_on_their_line(text: str) -> None:
    doc = yaml.safe_load(f"a: {yaml_scalar(text)}  # {yaml_comment(text)}\nb: 1\n")
    assert list(doc) == ["a", "b"]
    assert doc["a"] == text
