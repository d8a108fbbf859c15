"""One gather per map: every request a map makes of a real Prometheus, recorded by a loopback
proxy in front of it, is made once (the issue's "no identical request twice")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from mapper.app.pipeline import build_map
from mapper.core.model import Window
from mapper.core.spec import loads_spec
from mapper.demo.run import demo_spec
from tests import data
from tests.servers import loopback_server, reply

pytestmark = pytest.mark.prometheus

Request = tuple[str, str, tuple[tuple[str, str], ...]]


@pytest.fixture
def recorded(prom_url: str) -> Iterator[tuple[str, list[Request]]]:
    """A proxy to ``prom_url`` that records each request's (method, path, sorted params)."""
    seen: list[Request] = []

    def forward(req: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(req.path)
        body = getattr(req, "body", b"")
        params = parse_qsl(parts.query) + parse_qsl(body.decode())
        seen.append((req.command, parts.path, tuple(sorted(params))))
        answer = requests.request(req.command, prom_url + req.path, data=body or None, timeout=60,
                                  headers={"Content-Type": req.headers.get("Content-Type", "")})
        reply(req, answer.status_code, answer.content, answer.headers.get("Content-Type", "application/json"))

    with loopback_server(forward) as url:
        yield url, seen


def test_a_map_over_prometheus_sends_no_identical_request_twice(recorded: tuple[str, list[Request]]) -> None:
    url, seen = recorded
    # the measured lead time reads a histogram a stage reads too; the segments slice by a label
    text = demo_spec("prometheus", url, None).replace(
        "segments: {hours: true, weekdays: true}", "segments: {hours: true, weekdays: true, labels: [provider]}\n"
        "end_to_end: {source: prom, histogram: notify_send_seconds, selector: {provider: twilio}}")
    spec = loads_spec(text, "stream.yaml")
    lm = build_map(spec, Window.ending(data.END, data.DAY))
    assert lm.stages and seen
    paths = {p for _, p, _ in seen}
    assert {"/api/v1/query", "/api/v1/query_range", "/api/v1/query_exemplars"} <= paths
    twice = {r: n for r, n in Counter(seen).items() if n > 1}
    assert not twice, twice
