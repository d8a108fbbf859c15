"""report.html: one self-contained, script-free document whose text is escaped."""

from __future__ import annotations

import math
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from mapper.analysis.attribution import attribute
from mapper.analysis.findings import Findings
from mapper.analysis.latency import LatencyMap, MapInput, analyse
from mapper.analysis.profiles import profile_from_samples
from mapper.core.distribution import HistogramDistribution, SampleDistribution
from mapper.core.model import MeasurementResult, Window
from mapper.core.spec import loads_spec
from mapper.render import plots
from mapper.render.cells import cell
from mapper.render.html import to_html
from tests.servers import require_binary

N = 5_000
EVIL = "<script>alert(1)</script>"
SPEC = f"""\
name: chain
sources: {{prom: {{kind: prometheus, url: "http://127.0.0.1:9"}}}}
stages:
  - {{name: a, owner: x, process: {{source: prom, histogram: a_seconds}}}}
  - {{name: "{EVIL}", owner: "<b>y</b>", wait: {{source: prom, histogram: bw_seconds}},
     process: {{source: prom, histogram: b_seconds}}}}
"""
BOUNDS = [0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, math.inf]


def _hist(x: np.ndarray) -> HistogramDistribution:
    return HistogramDistribution.from_cumulative(BOUNDS, [(x <= b).sum() for b in BOUNDS], sum=float(x.sum()))


def _map() -> LatencyMap:
    rng = np.random.default_rng(1)
    parts = {
        ("a", "process"): rng.lognormal(math.log(0.002), 0.2, N),
        (EVIL, "wait"): rng.lognormal(math.log(0.001), 0.2, N) + (rng.random(N) < 0.02) * 0.2,
        (EVIL, "process"): rng.lognormal(math.log(0.003), 0.2, N),
    }
    return analyse(loads_spec(SPEC), Window(0, 86400),
                   MapInput({k: MeasurementResult(_hist(v), "test") for k, v in parts.items()}))


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(doc: str) -> _Collect:
    p = _Collect()
    p.feed(doc)
    p.close()
    return p


@pytest.fixture(scope="module")
def lm() -> LatencyMap:
    return _map()


@pytest.fixture(scope="module")
def doc(lm: LatencyMap) -> str:
    return to_html(lm, Findings(attribution=attribute(lm)))


def test_document_is_self_contained_and_script_free(doc: str) -> None:
    p = _parse(doc)
    assert doc.startswith("<!DOCTYPE html>") and "html" in p.tags and "style" in p.tags
    assert "script" not in p.tags and "<script" not in doc.lower()
    for name, value in p.attrs:
        if name in ("src", "href"):
            assert not (value or "").startswith(("http:", "https:", "//")), (name, value)
    assert "<link" not in doc and "@import" not in doc


def test_a_malicious_stage_name_is_escaped_not_injected(doc: str) -> None:
    assert EVIL not in doc and "<b>y</b>" not in doc
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in doc
    assert any(EVIL in t for t in _parse(doc).text)  # shown to people as text


def test_per_hop_and_per_stage_numbers_are_in_the_document(lm: LatencyMap, doc: str) -> None:
    text = "".join(_parse(doc).text)
    for h in lm.hops:
        assert h.latency is not None
        assert cell(h.latency.quantile(0.5)) in text
    for s in lm.stages:
        assert s.process is not None and s.process.distribution is not None
        assert cell(s.process.distribution.quantile(0.99)) in text


def test_one_svg_per_plot_and_every_svg_is_xml(lm: LatencyMap, doc: str) -> None:
    svgs = [doc[i:doc.index("</svg>", i) + 6] for i in range(len(doc)) if doc.startswith("<svg", i)]
    parts = sum(1 for s in lm.stages for p in ("wait", "process") if s.part(p) is not None)
    # map + one distribution per measured part + end to end + attribution
    assert len(svgs) == 1 + parts + 1 + 1
    for s in svgs:
        ET.fromstring(s)


def test_distribution_chart_marks_the_percentiles_on_a_log_axis() -> None:
    d = SampleDistribution(np.random.default_rng(3).lognormal(-5, 1, 2000))
    svg = plots.distribution_svg(d, (0.5, 0.99), "p$99 <b>")
    root = ET.fromstring(svg)
    text = "".join(root.itertext())
    assert "p50" in text and "p99" in text and "p$99 <b>" in text  # literal, no mathtext, escaped
    assert svg == plots.distribution_svg(d, (0.5, 0.99), "p$99 <b>")  # reproducible bytes
    assert "Date" not in svg


def test_hourly_and_events_and_empty_charts_are_svg() -> None:
    rng = np.random.default_rng(4)
    t = rng.uniform(0, 86400 * 2, 20_000)
    v = rng.lognormal(-6, 0.3, t.size) * (1 + 4 * ((t // 3600) % 24 == 9))
    text = "".join(ET.fromstring(plots.hourly_svg(profile_from_samples(t, v), (0.5, 0.99), "a wait")).itertext())
    assert "hour of day (UTC)" in text and "p99" in text
    for svg in (plots.events_svg(()), plots.attribution_svg(()), plots.distribution_svg(None, (0.5,), "x")):
        ET.fromstring(svg)


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's report.html, as `latmap demo` writes it."""
    from mapper.demo.run import run_demo

    out = tmp_path_factory.mktemp("demo")
    run_demo(out, mode="scrape")
    return out / "report.html"


def test_demo_report_renders_with_segments_and_findings(demo_report: Path) -> None:
    doc = demo_report.read_text(encoding="utf-8")
    _parse(doc)
    assert "<script" not in doc.lower()
    for section in ("The value stream", "Latency distributions", "Percentiles over the window, hour by hour",
                    "Hour of day", "Event windows", "Where the tail comes from", "What if"):
        assert section in doc


_CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--hide-scrollbars"]


def test_chromium_renders_the_demo_report(tmp_path: Path, demo_report: Path) -> None:
    """Looked at in a real browser: a screenshot, no console error, the map and every chart
    present and drawn in the rendered DOM."""
    chromium = require_binary("chromium")
    shot = tmp_path / "report.png"
    shown = subprocess.run([chromium, *_CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                            "--enable-logging=stderr", "--v=0", "--window-size=1200,2400",
                            f"--screenshot={shot}", demo_report.as_uri()],
                           check=True, capture_output=True, text=True, timeout=90)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    console = [line for line in shown.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    dom = subprocess.run([chromium, *_CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom",
                          demo_report.as_uri()], check=True, capture_output=True, text=True, timeout=90).stdout
    charts = dom.count('<div class="chart">')
    assert '<div class="map"><svg' in dom and charts >= 10
    # every chart holds a drawn figure: an <svg> with paths in it
    for chunk in dom.split('<div class="chart">')[1:]:
        figure = chunk[: chunk.index("</svg>")]
        assert figure.lstrip().startswith("<svg") and "<path" in figure
