"""Percentiles with honest uncertainty: the properties the rest of latmap relies on."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mapper.core.convolve import convolve
from mapper.core.distribution import (
    HistogramDistribution,
    SampleDistribution,
    SummaryDistribution,
    min_count,
    percentile_label,
)

BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, math.inf]


def _hist(x: np.ndarray, bounds: list[float] = BOUNDS, **kw: str) -> HistogramDistribution:
    cum = [(x <= b).sum() for b in bounds]
    return HistogramDistribution.from_cumulative(bounds, cum, sum=float(x.sum()), **kw)


def test_labels_and_minimum_counts() -> None:
    assert [percentile_label(q) for q in (0.5, 0.99, 0.9999, 0.999)] == ["p50", "p99", "p99.99", "p99.9"]
    assert [min_count(q) for q in (0.5, 0.9, 0.99, 0.9999)] == [2, 10, 100, 10000]


@pytest.mark.parametrize("seed", range(20))
def test_histogram_interval_always_contains_the_exact_sample_quantile(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(100, 50_000))
    x = rng.lognormal(math.log(0.02), rng.uniform(0.3, 1.5), n)
    h = _hist(x)
    for q in (0.5, 0.9, 0.99, 0.999, 0.9999):
        e = h.quantile(q)
        exact = float(np.quantile(x, q))
        assert e.low is not None and e.low <= exact
        if e.high is not None:
            assert exact <= e.high
        if e.value is not None:
            assert e.low <= e.value <= e.high  # type: ignore[operator]


def test_linear_interpolation_is_prometheus() -> None:
    # Prometheus docs: q(0.5) of 2 buckets (0,2]:1, (2,4]:1 ... see histograms.test "testhistogram2".
    h = HistogramDistribution.from_cumulative([0, 2, 4, 6, math.inf], [0, 1, 2, 3, 3], interpolation="linear")
    assert h.quantile_values(np.array([1 / 6, 0.5, 5 / 6])).tolist() == pytest.approx([1, 3, 5])


def test_power_law_is_closer_than_linear_in_a_falling_tail() -> None:
    x = np.random.default_rng(1).lognormal(math.log(0.02), 0.8, 200_000)
    exact = np.quantile(x, 0.99)
    lin = _hist(x, interpolation="linear").quantile(0.99).value
    smooth = _hist(x).quantile(0.99).value
    assert abs(smooth - exact) < abs(lin - exact) / 3  # type: ignore[operator]


def test_inf_bucket_and_too_few_are_said_plainly() -> None:
    h = HistogramDistribution.from_cumulative([0.1, math.inf], [10, 1000])
    e = h.quantile(0.5)
    assert (e.value, e.low, e.high) == (None, 0.1, None)
    assert e.note == "in the +Inf bucket: above 0.1s; add a larger bucket bound"
    small = HistogramDistribution.from_cumulative([0.1, 0.2, math.inf], [50, 99, 99])
    assert small.quantile(0.99).note == "too few samples: 99 < 100 needed for p99"
    assert small.quantile(0.5).value is not None


def test_quantiles_outside_0_1_are_refused_and_p100_is_too_few() -> None:
    h = HistogramDistribution.from_cumulative([0.1, math.inf], [10, 10])
    for q in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="outside"):
            h.quantile(q)
    e = h.quantile(1.0)
    assert e.value is None and e.note == "too few samples: 10 < more than any count needed for p100"


def test_empty_and_invalid_histograms() -> None:
    e = HistogramDistribution.from_cumulative([0.1, math.inf], [0, 0]).quantile(0.5)
    assert e.value is None and e.note == "no observations in the window"
    with pytest.raises(ValueError, match=r"\+Inf"):
        HistogramDistribution.from_cumulative([0.1, 0.2], [1, 2])


def test_non_monotonic_cumulative_counts_are_made_monotone() -> None:
    h = HistogramDistribution.from_cumulative([0.1, 0.2, math.inf], [8, 6, 10])
    assert h.counts.tolist() == [8, 0, 2]


def test_sample_interval_covers_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(3)
    true_p99 = math.exp(2.3263478740408408)  # lognormal(0, 1) p99
    hits = 0
    trials = 400
    for _ in range(trials):
        e = SampleDistribution(rng.lognormal(0, 1, 2000)).quantile(0.99)
        hits += e.low <= true_p99 <= e.high  # type: ignore[operator]
    assert 0.93 <= hits / trials <= 0.995


def test_sample_too_few_and_unbounded_above() -> None:
    s = SampleDistribution(np.arange(1.0, 151.0))
    assert s.quantile(0.9999).value is None
    e = s.quantile(0.99)
    assert e.value == pytest.approx(np.quantile(np.arange(1.0, 151.0), 0.99))
    assert e.high is None  # the 97.5% rank is beyond the largest of 150 samples


def test_summary_passes_through_and_refuses_what_it_lacks() -> None:
    s = SummaryDistribution({0.5: 0.01, 0.99: 0.2}, count=1000)
    assert s.quantile(0.99).value == 0.2
    e = s.quantile(0.9999)
    assert e.value is None and e.note == "not available: the summary exposes only p50, p99"


def test_convolution_bounds_contain_the_exact_sum_quantile() -> None:
    rng = np.random.default_rng(5)
    a = rng.lognormal(math.log(0.005), 0.7, 300_000)
    b = rng.lognormal(math.log(0.02), 0.5, 300_000)
    c = rng.lognormal(math.log(0.1), 0.4, 300_000)
    total = a + b + c
    conv = convolve([_hist(a), _hist(b), _hist(c)])
    assert conv is not None
    for q in (0.5, 0.99, 0.9999):
        e = conv.quantile(q)
        exact = float(np.quantile(total, q))
        assert e.low <= exact <= e.high  # type: ignore[operator]
        if q < 0.999:  # deeper tails sit in the last non-empty bucket: only the bounds are known
            assert e.value == pytest.approx(exact, rel=0.1)
    samples = convolve([SampleDistribution(a), SampleDistribution(b), SampleDistribution(c)])
    assert samples is not None
    assert samples.quantile(0.9999).value == pytest.approx(np.quantile(total, 0.9999), rel=0.02)
    assert conv.mean == pytest.approx(total.mean(), rel=1e-9)


def test_convolution_refuses_summaries() -> None:
    assert convolve([SummaryDistribution({0.5: 0.1}, 10)]) is None
