"""Exemplars from a real Prometheus (``--enable-feature=exemplar-storage``) scraping a
prometheus-client exporter that emits them in OpenMetrics: they appear as examples of the
percentiles whose bucket they fall in or beyond; bad ones are counted, never a crash."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest
import requests
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST, generate_latest

from collectors.prometheus import PrometheusClient
from collectors.promexemplars import exemplar_query, parse_exemplars
from mapper.app.pipeline import build_map
from mapper.core.model import Window
from mapper.core.spec import Measurement, loads_spec
from mapper.demo.localprom import running_prometheus
from mapper.render.report import to_json
from tests.servers import loopback_server, reply, require_binary

pytestmark = pytest.mark.prometheus

BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)


class Exporter:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.hist = Histogram("rpc_duration_seconds", "rpc time", registry=self.registry, buckets=BUCKETS)

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        reply(req, 200, generate_latest(self.registry), CONTENT_TYPE_LATEST)


@pytest.fixture
def exporter() -> Iterator[tuple[Exporter, str]]:
    e = Exporter()
    with loopback_server(e.handle) as url:
        yield e, url


def _wait(predicate, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError("condition not met in time")


def _exemplars(url: str) -> list:
    r = requests.get(f"{url}/api/v1/query_exemplars", timeout=5,
                     params={"query": "rpc_duration_seconds_bucket", "start": time.time() - 600, "end": time.time()})
    return [e for s in r.json()["data"] for e in s["exemplars"]]


def test_real_exemplars_become_examples_of_the_right_bucket(exporter: tuple[Exporter, str]) -> None:
    require_binary("prometheus")
    exp, target = exporter
    config = (f"global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: app\n"
              f"    static_configs: [{{targets: ['{target.removeprefix('http://')}']}}]\n")
    rng = np.random.default_rng(7)
    slow_ids, fast_ids = [], []
    with running_prometheus(config=config, extra_args=["--enable-feature=exemplar-storage"]) as url:
        for v in rng.uniform(0.012, 0.045, 980):  # p50 in (0.01, 0.05]
            tid = f"{rng.integers(1, 2**63):016x}{rng.integers(1, 2**63):016x}"
            fast_ids.append(tid)
            exp.hist.observe(float(v), exemplar={"trace_id": tid})
        # the tail, each slow observation scraped before the next (a bucket keeps its last exemplar)
        for i, v in enumerate(rng.uniform(0.3, 0.45, 4)):
            tid = f"{0xABC0 + i:032x}"
            slow_ids.append(tid)
            exp.hist.observe(float(v), exemplar={"trace_id": tid})
            n = len(slow_ids)
            _wait(lambda n=n: sum(e["labels"].get("trace_id") in slow_ids for e in _exemplars(url)) >= n)
        exp.hist.observe(0.7, exemplar={"user": "no-trace-id"})  # bucket 1.0: no trace id label
        exp.hist.observe(0.07, exemplar={"trace_id": "not-a-trace"})  # bucket 0.1: malformed
        for v in rng.uniform(0.3, 0.45, 16):  # the rest of the tail: p99 in (0.25, 0.5]
            exp.hist.observe(float(v))
        _wait(lambda: any(e["labels"].get("trace_id") == "not-a-trace" for e in _exemplars(url))
              and any("user" in e["labels"] for e in _exemplars(url)))
        time.sleep(2.5)  # the last observations scraped
        spec = loads_spec(f"""\
name: api
percentiles: [50, 99]
sources: {{prom: {{kind: prometheus, url: "{url}"}}}}
stages:
  - {{name: api, owner: me, process: {{source: prom, histogram: rpc_duration_seconds}}}}
examples: {{count: 3}}
links: {{preset: jaeger, url: "http://jaeger.test"}}
""")
        end = time.time()
        window = Window.ending(end, 600)
        lm = build_map(spec, window)
        series = PrometheusClient(spec.sources["prom"]).query_exemplars(
            exemplar_query(spec.stages[0].process), window.start, window.end)  # type: ignore[union-attr]
    doc = to_json(lm)
    proc = doc["stages"][0]["process"]
    assert proc["p99"]["low"] == 0.25 and proc["p99"]["high"] == 0.5
    p99 = proc["p99"]["examples"]
    assert len(p99) == 3 and all(e["source"] == "exemplar" for e in p99)
    assert {e["trace_ids"][0] for e in p99} <= set(slow_ids)
    assert all(0.25 <= e["value"] <= 0.5 for e in p99)
    assert all(e["links"] == [f"http://jaeger.test/trace/{e['trace_ids'][0]}"] for e in p99)
    # the p50 (bucket (0.01, 0.05]) takes exemplars at or beyond 0.01: fast ones qualify too
    p50 = proc["p50"]["examples"]
    assert p50 and all(e["value"] >= 0.01 and e["trace_ids"][0] in set(fast_ids) | set(slow_ids) for e in p50)
    codes = {c["code"]: c["message"] for c in doc["checks"]}
    assert "exemplar-no-trace-id" in codes and "exemplar-malformed-trace-id" in codes
    assert "not-a-trace" not in str(doc["stages"]) and codes["exemplar-no-trace-id"].startswith("api process")
    # the same real answer, read for a window that ends before the tail: outside it, counted
    first_slow = min(e["timestamp"] for x in series for e in x["exemplars"] if e["labels"].get("trace_id") in slow_ids)
    cut = Window(window.start, first_slow - 0.001)
    kept, checks = parse_exemplars(series, spec.stages[0].process, cut, ("trace_id",), "api")  # type: ignore[arg-type]
    assert all(x.trace_id not in slow_ids for x in kept)
    assert any(c.code == "exemplar-outside-window" for c in checks)


def test_hand_made_bad_exemplars_are_counted_not_raised() -> None:
    m = Measurement("prom", "histogram", "x", "t:1", scale=0.001)
    series = [{"seriesLabels": {"le": "500"}, "exemplars": [
        {"labels": {"traceID": "00000000000000000000000000000abc"}, "value": "400", "timestamp": 100.5},
        {"labels": {"traceID": "0" * 32}, "value": "400", "timestamp": 100.5},
        {"labels": {"traceID": "abc"}, "value": "1", "timestamp": 100},
        {"labels": {}, "value": "1", "timestamp": 100},
        {"labels": {"traceID": "a" * 16}, "value": "nan?", "timestamp": 100},
        {"labels": {"traceID": "b" * 16}, "value": "2", "timestamp": 5000},
        "junk"]}, {"exemplars": None}]
    kept, checks = parse_exemplars(series, m, Window(0, 1000), ("trace_id", "traceID"), "x")
    assert [(k.trace_id, k.value, k.bucket) for k in kept] == [("00000000000000000000000000000abc", 0.4, 0.5)]
    assert {c.code: c.message.split(": ", 1)[1].split(" ")[0] for c in checks} == {
        "exemplar-malformed-trace-id": "2", "exemplar-no-trace-id": "1", "exemplar-malformed": "2",
        "exemplar-outside-window": "1"}
