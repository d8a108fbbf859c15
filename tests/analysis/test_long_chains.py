"""A stream of a thousand stages is analysed and rendered without recursion (the path walk
is iterative); the convolution of a thousand measured hops takes seconds, not minutes (it goes
on a value grid by FFT past a few parts), and its interval still holds the sum of the means."""

from __future__ import annotations

import numpy as np

from mapper.analysis.latency import MapInput, analyse
from mapper.core.distribution import HistogramDistribution
from mapper.core.model import MeasurementResult, Window
from mapper.core.spec import loads_spec
from mapper.render.report import to_json, to_markdown, to_table


def test_a_chain_of_1000_stages_is_walked_and_rendered() -> None:
    text = ("version: 1\nname: chain\nsources: {p: {kind: prometheus, url: 'http://127.0.0.1:9'}}\nstages:\n"
            + "".join(f"  - {{name: s{i}, owner: o, process: {{source: p, histogram: h{i}}}}}\n" for i in range(1000)))
    spec = loads_spec(text)
    results = {(f"s{i}", "process"): MeasurementResult(None, f"p: h{i}") for i in range(1000)}
    lm = analyse(spec, Window.ending(1_767_436_620.0, 3600.0), MapInput(results))
    doc = to_json(lm)
    assert len(doc["stages"]) == 1000 and doc["path"][0] == "s0" and doc["path"][-1] == "s999"
    assert "s999" in to_markdown(lm) and "s999" in to_table(lm)


def test_a_chain_of_1000_measured_stages_is_convolved() -> None:
    text = ("version: 1\nname: chain\nsources: {p: {kind: prometheus, url: 'http://127.0.0.1:9'}}\nstages:\n"
            + "".join(f"  - {{name: s{i}, owner: o, process: {{source: p, histogram: h{i}}}}}\n" for i in range(1000)))
    spec = loads_spec(text)
    upper = np.array([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, np.inf])
    lower = np.r_[0.0, upper[:-1]]
    rng = np.random.default_rng(3)
    results = {}
    for i in range(1000):
        counts = rng.integers(1, 100, len(upper)).astype(float)
        counts[-1] = 0
        results[(f"s{i}", "process")] = MeasurementResult(HistogramDistribution(lower, upper, counts), f"p: h{i}")
    lm = analyse(spec, Window.ending(1_767_436_620.0, 3600.0), MapInput(results))
    p50 = to_json(lm)["end_to_end"]["p50"]
    assert p50["low"] < p50["value"] < p50["high"]
