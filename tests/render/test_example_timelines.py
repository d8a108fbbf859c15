"""The examples in the rendered reports: per-item timelines in report.html (looked at in a
real headless Chromium), the map's bottleneck box linked to its slowest examples, escaped
names and URLs; and the spec errors of a bad ``links:``."""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mapper.analysis.examples import Example, StageTime
from mapper.cli import main
from mapper.core.errors import SpecError
from mapper.core.spec import loads_spec
from mapper.core.spec.links import Links
from mapper.core.tracelinks import trace_url, viewer_destination
from mapper.render.examples import timeline_svg
from tests.analysis.test_examples import runs  # noqa: F401 - the module fixture
from tests.analysis.test_linked_items import SPEC
from tests.render.test_html_report import _CHROMIUM_FLAGS
from tests.servers import require_binary

BASE = """\
name: x
sources: {p: {kind: prometheus, url: "http://127.0.0.1:9"}}
stages: [{name: a, process: {source: p, histogram: h}}]
"""


@pytest.mark.parametrize(("links", "says"), [
    ('links: {template: "https://viewer.example/trace/"}', "s.yaml:4: links.template: must contain {trace_id}"),
    ("links: {preset: zipkin, url: http://z}", "s.yaml:4: links.preset: unknown preset 'zipkin'"),
    ('links: {template: "https://v.example/{trace}"}', "s.yaml:4: links.template: unknown placeholder(s) {trace}"),
    ("links: {preset: grafana-tempo, url: http://g}", "links.datasource: preset grafana-tempo needs the uid"),
    ("links: {preset: jaeger, url: ftp://j}", "s.yaml:4: links.url: not an http(s) URL"),
    ("examples: {count: many}", "s.yaml:4: examples.count: must be a whole number"),
])
def test_a_bad_links_or_examples_key_is_a_one_line_spec_error(links: str, says: str) -> None:
    with pytest.raises(SpecError) as err:
        loads_spec(BASE + links + "\n", "s.yaml")
    assert says in str(err.value) and "\n" not in str(err.value)


def test_every_link_is_url_escaped() -> None:
    hostile = 'ab"><script>&x=1/ ?#'
    for links in (Links(preset="jaeger", url="http://j"), Links(preset="datadog", url="https://app.datadoghq.com"),
                  Links(preset="grafana-tempo", url="http://g", datasource="tempo"),
                  Links(template="https://v.example/t/{trace_id}?from={start}&to={end}")):
        url = trace_url(links, hostile, 1e9, 1e9 + 1)
        assert not re.search(r'[\s"<>#]', url.split("://", 1)[1]), url
        assert "%3Cscript%3E" in url or "%253Cscript%253E" in url
    assert viewer_destination(Links(preset="grafana-tempo", url="http://g", datasource="tempo")) == (
        "datasourceUid", "tempo")
    assert viewer_destination(Links(preset="jaeger", url="http://j")) == ("url", "http://j/trace/${__value.raw}")


def test_a_timeline_escapes_names_and_is_xml() -> None:
    e = Example(("0" * 32,), 1e9, 0.3, (StageTime("<b>a</b>", None, 0.1), StageTime("b&c", 0.15, 0.05)), 0.3, 0.0)
    svg = timeline_svg(e)
    ET.fromstring(svg)
    assert "<b>" not in svg and "&lt;b&gt;" in svg and svg.count('class="wait"') == 1
    assert svg.count('class="process"') == 2


def test_chromium_shows_the_timelines_and_their_links(runs: dict, tmp_path: Path) -> None:  # noqa: F811
    chromium = require_binary("chromium")
    report = runs["linked"]["out"] / "report.html"
    shot = tmp_path / "report.png"
    shown = subprocess.run([chromium, *_CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'p1'}",
                            "--enable-logging=stderr", "--v=0", "--window-size=1200,6000",
                            f"--screenshot={shot}", report.as_uri()],
                           check=True, capture_output=True, text=True, timeout=90)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [x for x in shown.stderr.splitlines() if "CONSOLE" in x or "Uncaught" in x] == []
    dom = subprocess.run([chromium, *_CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'p2'}", "--dump-dom",
                          report.as_uri()], check=True, capture_output=True, text=True, timeout=90).stdout
    section = dom[dom.index("Examples behind the tails"):]
    section = section[: section.index("</section>")]
    stage = runs["linked"]["report"]["bottleneck"]["stage"]
    assert "lead time p99" in section and f"bottleneck hop into {stage} p99" in section
    timelines = re.findall(r'<a class="timeline-link" href="([^"]+)"><svg[^>]*class="timeline"(.*?)</svg></a>',
                           section, re.S)
    assert len(timelines) >= 6  # three for the lead time p99, three for the bottleneck hop p99
    for href, body in timelines:
        assert href.startswith("http://jaeger.test:16686/trace/")
        assert body.count('class="process"') == 3 and body.count('class="wait"') == 2
    # linked consumers: every trace of the item is a link
    first = section[section.index('<div class="example">'):]
    first = first[: first.index("</div>")]
    assert first.count('<a class="trace" href="http://jaeger.test:16686/trace/') == 3
    # the map's bottleneck box links to its slowest examples
    svg = (runs["linked"]["out"] / "map.svg").read_text()
    ET.fromstring(svg)
    assert svg.count('class="bottleneck-example" href="http://jaeger.test:16686/trace/') == 4
    assert 'class="bottleneck-example"' in dom


def test_without_links_the_examples_show_their_trace_ids_as_text(runs: dict, tmp_path: Path) -> None:  # noqa: F811
    spec = tmp_path / "stream.yaml"
    spec.write_text(SPEC.format(path=runs["linked"]["spool"]))
    main(["map", "-c", str(spec), "--until", "2026-09-22T00:00:00Z", "--window", "2d", "--out", str(tmp_path / "o")])
    doc = (tmp_path / "o" / "report.html").read_text()
    section = doc[doc.index("Examples behind the tails"):]
    assert 'class="timeline"' in section and "<code>" in section
    assert "timeline-link" not in section and 'class="trace"' not in section
    assert "bottleneck-example" not in (tmp_path / "o" / "map.svg").read_text()
    md = (tmp_path / "o" / "report.md").read_text()
    assert "## Examples" in md and "](http" not in md
