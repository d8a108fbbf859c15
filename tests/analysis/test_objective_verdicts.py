"""An objective's verdict follows the estimate; a check says when the interval crosses the
threshold, so a "met" the data cannot confirm is never printed alone."""

from __future__ import annotations

import pytest

from mapper.analysis.latency import _straddles
from mapper.core.distribution import Estimate


@pytest.mark.parametrize(("value", "low", "high", "crosses"), [
    (0.088, 0.052, 0.105, True),    # met by the estimate, the interval reaches past 100ms
    (0.088, 0.052, 0.099, False),   # met, the whole interval below
    (0.120, 0.095, 0.130, True),    # broken by the estimate, the interval reaches below
    (0.120, 0.105, 0.130, False),   # broken, the whole interval above
    (0.088, 0.052, None, True),     # met, no upper bound
    (None, 0.052, 0.105, False),    # no estimate: objective-unknown says so instead
])
def test_an_interval_across_the_threshold_is_flagged(value: float | None, low: float | None,
                                                      high: float | None, crosses: bool) -> None:
    assert _straddles(Estimate(0.99, value, low, high, 1000), 0.1) is crosses
