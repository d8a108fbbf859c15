"""Examples and their links with hostile names and templates: report.html, map.svg and report.md
keep every name text and every link one URL. Spans by the real SDK (tests/messaging.py), in a
spool; latmap map end to end."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from collectors.spool.store import Spool
from mapper.cli import main
from mapper.core.spec.links import Links as Links_
from mapper.core.tracelinks import trace_url, viewer_destination
from tests.messaging import batch_consumer, child_consumers

HOSTILE = "<img src=x onerror=alert(1)> *[x](javascript:y)* | `z` \\\" '"
TEMPLATE = "https://viewer.test/t/{trace_id}?q=\\\"><script>alert(1)</script>&from={start}&to={end}&x=')(]"


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.hrefs += [v or "" for k, v in attrs if k == "href"]


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("hostile")
    with Spool(str(tmp / "spool")) as spool:
        spool.append(child_consumers(60)[0])
        spool.append(batch_consumer(40)[0])
    name = HOSTILE.replace("'", "''")
    spec = tmp / "stream.yaml"
    spec.write_text(
        "name: orders\n"
        f"sources: {{spans: {{kind: traces, path: \"{tmp / 'spool'}\"}}}}\n"
        "stages:\n"
        f"  - {{name: 'orders {name}', owner: '{name}', traces: {{source: spans, service: orders}}}}\n"
        f"  - {{name: 'billing {name}', traces: {{source: spans, service: billing}}}}\n"
        f"  - {{name: 'mailer {name}', traces: {{source: spans, service: mailer}}}}\n"
        f"links: {{template: \"{TEMPLATE}\"}}\n")
    code = main(["map", "-c", str(spec), "--until", "2026-09-22T00:00:00Z", "--window", "2d",
                 "--out", str(tmp / "out"), "--no-progress"])
    assert code in (0, 1)
    return tmp / "out"


def _trace_links_ok(hrefs: list[str]) -> None:
    trace = [h for h in hrefs if h.startswith("https://viewer.test/t/")]
    assert trace
    for h in trace:
        tid = h.removeprefix("https://viewer.test/t/").split("?")[0]
        assert re.fullmatch(r"[0-9a-f]{32}", tid), h


def test_report_html_keeps_names_as_text_and_links_as_urls(out: Path) -> None:
    html = (out / "report.html").read_text()
    p = Links()
    p.feed(html)
    assert "script" not in p.tags and "img" not in p.tags
    assert "<img src=x" not in html and "<script>alert" not in html
    assert not any(h.lower().startswith("javascript") for h in p.hrefs)
    _trace_links_ok(p.hrefs)


def test_map_svg_is_well_formed_and_its_links_are_urls(out: Path) -> None:
    svg = (out / "map.svg").read_text()
    root = ET.fromstring(svg)
    hrefs = [v for el in root.iter() for k, v in el.attrib.items() if k.endswith("href")]
    tags = {el.tag.split("}")[-1] for el in root.iter()}
    assert "script" not in tags and "img" not in tags and "foreignObject" not in tags
    assert not any(h.lower().startswith("javascript") for h in hrefs)
    if hrefs:
        _trace_links_ok(hrefs)


def test_report_md_links_stay_one_url_each(out: Path) -> None:
    md = (out / "report.md").read_text()
    prose = "".join(md.split("```")[::2])
    assert not re.search(r"(?<!\\)<img", prose) and not re.search(r"(?<!\\)<script", prose)
    links = re.findall(r"\[`([0-9a-f]{32})`\]\(([^)\s]*)\)", md)
    assert links
    for tid, url in links:
        assert url.startswith(f"https://viewer.test/t/{tid}?"), url
        assert "<" not in url and ">" not in url and '"' not in url, url  # no markup inside a destination


def test_report_json_links_are_the_escaped_urls(out: Path) -> None:
    r = json.loads((out / "report.json").read_text())
    e2e = r["end_to_end"]
    exs = [e for q in ("p50", "p99") for e in (e2e.get(q) or {}).get("examples", [])]
    assert exs
    for e in exs:
        assert len(e["links"]) == len(e["trace_ids"])
        for u in e["links"]:
            assert "<" not in u and '"' not in u and " " not in u


def test_a_template_with_characters_no_uri_holds_gives_one_valid_url() -> None:
    t = Links_(template="https://v.test/t/{trace_id}?q=\"><s>`{start}`&x=')(é%20")
    assert trace_url(t, "ab", 1.0, 2.0) == "https://v.test/t/ab?q=%22%3E%3Cs%3E%60-59000%60&x=')(%C3%A9%20"
    assert viewer_destination(t) == ("url", "https://v.test/t/${__value.raw}?q=%22%3E%3Cs%3E%60%60&x=')(%C3%A9%20")
