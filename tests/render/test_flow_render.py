"""The flow rendered (issue 27) from a hand-made StreamFlow on a branching stream: report.json's
``stages[].flow`` and ``flow`` (the contract's keys, schema-valid, null without flow), the
flow table in report.md / report.html / ``latmap map --flow``, and the VSM icons of the map
(inventory triangles, data boxes, branches) as a real browser renders them."""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from mapper.analysis.latency import LatencyMap
from mapper.cli import cli
from mapper.render.html import to_html
from mapper.render.report import to_json, to_markdown, to_table
from mapper.render.vsm_svg import to_svg
from tests.render.flowmaps import EVIL, branching_map
from tests.servers import require_binary

SVG = "{http://www.w3.org/2000/svg}"
FLOW_KEYS = {"source", "items_in", "items_out", "yield", "stopped", "next", "throughput_in_per_s",
             "throughput_out_per_s", "first_pass_yield", "failed", "retried", "rework_seconds", "rework_share",
             "inventory", "workers", "workers_source", "utilisation", "utilisation_peak_hour", "capacity_per_s",
             "headroom", "busy_seconds"}
VALIDATOR = Draft202012Validator(json.loads(files("mapper.render").joinpath("report.schema.json").read_text()))


@pytest.fixture(scope="module")
def lm() -> LatencyMap:
    return branching_map()


def _json(lm: LatencyMap) -> dict[str, Any]:
    doc = json.loads(json.dumps(to_json(lm)))
    assert [f"{e.json_path}: {e.message}" for e in VALIDATOR.iter_errors(doc)] == []
    return doc


def test_report_json_carries_each_stages_flow_under_the_contracts_names(lm: LatencyMap) -> None:
    doc = _json(lm)
    assert doc["flow"] == {"items_completed": 4470}
    flows = {s["name"]: s["flow"] for s in doc["stages"]}
    assert all(set(f) == FLOW_KEYS for f in flows.values())
    a = flows["alerting"]
    assert (a["items_in"], a["items_out"], a["stopped"], a["failed"], a["retried"]) == (14639, 4470, 10169, 439, 439)
    assert a["yield"] == pytest.approx(4470 / 14639) and a["first_pass_yield"] == 0.97
    assert a["next"] == [{"stage": "notification", "items": 4000, "share": pytest.approx(4000 / 14639)},
                         {"stage": EVIL, "items": 470, "share": pytest.approx(470 / 14639)}]
    assert a["inventory"]["mean"] == 3.2 and a["inventory"]["peak"] == 17 and a["inventory"]["little"] == 3.1
    assert len(a["inventory"]["hourly"]) == 24 and a["inventory"]["hourly"][1] is None
    assert (a["workers"], a["workers_source"], a["utilisation"], a["utilisation_peak_hour"]) == \
        (4, "instances", 0.62, 0.81)
    assert (a["capacity_per_s"], a["headroom"], a["rework_seconds"], a["rework_share"]) == (12.5, 1.3, 52.3, 0.004)
    n = flows["notification"]  # workers unknown, a last stage: nulls, never a guess
    assert n["yield"] is None and n["workers"] is None and n["utilisation"] is None and n["next"] == []
    assert flows["market-data"]["inventory"] is None


def test_without_flow_every_flow_is_null(lm: LatencyMap) -> None:
    doc = _json(branching_map(flow=None))
    assert doc["flow"] is None and all(s["flow"] is None for s in doc["stages"])


def test_markdown_table_and_terminal_show_the_flow_table_and_the_rework_line(lm: LatencyMap) -> None:
    md = to_markdown(lm)
    assert ("| stage | in | out | yield | %C\\&A | inventory mean/peak | utilisation | workers | capacity | "
            "headroom |") in md
    assert "| alerting | 14,639 | 4,470 | 30.5% | 97.0% | 3.2 / 17 | 62.0% (peak hour 81.0%) | 4 (instances) | " \
           "12.5/s | 1.30x |" in md
    assert "- rework: alerting %C\\&A 97.0% (failed 439, retried 439): 52.3s, 0.4% of lead time" in md
    assert "| notification | 4,000 | — | — | 99.5% | 12.5 / 140 | — | — | — | — |" in md
    assert "\\<b>arch\\&ive\\</b>" in md and EVIL not in md
    plain = to_table(lm)
    assert "flow:" not in plain
    table = to_table(lm, flow=True)
    block = table[table.index("\nflow:\n"):]
    assert re.search(r"alerting\s+14,639\s+4,470\s+30\.5%\s+97\.0%\s+3\.2 / 17", block)
    assert "split: alerting -> notification 4,000 (27.3%), <b>arch&ive</b> 470 (3.2%), stopped 10,169" in block
    assert "notification: no service.instance.id" in block  # the reason behind the dashes
    assert "flow: not computed" in to_table(branching_map(flow=None), flow=True)


def test_map_help_offers_flow() -> None:
    out = CliRunner().invoke(cli, ["map", "--help"]).output
    assert "--flow" in out and "%C&A" in out


def test_svg_draws_a_triangle_before_each_handed_over_stage_and_a_data_box_under_each(lm: LatencyMap) -> None:
    root = ET.fromstring(to_svg(lm))
    groups = [g for g in root.iter(f"{SVG}g") if g.get("class") in ("vsm-inventory", "vsm-databox")]
    fields = {(g.get("class"), g.get("data-stage"), t.get("data-field")): "".join(t.itertext())
              for g in groups for t in g.iter(f"{SVG}text") if t.get("data-field")}
    inventories = {s for c, s, _ in fields if c == "vsm-inventory"}
    assert inventories == {"alerting", "notification", EVIL}  # market-data: nothing before it is known
    assert {s for c, s, _ in fields if c == "vsm-databox"} == {"market-data", "alerting", "notification", EVIL}
    assert fields["vsm-databox", "notification", "workers"] == "workers —"
    title = next(g for g in groups if g.get("data-stage") == "notification" and g.get("class") == "vsm-databox")
    assert "no service.instance.id" in "".join(title.find(f"{SVG}title").itertext())  # type: ignore[union-attr]


class _Dom(HTMLParser):
    """The rendered DOM's VSM icons: each group's texts by field, and the arrows."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[tuple[str, str, str], str] = {}
        self.arrows: list[dict[str, str | None]] = []
        self.rows: dict[str, list[str]] = {}
        self._group: tuple[str, str] | None = None
        self._field: str | None = None
        self._row: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        cls = a.get("class") or ""
        if tag == "g" and cls in ("vsm-inventory", "vsm-databox"):
            self._group = (cls, a.get("data-stage") or "")
        elif tag == "text" and self._group and a.get("data-field"):
            self._field = a["data-field"]
        elif "vsm-arrow" in cls:
            self.arrows.append(a)
        elif tag == "tr" and a.get("data-stage") is not None:
            self._row = a["data-stage"]
            self.rows[self._row or ""] = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "g":
            self._group = None
        elif tag == "text":
            self._field = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._group and self._field:
            self.fields[(*self._group, self._field)] = data
        elif self._row is not None and data.strip():
            self.rows[self._row].append(data)


def test_chromium_renders_the_inventory_triangles_data_boxes_and_branches(lm: LatencyMap, tmp_path: Path) -> None:
    chromium = require_binary("chromium")
    page = tmp_path / "report.html"
    page.write_text(to_html(lm), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    dom = subprocess.run([chromium, *flags, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                         check=True, capture_output=True, text=True, timeout=90).stdout
    seen = _Dom()
    seen.feed(dom)
    f = seen.fields
    assert (f["vsm-inventory", "alerting", "inventory-mean"], f["vsm-inventory", "alerting", "inventory-peak"]) == \
        ("mean 3.2", "peak 17")
    assert f["vsm-inventory", "notification", "inventory-peak"] == "peak 140"
    assert f["vsm-inventory", "alerting", "wait-p50"].startswith("wait p50 1.0")
    assert f["vsm-inventory", EVIL, "wait-p50"] == "wait not measured"
    assert f["vsm-databox", "alerting", "ca"] == "%C&A 97.0%"
    assert f["vsm-databox", "alerting", "yield"] == "yield 30.5%"
    assert f["vsm-databox", "alerting", "utilisation"] == "utilisation 62.0% · peak hour 81.0%"
    assert f["vsm-databox", "alerting", "workers"] == "workers 4 (instances)"
    assert f["vsm-databox", "alerting", "ct"].startswith("C/T p50 3.")
    assert f["vsm-databox", "notification", "yield"] == "yield — (end of stream)"
    assert ("vsm-inventory", "market-data", "inventory-mean") not in f
    branches = sorted((a["data-from"], a["data-to"], a.get("d") is not None)
                      for a in seen.arrows if "vsm-branch" in (a.get("class") or ""))
    # alerting branches: straight on to notification, an elbow down to the other lane
    assert branches == [("alerting", EVIL, True), ("alerting", "notification", False)]
    assert [a["data-to"] for a in seen.arrows if "vsm-branch" not in (a.get("class") or "")] == ["alerting"]
    assert seen.rows["alerting"][:5] == ["alerting", "14,639", "4,470", "30.5%", "97.0%"]
    assert "<script" not in dom.split("<body")[1].lower()
