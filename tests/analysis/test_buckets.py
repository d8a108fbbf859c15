"""Bucket advice: applying the advised bounds to the same observations gives every percentile
with enough data an interval narrower than the asked width, with a bound on every threshold."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from mapper.analysis.buckets import advise, native_schema
from mapper.core.distribution import HistogramDistribution, SampleDistribution
from mapper.core.model import MeasurementResult
from mapper.core.quantiles import min_count
from mapper.core.spec import Objective
from mapper.render.buckets import buckets_json, buckets_table, snippets
from tests.analysis.test_whatif import _histogram, _metrics_map, _traced_map


def _apply(bounds: tuple[float, ...], values: np.ndarray) -> HistogramDistribution:
    v = np.sort(values)
    return HistogramDistribution.from_cumulative([*bounds, math.inf],
                                                 np.searchsorted(v, [*bounds, math.inf], side="right").tolist(),
                                                 sum=float(v.sum()))


@pytest.mark.parametrize("width", [0.05, 0.01, 0.2])
def test_advised_buckets_give_intervals_narrower_than_the_width(width: float) -> None:
    lm, _ = _traced_map()
    lm = replace(lm, spec=replace(lm.spec, objectives=(Objective("b", 0.99, 0.0077, "s:1"),)))
    advice = advise(lm, width)
    assert {(a.stage, a.part) for a in advice} == {("a", "process"), ("b", "wait"), ("b", "process"),
                                                   ("c", "wait"), ("c", "process")}
    for a in advice:
        assert a.verified and a.method == "observations"
        r = lm.stage_result(a.stage).part(a.part)
        assert r is not None and isinstance(r.distribution, SampleDistribution)
        values = r.distribution.values
        h = _apply(a.bounds, values)  # independently of the advice's own check
        for q in lm.spec.percentiles:
            if values.size < min_count(q):
                continue
            e = h.quantile(q)
            assert e.value is not None and e.low is not None and e.high is not None
            assert (e.high - e.low) / e.value < width, (a.stage, a.part, q, e)
            # The interval still holds the exact sample quantile.
            assert e.low <= float(np.quantile(values, q, method="inverted_cdf")) <= e.high
        # Few bounds: two per supported percentile at most (the hop has no threshold: two parts).
        assert len(a.bounds) <= 2 * sum(values.size >= min_count(q) for q in lm.spec.percentiles)
        assert a.thresholds == ()


def test_a_threshold_of_a_single_part_hop_gets_its_bound() -> None:
    lm, _ = _traced_map()
    lm = replace(lm, spec=replace(lm.spec, objectives=(Objective("a", 0.99, 0.0031, "s:1"),)))
    (a,) = [x for x in advise(lm, 0.05, [("a", 0.0042)]) if x.stage == "a"]
    assert 0.0031 in a.bounds and 0.0042 in a.bounds
    assert a.thresholds == (0.0031, 0.0042)


def test_from_a_histogram_the_grid_covers_the_current_bucket() -> None:
    rng = np.random.default_rng(2)
    dists = {s: _histogram(rng.lognormal(np.log(0.005), 0.5, 100_000)) for s in "abc"}
    lm = _metrics_map(dists)
    for a in advise(lm, 0.05):
        assert a.method == "histogram" and not a.verified
        e = dists[a.stage].quantile(0.99)
        inside = [b for b in a.bounds if e.low <= b <= e.high]  # type: ignore[operator]
        ratios = np.diff(np.log(sorted({e.low, *inside, e.high})))
        assert np.all(np.exp(ratios) - 1 < 0.05 + 1e-9)


def test_native_schema_achieves_the_width() -> None:
    for w, s in ((0.05, 4), (0.1, 3), (0.01, 7), (0.5, 1)):
        assert native_schema(w) == s
        assert 2 ** (2.0**-s) - 1 < w


def test_snippets_and_json() -> None:
    lm, _ = _traced_map()
    advice = advise(lm, 0.05)
    doc = buckets_json(advice)
    assert doc[0]["snippets"]["prometheus_client"].startswith('Histogram("a_process_seconds"')
    assert "ExplicitBucketHistogramAggregation(boundaries=[" in snippets(advice[0])["opentelemetry"]
    assert "schema 4" in snippets(advice[0])["native"]
    assert "bounds:" in buckets_table(advice, 0.05)


def test_too_few_observations_are_said_not_advised() -> None:
    lm = _metrics_map({s: SampleDistribution(np.linspace(0.001, 0.01, 500)) for s in "abc"})
    lm = replace(lm, stages=tuple(replace(s, process=MeasurementResult(SampleDistribution(
        np.linspace(0.001, 0.01, 500)), "t")) for s in lm.stages))
    a = advise(lm, 0.05)[0]
    p9999 = next(f for f in a.fits if f.q == 0.9999)
    assert not p9999.ok and p9999.note is not None and "too few" in p9999.note
