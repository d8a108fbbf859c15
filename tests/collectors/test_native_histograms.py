"""Native histograms from a real Prometheus (``--enable-feature=native-histograms``) that
scrapes a protobuf exporter: the collector reads the bucket list from the query result."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest
import requests

from collectors.prometheus import PrometheusCollector
from mapper.core.model import Window
from mapper.core.spec import Measurement, SourceSpec
from mapper.demo.localprom import running_prometheus
from tests.native_exposition import PROTOBUF_TYPE, bucket_index, histogram_family
from tests.servers import loopback_server, reply, require_binary

pytestmark = pytest.mark.prometheus


class NativeExporter:
    def __init__(self) -> None:
        self.values = np.array([])

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        body = histogram_family("rpc_duration_seconds", self.values, schema=3, labels=[("service", "api")])
        reply(req, 200, body, PROTOBUF_TYPE)


@pytest.fixture
def exporter() -> Iterator[tuple[NativeExporter, str]]:
    e = NativeExporter()
    with loopback_server(e.handle) as url:
        yield e, url


def _query(url: str, expr: str, at: float | None = None) -> list:
    params = {"query": expr} | ({"time": str(at)} if at else {})
    return requests.get(f"{url}/api/v1/query", params=params, timeout=5).json()["data"]["result"]


def _wait(predicate, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError("condition not met in time")


def test_native_histogram_window_distribution(exporter: tuple[NativeExporter, str]) -> None:
    require_binary("prometheus")
    exp, target = exporter
    config = (f"global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: app\n"
              f"    static_configs: [{{targets: ['{target.removeprefix('http://')}']}}]\n")
    values = np.random.default_rng(4).lognormal(math.log(0.05), 0.7, 20_000)
    with running_prometheus(config=config, extra_args=["--enable-feature=native-histograms"]) as url:
        _wait(lambda: bool(_query(url, "count_over_time(rpc_duration_seconds[1m]) >= 2")))
        exp.values = values
        _wait(lambda: bool(_query(url, "histogram_count(rpc_duration_seconds) == 20000")))
        end = float(_query(url, "timestamp(histogram_count(rpc_duration_seconds))")[0]["value"][1])
        c = PrometheusCollector(SourceSpec("prom", "prometheus", url, "test"))
        r = c.collect(Measurement("prom", "histogram", "rpc_duration_seconds", "t:1", {"service": "api"}),
                      Window.ending(end, 300))
        prom_p99 = float(_query(url, "histogram_quantile(0.99, sum(increase(rpc_duration_seconds[5m])))",
                                end)[0]["value"][1])
    assert r.distribution is not None
    assert "sum(increase(rpc_duration_seconds" in r.provenance
    # Prometheus 2.42 extrapolates increase() of a native histogram to the window start
    # without the zero-point cap it applies to float counters, so a series born inside the
    # window is scaled up as a whole; the shape (every bucket's share) is exact.
    d = r.distribution
    assert d.count >= 20_000
    idx = bucket_index(values, 3)
    expected = np.bincount(idx - idx.min()) / values.size
    np.testing.assert_allclose(d.counts / d.count, expected[expected > 0], rtol=1e-9)
    assert d.mean == pytest.approx(values.mean(), rel=1e-9)
    for q in (0.5, 0.99, 0.9999):
        e = r.distribution.quantile(q)
        exact = float(np.quantile(values, q))
        assert e.low <= exact <= e.high, q
        assert e.high / e.low == pytest.approx(2 ** (1 / 8)) or q == 0.9999  # one schema-3 bucket
    e99 = r.distribution.quantile(0.99)
    assert e99.low <= prom_p99 <= e99.high
