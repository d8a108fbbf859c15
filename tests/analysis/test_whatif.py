"""The future state (what-if): known-by-construction traces and histograms.

Traces: three stages a -> b -> c with known per-trace hops, so every change's effect on each
lead time is known exactly. Metrics: three independent sampled hops bucketed into classic
histograms; the future interval must hold the exact quantile of the changed sums.
"""

from __future__ import annotations

import numpy as np
import pytest

from mapper.analysis.latency import LatencyMap, MapInput, analyse
from mapper.analysis.traces import StageMatch, build_trace_table, part_results
from mapper.analysis.whatif import (
    CONVOLUTION,
    TRACE_REPLAY,
    change_of,
    future_state,
    parse_change,
)
from mapper.core.distribution import Distribution, HistogramDistribution, SampleDistribution
from mapper.core.errors import UsageError
from mapper.core.model import MeasurementResult, Window
from mapper.core.spans import SpanBatch
from mapper.core.spec import Measurement, Stage, StreamSpec, TraceMatch
from mapper.core.spec.extra import Change
from mapper.render.sections import future_json, future_state_section, future_table

QS = (0.5, 0.99, 0.9999)
WINDOW = Window(0.0, 3600.0)
STAGES = ("a", "b", "c")


def _spec(traced: bool, future: tuple[Change, ...] = ()) -> StreamSpec:
    stages = []
    for i, name in enumerate(STAGES):
        up = (STAGES[i - 1],) if i else ()
        if traced:
            stages.append(Stage(name, f"t:{i}", upstream=up, traces=TraceMatch("t", name, f"t:{i}")))
        else:
            stages.append(Stage(name, f"t:{i}", upstream=up,
                                process=Measurement("p", "histogram", f"{name}_seconds", f"t:{i}")))
    return StreamSpec("s", None, 3600.0, QS, {}, tuple(stages), (), future=future)


# --------------------------------------------------------------------------- traces


def _traced_map(n: int = 3000) -> tuple[LatencyMap, dict[str, np.ndarray]]:
    """n complete traces a, then b after a wait, then c after a wait; plus 50 without c.

    Returns the map and each complete trace's hops in seconds (in trace order).
    """
    rng = np.random.default_rng(1)
    m = n + 50
    pa, wb, pb, wc, pc = (rng.integers(1, 5_000_000, m) for _ in range(5))
    a0 = np.arange(m, dtype=np.int64) * 100_000_000
    b0 = a0 + pa + wb
    c0 = b0 + pb + wc
    has_c = np.arange(m) < n
    trace = np.arange(m) + 1
    cols = {
        "trace_hi": np.zeros(2 * m + n, dtype=np.uint64),
        "trace_lo": np.concatenate([trace, trace, trace[has_c]]),
        "span_id": np.arange(1, 2 * m + n + 1),
        "service": ["a"] * m + ["b"] * m + ["c"] * n,
        "start_ns": np.concatenate([a0, b0, c0[has_c]]),
        "end_ns": np.concatenate([a0 + pa, b0 + pb, (c0 + pc)[has_c]]),
        "kind": np.full(2 * m + n, 2),
    }
    table = build_trace_table(SpanBatch.from_columns(cols), [StageMatch(s, s) for s in STAGES],
                              {"a": None, "b": "a", "c": "b"})
    results = {(s, part): r for s in STAGES for part, r in part_results(table, s, "test").items()}
    totals: dict[str, Distribution] = {s: SampleDistribution(table.totals(s)) for s in STAGES}
    lm = analyse(_spec(True), WINDOW, MapInput(results, table, totals=totals))
    hops = {"a": pa[:n] * 1e-9, "b": (wb + pb)[:n] * 1e-9, "c": (wc + pc)[:n] * 1e-9}
    return lm, hops


@pytest.fixture(scope="module")
def traced() -> tuple[LatencyMap, dict[str, np.ndarray]]:
    return _traced_map()


def _replayed(lm: LatencyMap, *changes: Change) -> np.ndarray:
    fs = future_state(lm, changes)
    assert fs.method == TRACE_REPLAY
    assert isinstance(fs.future, SampleDistribution)
    return fs.future.values


def test_trace_replay_changes_every_lead_by_exactly_the_changed_hop(
        traced: tuple[LatencyMap, dict[str, np.ndarray]]) -> None:
    lm, h = traced
    assert lm.end_to_end_method == "traces"
    lead = h["a"] + h["b"] + h["c"]
    assert lm.traces is not None
    assert np.sort(lead) == pytest.approx(np.sort(lm.traces.lead), abs=1e-12)
    expect = {
        "scale": lead - 0.5 * h["b"],
        "remove": lead - h["b"],
        "cap": lead - h["b"] + np.minimum(h["b"], 0.004),
        "parallel": h["a"] + np.maximum(h["b"], h["c"]),
    }
    got = {
        "scale": _replayed(lm, Change("b", "scale", 0.5)),
        "remove": _replayed(lm, Change("b", "remove")),
        "cap": _replayed(lm, Change("b", "cap", 0.004)),
        "parallel": _replayed(lm, Change("b", "parallel", other="c")),
    }
    for kind in expect:
        assert got[kind] == pytest.approx(np.sort(expect[kind]), abs=1e-12), kind


def test_trace_replay_combines_changes_in_order(traced: tuple[LatencyMap, dict[str, np.ndarray]]) -> None:
    lm, h = traced
    got = _replayed(lm, Change("a", "scale", 2.0), Change("c", "cap", 0.003), Change("a", "parallel", other="b"))
    expect = np.maximum(2 * h["a"], h["b"]) + np.minimum(h["c"], 0.003)
    assert got == pytest.approx(np.sort(expect), abs=1e-12)
    fs = future_state(lm, [Change("b", "scale", 0.0)])
    assert fs.future.quantile(0.5) == future_state(lm, [Change("b", "remove")]).future.quantile(0.5)
    assert fs.current.count == fs.future.count == 3000


# --------------------------------------------------------------------------- metrics

BOUNDS = [0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2, float("inf")]


def _histogram(x: np.ndarray) -> HistogramDistribution:
    cum = np.searchsorted(np.sort(x), BOUNDS, side="right").tolist()
    return HistogramDistribution.from_cumulative(BOUNDS, cum, sum=float(x.sum()))


def _metrics_map(dists: dict[str, Distribution]) -> LatencyMap:
    results = {(s, "process"): MeasurementResult(d, "test") for s, d in dists.items()}
    return analyse(_spec(False), WINDOW, MapInput(results))


@pytest.fixture(scope="module")
def samples() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    n = 100_000
    return {"a": rng.lognormal(np.log(0.003), 0.4, n),
            "b": rng.gamma(2.0, 0.004, n),
            "c": 0.005 + rng.exponential(0.006, n)}


def test_future_interval_holds_the_exact_quantile_of_the_changed_sums(samples: dict[str, np.ndarray]) -> None:
    lm = _metrics_map({s: _histogram(x) for s, x in samples.items()})
    assert lm.end_to_end_method == "convolution"
    a, b, c = samples["a"], samples["b"], samples["c"]
    cases = [
        ((Change("b", "scale", 0.5),), a + 0.5 * b + c),
        ((Change("c", "cap", 0.02),), a + b + np.minimum(c, 0.02)),
        ((Change("a", "remove"),), b + c),
        ((Change("b", "parallel", other="c"),), a + np.maximum(b, c)),
        ((Change("b", "scale", 1.5), Change("c", "cap", 0.015), Change("a", "parallel", other="b")),
         np.maximum(a, 1.5 * b) + np.minimum(c, 0.015)),
    ]
    for changes, exact in cases:
        fs = future_state(lm, changes)
        assert fs.method == CONVOLUTION
        for q in QS:
            e = fs.future.quantile(q)
            truth = float(np.quantile(exact, q))
            assert e.value is not None and e.low is not None and e.high is not None, (changes, q, e)
            assert e.low <= truth <= e.high, (changes, q, e, truth)
    # A cap bounds the tail: the +Inf bucket of the capped hop no longer matters.
    assert future_state(lm, [Change("c", "cap", 0.02)]).future.quantile(0.9999).high is not None


def test_scale_zero_is_removal_and_removing_a_constant_shifts_by_it(samples: dict[str, np.ndarray]) -> None:
    const = 0.01
    lm = _metrics_map({"a": _histogram(samples["a"]), "b": SampleDistribution(np.full(20_000, const)),
                       "c": _histogram(samples["c"])})
    zero = future_state(lm, [Change("b", "scale", 0.0)])
    gone = future_state(lm, [Change("b", "remove")])
    for q in QS:
        assert zero.future.quantile(q) == gone.future.quantile(q)
        now, then = gone.current.quantile(q), gone.future.quantile(q)
        assert now.value is not None and then.value is not None and then.low is not None
        assert then.high is not None and now.low is not None and now.high is not None
        assert then.low <= now.value - const <= then.high
        assert now.low <= then.value + const <= now.high
        assert then.value + const == pytest.approx(now.value, rel=0.02)


def test_json_and_table_show_current_and_future(samples: dict[str, np.ndarray]) -> None:
    lm = _metrics_map({s: _histogram(x) for s, x in samples.items()})
    fs = future_state(lm, [parse_change("b:scale=0.5", STAGES), parse_change("c:cap=20ms", STAGES)])
    doc = future_json(fs, QS)
    assert doc["changes"] == ["b: scale x0.5", "c: cap at 0.02s"]
    assert doc["method"] == CONVOLUTION
    assert doc["future"]["p50"]["value"] < doc["current"]["p50"]["value"]
    assert doc["future"]["count"] == 100_000
    lines = future_table(fs, QS).splitlines()
    assert lines[0] == "what-if: b: scale x0.5; c: cap at 0.02s"
    # A cap leaves the mean unknown (only the bucket counts above the cap are known).
    assert fs.future.mean is None
    assert [ln.split()[0] for ln in lines[4:]] == ["n", "p50", "p99", "p99.99"]
    assert lines[5].split()[-1].startswith("-") and lines[5].endswith("%")


def test_report_section_applies_the_specs_planned_changes(samples: dict[str, np.ndarray]) -> None:
    results = {(s, "process"): MeasurementResult(_histogram(x), "test") for s, x in samples.items()}
    planned = (Change("b", "remove", place="stream.yaml:30"),)
    lm = analyse(_spec(False, planned), WINDOW, MapInput(results))
    section = future_state_section(lm)
    assert section is not None and section["changes"] == ["b: removed"]
    assert section["future"]["p50"]["value"] < section["current"]["p50"]["value"]
    assert future_state_section(analyse(_spec(False), WINDOW, MapInput(results))) is None
    bad = analyse(_spec(False, (Change("b", "parallel", other="b", place="stream.yaml:31"),)), WINDOW,
                  MapInput(results))
    assert future_state_section(bad) == {"changes": ["b: in parallel with b"],
                                   "error": "stream.yaml:31: b: parallel must name another stage on the path "
                                            "(a, b, c), got 'b'"}


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("changes", "message"), [
    ([Change("nowhere", "scale", 0.5)], "hop 'nowhere' is not a stage on the end-to-end path (a, b, c)"),
    ([Change("b", "parallel", other="b")], "b: parallel must name another stage on the path (a, b, c), got 'b'"),
    ([Change("b", "scale", -1.0)], "b: scale must be a finite factor >= 0, got -1.0"),
    ([Change("b", "cap", 0.0)], "b: cap must be a duration > 0, got 0.0"),
    ([], "no change given: name a hop and one of scale, cap, remove, parallel"),
    ([Change(s, "remove") for s in STAGES], "the changes remove every hop of the path; nothing would be left"),
])
def test_impossible_changes_are_usage_errors(samples: dict[str, np.ndarray], changes: list[Change],
                                             message: str) -> None:
    lm = _metrics_map({s: _histogram(x[:1000]) for s, x in samples.items()})
    with pytest.raises(UsageError) as err:
        future_state(lm, changes)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("text", "message"), [
    ("nowhere:scale=0.5", "--change 'nowhere:scale=0.5': hop 'nowhere' is not a stage (stages: a, b, c)"),
    ("b:scale=-1", "--change 'b:scale=-1': scale must be a factor >= 0, got -1.0"),
    ("b:scale=fast", "--change 'b:scale=fast': scale must be a number, got 'fast'"),
    ("b:parallel=b", "--change 'b:parallel=b': parallel must name another stage, got 'b'"),
    ("b:cap=soon", "--change 'b:cap=soon': cap: not a duration: 'soon'"),
    ("b:remove=yes", "--change 'b:remove=yes': use HOP:scale=F"),
    ("b", "--change 'b': use HOP:scale=F"),
])
def test_bad_change_text_is_a_usage_error(text: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_change(text, STAGES)
    assert str(err.value).startswith(message)


def test_hop_options_make_one_change() -> None:
    assert change_of("b", STAGES, cap="20ms") == Change("b", "cap", 0.02)
    with pytest.raises(UsageError, match=r"^--hop b: give hop and exactly one of scale, cap, remove, parallel$"):
        change_of("b", STAGES, scale="0.5", remove=True)
    with pytest.raises(UsageError, match=r"^--hop b: give hop and exactly one"):
        change_of("b", STAGES)


def test_change_text_parses_every_kind() -> None:
    assert parse_change("b:scale=0.5", STAGES) == Change("b", "scale", 0.5)
    assert parse_change("b:cap=20ms", STAGES) == Change("b", "cap", 0.02)
    assert parse_change("b:remove", STAGES) == Change("b", "remove")
    assert parse_change("b:parallel=c", STAGES) == Change("b", "parallel", None, "c")
