"""The value-stream-map renderers (SVG, Mermaid, DOT) on maps whose content is known."""

from __future__ import annotations

import itertools
import json
import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from mapper.analysis.latency import LatencyMap, MapInput, analyse
from mapper.core.distribution import HistogramDistribution
from mapper.core.model import MeasurementResult, Window
from mapper.core.spec import loads_spec
from mapper.render.vsm_svg import FILLS, PER_ROW, relative_luminance, to_svg
from mapper.render.vsm_text import dot_escape, mermaid_escape, to_dot, to_mermaid

SVG = "{http://www.w3.org/2000/svg}"
N = 5_000
BOUNDS = [0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, math.inf]
EVIL = "<script>alert(\"x\")</script> & 'q'\\"
EVIL_OWNER = 'team "<b>" & co'
SOURCES = 'sources: {prom: {kind: prometheus, url: "http://127.0.0.1:9"}}\n'


def _hist(x: np.ndarray) -> HistogramDistribution:
    return HistogramDistribution.from_cumulative(BOUNDS, [(x <= b).sum() for b in BOUNDS], sum=float(x.sum()))


def _m(rng: np.random.Generator, median: float) -> MeasurementResult:
    return MeasurementResult(_hist(rng.lognormal(math.log(median), 0.1, N)), "test")


def _small_map() -> LatencyMap:
    """EVIL (2 ms) -> slow (wait 1 ms, process 40 ms: the bottleneck) -> empty (no data)."""
    spec = loads_spec(
        "name: chain\n" + SOURCES + "stages:\n"
        f"  - {{name: {json.dumps(EVIL)}, owner: {json.dumps(EVIL_OWNER)}, "
        "process: {source: prom, histogram: a_seconds}}\n"
        "  - {name: slow, owner: y, wait: {source: prom, histogram: w_seconds}, "
        "process: {source: prom, histogram: b_seconds}}\n"
        "  - {name: empty, owner: z, process: {source: prom, histogram: c_seconds}}\n")
    rng = np.random.default_rng(1)
    results = {(EVIL, "process"): _m(rng, 0.002), ("slow", "wait"): _m(rng, 0.001),
               ("slow", "process"): _m(rng, 0.04), ("empty", "process"): MeasurementResult(None, "test")}
    return analyse(spec, Window(0, 86400), MapInput(results))


def _long_map(n: int = 30) -> LatencyMap:
    stages = "".join(f"  - {{name: stage-{i:02d}, owner: team-{i % 4}, wait: {{source: prom, histogram: w{i}}}, "
                     f"process: {{source: prom, histogram: p{i}}}}}\n" for i in range(n))
    spec = loads_spec("name: long\n" + SOURCES + "stages:\n" + stages)
    rng = np.random.default_rng(2)
    results = {}
    for i in range(n):
        results[(f"stage-{i:02d}", "wait")] = _m(rng, 0.001)
        results[(f"stage-{i:02d}", "process")] = _m(rng, 0.004 if i != 17 else 0.03)
    return analyse(spec, Window(0, 86400), MapInput(results))


@pytest.fixture(scope="module")
def small() -> LatencyMap:
    return _small_map()


@pytest.fixture(scope="module")
def long() -> LatencyMap:
    return _long_map()


def _groups(root: ET.Element) -> dict[str, ET.Element]:
    return {g.get("data-stage", ""): g for g in root.iter(f"{SVG}g") if g.get("data-stage") is not None}


def _all_text(root: ET.Element) -> str:
    return "\n".join("".join(e.itertext()) for e in root.iter(f"{SVG}text"))


def test_svg_is_xml_and_escapes_every_name(small: LatencyMap) -> None:
    svg = to_svg(small)
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert "<script" not in svg and "<b>" not in svg
    assert "&lt;script&gt;" in svg
    groups = _groups(root)
    assert set(groups) == {EVIL, "slow", "empty"}  # attributes round-trip exactly
    assert "".join(groups[EVIL].find(f"{SVG}title").itertext()) == EVIL  # type: ignore[union-attr]
    assert f"owner: {EVIL_OWNER}" in _all_text(root)


def test_svg_stage_box_shows_owner_percentiles_and_count(small: LatencyMap) -> None:
    text = "\n".join("".join(t.itertext()) for t in _groups(ET.fromstring(to_svg(small)))["slow"].iter(f"{SVG}text"))
    assert "owner: y" in text and "process n=5,000" in text
    for label in ("p50 ", "p99 ", "p99.99 "):
        assert f"\n{label}" in text
    # 40 ms median, within its bucket (25ms..50ms), the lower end narrowed by the exact _sum
    assert re.search(r"\np50 \d\d\.\dms \[2\d(\.\d)?ms\.\.50ms\]\n", text)


def test_svg_marks_the_bottleneck_with_more_than_colour(small: LatencyMap) -> None:
    assert small.bottleneck is not None and small.bottleneck.stage == "slow"
    g = _groups(ET.fromstring(to_svg(small)))["slow"]
    assert "bottleneck" in (g.get("class") or "")
    rects = list(g.iter(f"{SVG}rect"))
    assert float(rects[0].get("stroke-width", "0")) >= 4
    assert rects[0].get("fill") == FILLS["bottleneck"]
    assert any(r.get("fill") == "url(#hatch)" for r in rects)
    assert "BOTTLENECK hop p99" in "".join(g.itertext())


def test_svg_draws_a_stage_without_data_as_such(small: LatencyMap) -> None:
    g = _groups(ET.fromstring(to_svg(small)))["empty"]
    assert "no-data" in (g.get("class") or "")
    box = next(g.iter(f"{SVG}rect"))
    assert box.get("stroke-dasharray") and box.get("fill") == FILLS["no_data"]
    assert "no data" in "".join(g.itertext())


def test_svg_wait_arrows_and_ladder(small: LatencyMap) -> None:
    root = ET.fromstring(to_svg(small))
    text = _all_text(root)
    arrows = [e for e in root.iter(f"{SVG}line") if e.get("marker-end") == "url(#arrow)"]
    assert len(arrows) == len(small.hops) == 2
    assert "wait\np50 1ms\np99 " in text  # the wait label of the arrow into "slow"
    # The ladder's p50 steps: wait on the upper, process on the lower.
    assert "wait 1ms" in text and re.search(r"process 1\.9\dms", text) and re.search(r"process 3\d\.\dms", text)
    assert "process no data" in text
    assert "lead time: no end-to-end data" in text  # the path has a stage without data


def test_svg_ladder_ends_with_lead_time_and_flow_efficiency(long: LatencyMap) -> None:
    assert long.end_to_end is not None and long.flow_efficiency is not None
    text = _all_text(ET.fromstring(to_svg(long)))
    assert re.search(r"lead time p50 \d", text) and re.search(r"lead time p99 \d", text)
    pct = f"{100 * long.flow_efficiency.value:.1f}%"
    assert f"flow efficiency {pct}" in text


def test_svg_wraps_thirty_stages_into_rows_within_a_readable_width(long: LatencyMap) -> None:
    root = ET.fromstring(to_svg(long))
    width, height = (float(v) for v in (root.get("viewBox") or "").split()[2:])
    assert width <= 2200
    groups = _groups(root)
    assert len(groups) == 30
    ys = sorted({float(next(g.iter(f"{SVG}rect")).get("y", "nan")) for g in groups.values()})
    assert len(ys) == math.ceil(30 / PER_ROW)
    boxes = [next(g.iter(f"{SVG}rect")) for g in groups.values()]
    assert all(float(b.get("x", "0")) + float(b.get("width", "0")) <= width for b in boxes)
    assert all(float(b.get("y", "0")) + float(b.get("height", "0")) <= height for b in boxes)
    text = _all_text(root)
    # Each row wrap is an off-page connector pair: "→(k)" at the source, "(k)" at the target.
    for k in range(1, math.ceil(30 / PER_ROW)):
        assert f"→({k})" in text and f"\n({k})\n" in text


def test_svg_two_stages_fit_one_row() -> None:
    root = ET.fromstring(to_svg(_long_map(2)))
    assert len(_groups(root)) == 2
    assert float((root.get("viewBox") or "").split()[2]) < 800


def test_fills_stay_distinct_in_greyscale() -> None:
    lum = {k: relative_luminance(v) for k, v in FILLS.items()}
    for (a, la), (b, lb) in itertools.combinations(lum.items(), 2):
        assert abs(la - lb) >= 0.1, (a, b, la, lb)
    assert relative_luminance("#000000") == 0 and relative_luminance("#ffffff") == pytest.approx(1)


def test_mermaid_has_a_node_per_stage_and_an_edge_per_hop(small: LatencyMap) -> None:
    text = to_mermaid(small)
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    nodes = [ln for ln in lines if re.fullmatch(r'    s\d+\[".*"\]', ln)]
    edges = [ln for ln in lines if "-->" in ln]
    assert len(nodes) == 3 and len(edges) == 2
    assert 's0 --> s1' not in text and re.search(r's0 -->\|"wait p99 \S+"\| s1', text)
    assert "class s1 bottleneck" in text and "class s2 nodata" in text
    assert "BOTTLENECK" in nodes[1] and "no data" in nodes[2]


def test_mermaid_labels_are_escaped(small: LatencyMap) -> None:
    node = to_mermaid(small).splitlines()[1]
    label = node[len('    s0["'):-2]
    assert '"' not in label and "<script" not in label and "<b>" not in label
    assert label.startswith("#lt;script#gt;alert(#quot;x#quot;)#lt;/script#gt; #amp; 'q'\\<br/>owner: ")
    assert mermaid_escape("a#b|c`") == "a#35;b#124;c#96;"


def test_dot_has_nodes_edges_and_escaping(small: LatencyMap) -> None:
    text = to_dot(small)
    lines = text.splitlines()
    assert lines[0] == 'digraph "chain" {' and lines[-1] == "}"
    assert len([ln for ln in lines if re.match(r"    s\d+ \[label=", ln)]) == 3
    assert len([ln for ln in lines if " -> " in ln]) == 2
    assert dot_escape(EVIL) == '<script>alert(\\"x\\")</script> & \'q\'\\\\'
    assert f'label="{dot_escape(EVIL)}\\nowner: {dot_escape(EVIL_OWNER)}\\n' in text
    assert "penwidth=4" in next(ln for ln in lines if ln.startswith("    s1 ["))
    assert 's2 [label="empty\\nowner: z\\nno data", style="dashed"];' in text
    # Every double quote inside a label is escaped: unescaped quotes come in pairs per line.
    for ln in lines:
        assert len(re.findall(r'(?<!\\)"', ln.replace("\\\\", ""))) % 2 == 0


def test_dot_and_mermaid_cover_thirty_stages(long: LatencyMap) -> None:
    assert to_mermaid(long).count("-->") == 29
    assert to_dot(long).count(" -> ") == 29


def test_a_branching_stream_is_drawn_as_branches_in_lanes() -> None:
    spec = loads_spec(
        "name: fork\n" + SOURCES + "stages:\n"
        "  - {name: a, process: {source: prom, histogram: a}}\n"
        "  - {name: b, upstream: a, process: {source: prom, histogram: b}}\n"
        "  - {name: c, upstream: a, wait: {source: prom, histogram: cw}, process: {source: prom, histogram: c}}\n")
    rng = np.random.default_rng(3)
    results = {("a", "process"): _m(rng, 0.002), ("b", "process"): _m(rng, 0.003),
               ("c", "wait"): _m(rng, 0.001), ("c", "process"): _m(rng, 0.004)}
    lm = analyse(spec, Window(0, 86400), MapInput(results))
    assert sorted(lm.spec.hops) == [("a", "b"), ("a", "c")]
    root = ET.fromstring(to_svg(lm))
    assert "→(1)" not in _all_text(root)  # no off-page connector: a's two hand-overs leave it side by side
    arrows = [e for e in root.iter() if e.get("marker-end") == "url(#arrow)"]
    assert sorted((e.get("data-from"), e.get("data-to")) for e in arrows) == [("a", "b"), ("a", "c")]
    assert all("vsm-branch" in (e.get("class") or "") for e in arrows)
    boxes = {k: g.find(f"{SVG}rect") for k, g in _groups(root).items()}
    ys = {k: float(r.get("y") or 0) for k, r in boxes.items() if r is not None}
    xs = {k: float(r.get("x") or 0) for k, r in boxes.items() if r is not None}
    assert xs["b"] == xs["c"] > xs["a"] and ys["c"] > ys["b"] == ys["a"]  # b and c one column on, in two lanes
    assert to_mermaid(lm).count("-->") == 2 and to_dot(lm).count(" -> ") == 2
