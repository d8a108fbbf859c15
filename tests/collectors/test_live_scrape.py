"""Live data: a real prometheus-client exporter, read by the scrape source and by a real
Prometheus that scrapes it."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import numpy as np
import pytest
import requests
from prometheus_client import CollectorRegistry, Histogram, Summary, start_http_server

from collectors.prometheus import PrometheusCollector
from collectors.scrape import ScrapeCollector
from mapper.core.model import Window
from mapper.core.spec import Measurement, SourceSpec
from mapper.demo.localprom import free_port, running_prometheus
from tests.servers import require_binary

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Exporter:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.hist = Histogram("checkout_seconds", "Checkout latency.", ["region"], buckets=BUCKETS,
                              registry=self.registry)
        self.summary = Summary("legacy_seconds", "A summary.", registry=self.registry)
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.values = np.random.default_rng(2).lognormal(math.log(0.03), 0.8, 5000)

    def observe(self) -> None:
        for v in self.values:
            self.hist.labels(region="eu").observe(v)
        self.hist.labels(region="us").observe(0.001)
        self.summary.observe(0.2)

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    e = Exporter()
    yield e
    e.close()


def test_scrape_source_reads_a_live_exporter(exporter: Exporter) -> None:
    exporter.observe()
    c = ScrapeCollector(SourceSpec("live", "scrape", exporter.url, "test"))
    r = c.collect(Measurement("live", "histogram", "checkout_seconds", "t:1", {"region": "eu"}),
                  Window.ending(time.time(), 60))
    assert r.distribution is not None and r.distribution.count == 5000
    assert r.distribution.mean == pytest.approx(exporter.values.mean())
    for q in (0.5, 0.99):
        e = r.distribution.quantile(q)
        assert e.low <= np.quantile(exporter.values, q) <= e.high  # type: ignore[operator]
    assert "scrape-since-start" in {c.code for c in r.checks}
    s = c.collect(Measurement("live", "summary", "legacy_seconds", "t:2"), Window.ending(time.time(), 60))
    assert s.distribution is not None and s.distribution.count == 1


def test_scrape_source_errors_name_the_url() -> None:
    from mapper.core.errors import SourceError

    url = f"http://127.0.0.1:{free_port()}/metrics"
    c = ScrapeCollector(SourceSpec("live", "scrape", url, "test", retries=0))
    with pytest.raises(SourceError, match=f"{url}: cannot connect"):
        c.collect(Measurement("live", "histogram", "x", "t:1"), Window.ending(time.time(), 60))


def _wait_for(url: str, expr: str, predicate: object, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5).json()
        result = body["data"]["result"]
        if result and predicate(result):  # type: ignore[operator]
            return result[0]
        time.sleep(0.25)
    raise AssertionError(f"{expr}: condition not met within {timeout}s")


@pytest.mark.prometheus
def test_prometheus_scraping_a_live_exporter_gives_the_exact_counts(exporter: Exporter) -> None:
    require_binary("prometheus")
    config = (f"global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: app\n"
              f"    static_configs: [{{targets: ['127.0.0.1:{exporter.port}']}}]\n")
    with running_prometheus(config=config) as url:
        # Two scrapes with zero counts first, so increase() has a zero start to cap at.
        exporter.hist.labels(region="eu")
        _wait_for(url, 'count_over_time(checkout_seconds_count{region="eu"}[1m])',
                  lambda r: float(r[0]["value"][1]) >= 2)
        exporter.observe()
        last = _wait_for(url, 'checkout_seconds_count{region="eu"}', lambda r: float(r[0]["value"][1]) == 5000)
        ts = _wait_for(url, 'timestamp(checkout_seconds_count{region="eu"})', lambda r: True)
        end = float(ts["value"][1])
        assert float(last["value"][1]) == 5000
        c = PrometheusCollector(SourceSpec("prom", "prometheus", url, "test"))
        r = c.collect(Measurement("prom", "histogram", "checkout_seconds", "t:1", {"region": "eu"}),
                      Window.ending(end, 300))
    assert r.distribution is not None
    assert r.distribution.count == pytest.approx(5000)
    e = r.distribution.quantile(0.99)
    assert e.low <= np.quantile(exporter.values, 0.99) <= e.high  # type: ignore[operator]
