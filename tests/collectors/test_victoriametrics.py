"""The same collector against VictoriaMetrics loaded with the same data: PromQL-compatible
back ends are served by one client."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from collectors.prometheus import PrometheusCollector
from mapper.app.pipeline import build_map
from mapper.core.model import Window
from mapper.core.spec import Measurement, SourceSpec, loads_spec
from mapper.demo.data import DemoData
from mapper.demo.run import demo_spec
from tests import data
from tests.servers import running_victoriametrics, vm_import

pytestmark = pytest.mark.victoriametrics


@pytest.fixture(scope="module")
def vm_url(demo_data: DemoData) -> Iterator[str]:
    with running_victoriametrics() as url:
        vm_import(url, data.prometheus_text_ms(demo_data))
        yield url


def test_victoriametrics_gives_the_same_bucket_counts(vm_url: str, demo_data: DemoData) -> None:
    c = PrometheusCollector(SourceSpec("vm", "prometheus", vm_url, "test"))
    window = Window.ending(data.END, data.DAY)
    for s in demo_data.series:
        r = c.collect(Measurement("vm", "histogram", s.metric.name, "t:1", dict(s.labels)), window)
        assert r.distribution is not None, s.metric.name
        np.testing.assert_allclose(np.cumsum(r.distribution.counts), s.cumulative[-1], rtol=1e-9)


def test_map_on_victoriametrics_contains_the_raw_percentiles(vm_url: str, demo_data: DemoData) -> None:
    lm = build_map(loads_spec(demo_spec("prometheus", vm_url, None)), Window.ending(data.END, data.DAY))
    r = lm.stage_result("alerting").wait
    assert r is not None and r.distribution is not None
    raw = demo_data.raw("alert_queue_wait_seconds", None, data.END - data.DAY, data.END)
    for q in (0.5, 0.99, 0.9999):
        e = r.distribution.quantile(q)
        assert e.low <= np.quantile(raw, q) <= e.high  # type: ignore[operator]
    assert lm.end_to_end is not None and lm.bottleneck is not None
