"""Label slices on bucket counts whose answer is known: adding slices of different layouts, the
labels chosen, and nothing named from too few observations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mapper.analysis.slices import MAX_VALUES, add_histograms, choose_labels, explain_slices, split_label
from mapper.core.distribution import HistogramDistribution

H = HistogramDistribution.from_cumulative
def schema_problems(value: object, name: str) -> list[str]:
    """What makes ``value`` break report.schema.json's ``$defs/<name>``."""
    import json as _json
    from importlib.resources import files

    from jsonschema import Draft202012Validator

    defs = _json.loads(files("mapper.render").joinpath("report.schema.json").read_text())["$defs"]
    v = Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": defs})
    return [e.message for e in v.iter_errors(value)]


BOUNDS = [0.05, 0.1, 0.25, 0.5, 1.0, math.inf]


def _hist(values: np.ndarray, bounds: list[float] = BOUNDS) -> HistogramDistribution:
    return H(bounds, [float(np.sum(values <= b)) for b in bounds], sum=float(values.sum()))


def test_slices_of_different_layouts_add_on_the_bounds_both_know() -> None:
    a = H([0.1, 0.5, 1, math.inf], [10, 20, 30, 30], sum=5.0)
    b = H([0.1, 0.25, 0.5, math.inf], [1, 2, 3, 4], sum=1.0)
    r = add_histograms([a, b])
    assert r is not None
    assert r.upper.tolist() == [0.1, 0.5, math.inf] and r.counts.tolist() == [11, 12, 11] and r.sum == 6.0
    sparse = HistogramDistribution(np.array([0.1, 0.3]), np.array([0.2, 0.4]), np.array([5.0, 5.0]))
    both = add_histograms([sparse, sparse])
    assert both is not None and both.count == 20 and both.quantile(0.25).high == pytest.approx(0.2)
    assert add_histograms([]) is None


def test_labels_with_one_value_or_too_many_are_left_out() -> None:
    keep, skipped = choose_labels({"le": 12, "pod": 5, "job": 1, "user": MAX_VALUES + 1, "route": 2})
    assert keep == ["pod", "route"]
    assert [(s.label, s.values) for s in skipped] == [("job", 1), ("user", MAX_VALUES + 1)]


def test_a_slow_slice_with_too_few_observations_is_not_named() -> None:
    rng = np.random.default_rng(1)
    fast = {f"p{i}": _hist(rng.lognormal(math.log(0.03), 0.3, 3000)) for i in range(4)}
    few = _hist(rng.lognormal(math.log(0.8), 0.1, 20))  # slow, but 20 observations say nothing of p99
    split = split_label("pod", {**fast, "p9": few}, 0.99)
    p9 = next(s for s in split.slices if s.value == "p9")
    assert split.named == () and p9.count == 20 and not p9.stands_out and "too few" in (p9.estimate.note or "")
    many = _hist(rng.lognormal(math.log(0.3), 0.1, 3000))
    named = split_label("pod", {**fast, "p9": many}, 0.99)
    assert named.named == ("p9",) and named.slices[0].separation == pytest.approx(0.25 / 0.1)
    assert named.confidence == pytest.approx(0.99)  # five slices at once: 1 - 5%/5
    r = explain_slices("s", "process", 0.99, {"pod": {**fast, "p9": many}})
    assert r.named == (("pod", "p9"),)
    json.dumps(r.to_json(), allow_nan=False)
    assert schema_problems(r.to_json(), "slices_explanation") == []
