"""Issue 26: "too few" is said before "+Inf bucket" for every kind, since more bucket bounds
cannot make a percentile of too few items mean anything."""

from __future__ import annotations

import numpy as np

from mapper.core.convolve import convolve
from mapper.core.distribution import HistogramDistribution, SampleDistribution
from mapper.render.cells import cell, estimate_json, short_cell

BOUNDS = [0.1, 1.0, 3.78, float("inf")]


def _hist(n: int) -> HistogramDistribution:
    # 0.2% of the items above the largest bound: p99.99 lands in +Inf.
    tail = max(1, n // 500)
    return HistogramDistribution.from_cumulative(BOUNDS, [n * 0.5, n * 0.9, n - tail, n])


def test_histogram_of_4470_items_says_too_few_at_p9999() -> None:
    e = _hist(4470).quantile(0.9999)
    assert e.value is None
    assert e.note is not None and e.note.startswith("too few samples: 4,470 < 10,000")
    assert cell(e) == "n/a (n=4,470 too few)"
    assert short_cell(e) == "n/a"
    assert estimate_json(e)["note"].startswith("too few")


def test_convolution_of_4470_items_says_too_few_not_inf_bucket() -> None:
    d = convolve([_hist(4470), _hist(4470)])
    assert d is not None
    e = d.quantile(0.9999)
    assert e.note is not None and e.note.startswith("too few samples: 4,470")
    assert cell(e) == "n/a (n=4,470 too few)"
    assert short_cell(e) == "n/a"
    assert estimate_json(e)["note"].startswith("too few")


def test_inf_bucket_still_said_when_there_are_enough_items() -> None:
    e = _hist(20000).quantile(0.9999)
    assert e.note is not None and "+Inf" in e.note
    assert cell(e).endswith("(+Inf bucket)")
    d = convolve([_hist(20000), _hist(20000)])
    assert d is not None
    ce = d.quantile(0.9999)
    assert ce.note is not None and "+Inf" in ce.note
    assert short_cell(ce).startswith(">")


def test_samples_of_4470_items_say_too_few() -> None:
    e = SampleDistribution(np.linspace(0.001, 5.0, 4470)).quantile(0.9999)
    assert e.note is not None and e.note.startswith("too few")
    assert cell(e) == "n/a (n=4,470 too few)"
