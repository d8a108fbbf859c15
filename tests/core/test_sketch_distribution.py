"""Datadog's served percentiles: a DDSketch's guarantee passed through, never made up.

:class:`SketchDistribution` holds what the back end answered (values within a relative
accuracy of the truth), :class:`HostAggregateDistribution` the per-host per-flush values of
a Datadog histogram (only bounds). The property everything downstream relies on: an
interval is a bound on the true value, also after convolution into an end-to-end sum.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mapper.core.convolve import convolve
from mapper.core.distribution import (
    Distribution,
    HistogramDistribution,
    HostAggregateDistribution,
    SampleDistribution,
    SketchDistribution,
    too_few_note,
)

SERVED = {0.5: 0.1, 0.75: 0.15, 0.9: 0.25, 0.99: 0.5}
QS = [0.5, 0.75, 0.9, 0.95, 0.99]


def _sketch(**kw: object) -> SketchDistribution:
    args: dict[str, object] = {"quantiles": SERVED, "count": 10_000.0, "sum": 1500.0}
    args.update(kw)
    return SketchDistribution(**args)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- served quantiles


def test_a_served_quantile_comes_with_the_sketch_accuracy_as_its_interval() -> None:
    """DDSketch answers within ``a`` of the true value x: x lies in value/(1+a) .. value/(1-a)."""
    for a in (0.01, 0.02, 0.05):
        e = _sketch(relative_accuracy=a).quantile(0.99)
        assert e.value == 0.5
        assert e.low == pytest.approx(0.5 / (1 + a))
        assert e.high == pytest.approx(0.5 / (1 - a))
        assert e.count == 10_000
        assert e.note == f"Datadog DDSketch: computed by the back end, relative accuracy {a:.2%}"
        assert e.label == "p99"


def test_the_exact_minimum_and_maximum_narrow_the_interval() -> None:
    e = _sketch(minimum=0.0995, maximum=0.1001).quantile(0.5)
    assert (e.value, e.low, e.high) == (0.1, 0.0995, 0.1001)
    wide = _sketch(minimum=0.001, maximum=10.0).quantile(0.5)
    assert (wide.low, wide.high) == (pytest.approx(0.1 / 1.01), pytest.approx(0.1 / 0.99))


def test_mean_is_the_sum_over_the_count_and_unknown_without_a_sum() -> None:
    assert _sketch().mean == pytest.approx(0.15)
    assert _sketch(sum=None).mean is None
    assert _sketch(count=0.0).mean is None
    assert isinstance(_sketch(), Distribution)


def test_a_quantile_not_served_is_not_interpolated() -> None:
    """p95 lies between the served p90 and p99, but latmap never makes a number up."""
    e = _sketch().quantile(0.95)
    assert (e.value, e.low, e.high, e.count) == (None, None, None, 10_000)
    assert e.note == "not available: Datadog DDSketch serves p50, p75, p90, p99"
    assert _sketch(quantiles={}).quantile(0.5).note == "not available: Datadog DDSketch serves none"


def test_the_reason_a_quantile_was_not_served_is_passed_through() -> None:
    e = _sketch(unavailable={0.999: "the query timed out"}).quantile(0.999)
    assert (e.value, e.low, e.high) == (None, None, None)
    assert e.note == "not available: the query timed out"


def test_a_quantile_known_only_from_chunks_is_a_range_without_a_value() -> None:
    e = _sketch(bounds={0.999: (0.6, 0.9)}, relative_accuracy=0.02).quantile(0.999)
    assert e.value is None
    assert e.low == pytest.approx(0.6 / 1.02)
    assert e.high == pytest.approx(0.9 / 0.98)
    assert e.note is not None and e.note.startswith("bounded only:")
    assert "percentiles of chunks cannot be combined" in e.note
    clipped = _sketch(bounds={0.999: (0.6, 0.9)}, maximum=0.8).quantile(0.999)
    assert clipped.high == 0.8


def test_too_few_observations_give_no_value_even_when_served() -> None:
    e = _sketch(quantiles={0.9999: 0.7}, count=50.0).quantile(0.9999)
    assert (e.value, e.low, e.high, e.count) == (None, None, None, 50)
    assert e.note == too_few_note(0.9999, 50) == "too few samples: 50 < 10,000 needed for p99.99"


def test_an_empty_window_has_no_observations() -> None:
    e = _sketch(count=0.0).quantile(0.5)
    assert (e.value, e.low, e.high, e.count) == (None, None, None, 0.0)
    assert e.note == "no observations in the window"


def test_a_quantile_outside_zero_one_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        _sketch().quantile(99)


# --------------------------------------------------------------------------- point masses


@pytest.mark.parametrize("extremes", [{}, {"minimum": 0.02, "maximum": 1.5}])
def test_point_masses_bracket_every_quantile(extremes: dict[str, float]) -> None:
    """"low" is below the truth and "high" above it at every probability; "mid" in between."""
    sketch = _sketch(**extremes)
    masses = {v: sketch.point_masses(v) for v in ("low", "mid", "high")}
    for m in masses.values():
        assert m.weights.sum() == pytest.approx(1.0)
        assert np.all(m.weights >= 0)
    # low and high share one probability grid: mass i spans the same probabilities in both.
    assert np.array_equal(masses["low"].weights, masses["high"].weights)
    assert np.all(masses["low"].values <= masses["high"].values)
    for q in (0.1, 0.3, 0.5, 0.6, 0.75, 0.8, 0.9, 0.95, 0.99, 0.995, 0.9999):
        low, mid, high = (masses[v].quantile(q) for v in ("low", "mid", "high"))
        assert low <= mid <= high, q
    for q, value in SERVED.items():
        assert masses["low"].quantile(q) <= value / 1.01
        assert masses["high"].quantile(q) >= value / 0.99


def test_without_a_maximum_the_top_of_high_is_unbounded() -> None:
    high = _sketch().point_masses("high")
    assert high.values.max() == math.inf
    assert high.weights[np.argmax(high.values)] == pytest.approx(1 - 0.99)
    assert _sketch().point_masses("low").values.min() == 0.0
    bounded = _sketch(minimum=0.02, maximum=1.5)
    assert bounded.point_masses("high").values.max() == 1.5
    assert bounded.point_masses("low").values.min() == 0.02


# --------------------------------------------------------------------------- convolution


def _served(x: np.ndarray, extremes: bool) -> SketchDistribution:
    """What Datadog would serve for the observations ``x`` (exact quantiles, a = 1%)."""
    values = np.quantile(x, QS)
    kw: dict[str, float] = {"minimum": float(x.min()), "maximum": float(x.max())} if extremes else {}
    return SketchDistribution(dict(zip(QS, values.tolist(), strict=True)), count=float(x.size),
                              sum=float(x.sum()), relative_accuracy=0.01, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def two_hops() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20240611)
    x = rng.lognormal(math.log(0.02), 0.6, 200_000)
    y = rng.lognormal(math.log(0.05), 0.9, 200_000)
    return x, y, x + rng.permutation(y)  # the sum of independent pairs


def test_bounds_stay_bounds_under_convolution(two_hops: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """The end-to-end interval from two served sketches holds the exact quantile of the sum."""
    x, y, total = two_hops
    summed = convolve([_served(x, True), _served(y, True)])
    assert summed is not None
    assert summed.count == 200_000
    assert summed.mean == pytest.approx(float(x.mean() + y.mean()))
    for q in (0.5, 0.99):
        e = summed.quantile(q)
        exact = float(np.quantile(total, q))
        assert e.value is not None and e.low is not None and e.high is not None, e.note
        assert e.low <= exact <= e.high, (q, e, exact)
        assert e.value == pytest.approx(exact, rel=0.15), (q, e.value, exact)


def test_without_a_maximum_the_sum_tail_is_unbounded_but_the_body_still_bounded(
        two_hops: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    x, y, total = two_hops
    summed = convolve([_served(x, False), _served(y, False)])
    assert summed is not None
    body = summed.quantile(0.5)
    assert body.low is not None and body.high is not None
    assert body.low <= float(np.quantile(total, 0.5)) <= body.high
    tail = summed.quantile(0.99)
    assert tail.value is None and tail.high is None
    assert tail.low is not None and tail.low <= float(np.quantile(total, 0.99))


def test_a_sketch_convolves_with_samples_and_histograms(
        two_hops: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    x, y, _ = two_hops
    bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, math.inf]
    hist = HistogramDistribution.from_cumulative(bounds, [float((y <= b).sum()) for b in bounds], sum=float(y.sum()))
    samples = SampleDistribution(x[:5_000])
    summed = convolve([_served(x, True), samples, hist])
    assert summed is not None
    assert summed.count == 5_000
    e = summed.quantile(0.5)
    assert e.low is not None and math.isfinite(e.low)
    assert e.value is not None and e.high is not None and e.low <= e.value <= e.high


# --------------------------------------------------------------------------- host aggregates


def _hosts(**kw: object) -> HostAggregateDistribution:
    args: dict[str, object] = {"bounds": {0.5: (0.01, 0.03), 0.95: (0.05, 0.2)}, "count": 1000.0,
                               "maximum": 0.5}
    args.update(kw)
    return HostAggregateDistribution(**args)  # type: ignore[arg-type]


def test_per_host_percentiles_give_bounds_never_a_value() -> None:
    e = _hosts().quantile(0.95)
    assert (e.value, e.low, e.high, e.count) == (None, 0.05, 0.2, 1000)
    assert e.note == ("not combinable: Datadog histogram (agent-side, per host and flush interval); the window's "
                      "p95 lies between the smallest and largest per-host value")


def test_a_host_aggregate_quantile_without_bounds_is_not_available() -> None:
    e = _hosts().quantile(0.99)
    assert (e.value, e.low, e.high) == (None, None, None)
    assert e.note == ("not available: Datadog histogram (agent-side, per host and flush interval) "
                      "exposes only p50, p95")
    assert _hosts(count=0.0).quantile(0.5).note == "no observations in the window"


def test_host_aggregates_have_no_mean_and_cannot_be_convolved() -> None:
    """Per-host per-flush percentiles are not a distribution one could add to another."""
    hosts = _hosts()
    assert hosts.mean is None
    assert isinstance(hosts, Distribution)
    assert not hasattr(hosts, "point_masses")
    assert convolve([hosts]) is None
    assert convolve([_sketch(), hosts]) is None
