"""Issue 14 against a real Prometheus holding backfilled data (tests/data.py: new_lines):
summaries kept apart, intervals narrowed by _sum, bottleneck on intervals, exact counts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from collectors.prometheus import PrometheusCollector
from mapper.cli import main
from mapper.core.distribution import HistogramDistribution
from mapper.core.model import Window
from mapper.core.spec import Measurement, SourceSpec
from tests import data

pytestmark = pytest.mark.prometheus


def _collect(url: str, name: str, window: Window, kind: str = "histogram", **sel: str):  # type: ignore[no-untyped-def]
    c = PrometheusCollector(SourceSpec("prom", "prometheus", url, "test"), backoff=0.01)
    return c.collect(Measurement("prom", kind, name, "test:1", sel), window)


def test_a_summary_family_with_a_slice_label_is_not_merged(prom_url: str) -> None:
    r = _collect(prom_url, "engine_query_seconds", Window.ending(data.END, data.QUIRK_WINDOW), kind="summary")
    assert r.distribution is None  # no "worst of 4 instances"
    differ = [c for c in r.checks if c.code == "summary-series-differ"]
    assert len(differ) == 1 and "labels slice differ" in differ[0].message
    assert "inner_eval, prepare_time, queue_time, result_sort" in differ[0].message
    assert len(r.per_instance) == 4
    inner = dict(r.per_instance)['{instance="p:9090",slice="inner_eval"}']
    e = inner.quantile(0.5)
    assert e.value == pytest.approx(1.6e-5) and e.low is None and e.high is None
    assert "sliding window" in (e.note or "") and "not verifiable" in (e.note or "")
    assert inner.count == 3 * (len(data.quirk_times()) - 1)  # exact, an integer
    assert inner.mean == pytest.approx(1.6e-5)
    one = _collect(prom_url, "engine_query_seconds", Window.ending(data.END, data.QUIRK_WINDOW), kind="summary",
                   slice="inner_eval")
    assert one.distribution is not None and one.distribution.quantile(0.99).value == pytest.approx(3e-5)


def test_a_coarse_bucket_is_narrowed_by_the_sum_and_still_holds_the_exact_value(prom_url: str) -> None:
    r = _collect(prom_url, "coarse_seconds", Window.ending(data.END, data.QUIRK_WINDOW))
    d = r.distribution
    assert isinstance(d, HistogramDistribution) and d.count == 2000
    values = data.coarse_values()
    e = d.quantile(0.5)
    assert e.low is not None and e.high is not None
    assert e.high - e.low < 0.1 / 4  # the bucket is 0..100ms; the mean is a few ms
    for method in ("linear", "inverted_cdf", "lower", "higher"):
        assert e.low <= np.quantile(values, 0.5, method=method) <= e.high  # type: ignore[call-overload]
    e99 = d.quantile(0.99)
    assert e99.low <= np.quantile(values, 0.99) <= e99.high  # type: ignore[operator]


def test_a_coarse_stage_is_not_named_the_bottleneck_over_a_fine_one(prom_url: str, tmp_path: Path) -> None:
    spec = tmp_path / "stream.yaml"
    spec.write_text(f"""\
name: coarse-vs-fine
owner: sre
window: 2h
percentiles: [50, 99]
sources:
  prom: {{kind: prometheus, url: "{prom_url}"}}
stages:
  - name: http
    owner: a
    process: {{source: prom, histogram: coarse_seconds}}
  - name: alerting
    owner: b
    process: {{source: prom, histogram: fine_seconds}}
""", encoding="utf-8")
    out = tmp_path / "out"
    code = main(["map", "-c", str(spec), "--until", str(data.END), "--format", "json", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    b = report["bottleneck"]
    fine_p99 = np.quantile(data.fine_values(), 0.99)
    coarse_p99 = np.quantile(data.coarse_values(), 0.99)
    assert fine_p99 > 2 * coarse_p99  # the fine stage is clearly slower in truth
    assert b["decided"] is False or b["stage"] == "alerting"
    if not b["decided"]:
        assert set(b["candidates"]) == {"http", "alerting"}
    assert not (b["decided"] and b["stage"] == "http")
    text = (out / "report.md").read_text()
    assert "intervals overlap" in text or "bottleneck: alerting" in text


def test_a_series_born_mid_window_is_counted_exactly(prom_url: str) -> None:
    t = data.quirk_times()
    n = len(t)
    values = data.born_values()
    # 1805s: the window (start, end] begins 5s before the new series' first scrape
    assert data.born_start() == data.END - 1800
    for seconds in (data.QUIRK_WINDOW, 1805.0):
        window = Window.ending(data.END, seconds)
        before = [i for i, ts in enumerate(t) if ts <= window.start]
        old_start = round(data.BORN_OLD_TOTAL * before[-1] / (n - 1)) if before else 0
        expected = data.BORN_OLD_TOTAL - old_start + data.BORN_TOTAL
        r = _collect(prom_url, "born_seconds", window)
        d = r.distribution
        assert d is not None and d.count == expected  # exact, the 121 at the first scrape included
        assert float(d.count).is_integer()
        assert "series-born" in {c.code for c in r.checks}
    d2h = _collect(prom_url, "born_seconds", Window.ending(data.END, data.QUIRK_WINDOW)).distribution
    assert d2h is not None and d2h.mean == pytest.approx(values.mean(), rel=1e-9)
    # the same data, different window ends past the last sample: the same n
    later = _collect(prom_url, "born_seconds", Window.ending(data.END + 60, data.QUIRK_WINDOW + 60)).distribution
    assert later is not None and later.count == d2h.count


def test_bad_input_is_a_check_never_a_number(prom_url: str) -> None:
    window = Window.ending(data.END, data.QUIRK_WINDOW)
    idle = _collect(prom_url, "idle_seconds", window, kind="summary")
    assert "summary-nan" in {c.code for c in idle.checks}
    assert idle.distribution is not None and idle.distribution.quantile(0.5).value is None
    neg = _collect(prom_url, "negsum_seconds", window)
    assert "negative-sum" in {c.code for c in neg.checks}
    assert neg.distribution is not None and neg.distribution.mean is None and neg.distribution.count == 40
    churn = _collect(prom_url, "churn_seconds", window)
    codes = {c.code for c in churn.checks}
    assert "series-churn" in codes
    n = len(data.quirk_times())
    assert churn.distribution is not None and churn.distribution.count == round(20 * (n - 1) / n)
    mism = _collect(prom_url, "mismatch_seconds", window)
    assert "count-mismatch" in {c.code for c in mism.checks}
