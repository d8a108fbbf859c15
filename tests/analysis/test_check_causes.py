"""Issue 26: checks name the right cause (bucket advice only where there are buckets)."""

from __future__ import annotations

import math

import numpy as np

from mapper.analysis.latency import MapInput, analyse
from mapper.core.distribution import HistogramDistribution, SampleDistribution
from mapper.core.model import MeasurementResult, Window
from mapper.core.spec import loads_spec

SPEC = """\
name: chain
sources: {prom: {kind: prometheus, url: "http://127.0.0.1:9"}}
stages:
  - {name: a, owner: x, process: {source: prom, histogram: a_seconds}}
"""

#: Half the items near 1 ms, half near 100 ms: the p50's interval spans both modes.
BIMODAL = np.sort(np.concatenate([np.full(300, 0.001), np.full(300, 0.1)]))


def _checks(dist: object) -> list:
    lm = analyse(loads_spec(SPEC), Window(0, 3600),
                 MapInput({("a", "process"): MeasurementResult(dist, "traces")}))  # type: ignore[arg-type]
    return [c for c in lm.checks if c.stage == "a" and c.part == "process"]


def test_trace_only_part_gets_no_bucket_advice() -> None:
    checks = _checks(SampleDistribution(BIMODAL))
    assert not [c for c in checks if c.code == "bucket-too-coarse"]
    wide = [c for c in checks if c.code == "interval-too-wide"]
    assert wide and "p50" in wide[0].message and "600 samples" in wide[0].message
    assert "bucket" not in wide[0].message.replace("no buckets", "")


def test_histogram_part_still_gets_bucket_advice() -> None:
    h = HistogramDistribution.from_cumulative([0.001, 0.1, math.inf], [300, 600, 600])
    checks = _checks(h)
    assert [c for c in checks if c.code == "bucket-too-coarse"]
    assert not [c for c in checks if c.code == "interval-too-wide"]
