"""Examples per percentile: on the known chain of ``test_linked_items`` (a slow alerting wait
in 5% of items; consumers linked across traces, a third of them batches), every example
of a tail qualifies, exists in the input, and its breakdown adds up to its lead time; and
the selection merges across partitions exactly as over the whole data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mapper.analysis.examples import MEDIAN, Example, Threshold, choose, merge, propose, slice_of
from mapper.analysis.traces import StageMatch, build_trace_table
from mapper.cli import main
from mapper.core.spans import SpanBatch, trace_id_hex
from tests.analysis.test_linked_items import CHAIN, SPEC, _exact, _known, make_chain
from tests.app.test_traces_map import received_traces


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for shape in ("parent", "linked"):
        tmp = tmp_path_factory.mktemp(shape)
        spool = received_traces(tmp, make_chain(shape == "linked"), CHAIN, grpc_services=())
        spec = tmp / "stream.yaml"
        spec.write_text(SPEC.format(path=spool) + 'links: {preset: jaeger, url: "http://jaeger.test:16686"}\n')
        main(["map", "-c", str(spec), "--until", "2026-09-22T00:00:00Z", "--window", "2d",
              "--out", str(tmp / "out")])
        out[shape] = {"report": json.loads((tmp / "out" / "report.json").read_text()),
                      "md": (tmp / "out" / "report.md").read_text(), "spool": spool, "spec": spec,
                      "html": (tmp / "out" / "report.html").read_text(), "out": tmp / "out"}
    return out


def _input_trace_ids(spool: Path) -> set[str]:
    from collectors.traces import load_spans
    from mapper.core.model import Window
    from mapper.core.spec import SourceSpec

    batch = load_spans(SourceSpec(name="t", kind="traces", url="", place="t", path=str(spool)), Window(0, 4e9)).batch
    return {trace_id_hex(h, lo) for h, lo in zip(batch.trace_hi.tolist(), batch.trace_lo.tolist(), strict=True)}


def _objects(report: dict) -> list[tuple[str, dict]]:
    out = [("lead", report["end_to_end"])]
    for s in report["stages"]:
        out += [(f"{s['name']} {p}", s[p]) for p in ("wait", "process", "total") if s[p] is not None]
    return out


@pytest.mark.parametrize("shape", ["parent", "linked"])
def test_every_tail_example_qualifies_exists_and_adds_up(runs: dict, shape: str) -> None:
    r = runs[shape]["report"]
    known = _input_trace_ids(runs[shape]["spool"])
    seen = 0
    for what, obj in _objects(r):
        for label in ("p99", "p99.99", "p50"):
            exs = obj[label]["examples"]
            assert len(exs) <= 3
            for e in exs:
                assert e["value"] >= obj[label]["low"] - 1e-12, (what, label, e)
                assert e["trace_ids"] and set(e["trace_ids"]) <= known, (what, e["trace_ids"])
                assert len(e["links"]) == len(e["trace_ids"])
                assert all(u.startswith("http://jaeger.test:16686/trace/") for u in e["links"])
                assert e["lead"] is not None
                total = sum((s["wait"] or 0) + s["process"] for s in e["stages"])
                assert total + e["unaccounted"] == pytest.approx(e["lead"], abs=1e-9)
                assert abs(e["unaccounted"]) < 1e-6, e  # a plain chain: the stages cover the item
                assert [s["stage"] for s in e["stages"]] == list(CHAIN)
                seen += 1
        med = obj["median_examples"]
        assert len(med) == 3 and all(obj["p50"]["low"] <= e["value"] <= obj["p50"]["high"] for e in med), what
    assert seen > 20
    # the known slow hop: its p99 examples are the slow alerting waits (140-200 ms)
    alerting = next(s for s in r["stages"] if s["name"] == "alerting")
    assert len(alerting["wait"]["p99"]["examples"]) == 3
    assert all(0.14 <= e["value"] <= 0.2 for e in alerting["wait"]["p99"]["examples"])
    # the breakdown is the item's own: its alerting wait is the value
    for e in alerting["wait"]["p99"]["examples"]:
        assert next(s["wait"] for s in e["stages"] if s["stage"] == "alerting") == pytest.approx(e["value"])


def test_linked_consumers_list_every_trace_id(runs: dict) -> None:
    for shape, traces in (("parent", 1), ("linked", 3)):
        exs = runs[shape]["report"]["end_to_end"]["p99"]["examples"]
        assert exs and all(len(e["trace_ids"]) == traces for e in exs), shape


def test_examples_are_the_same_in_both_shapes_but_the_trace_ids(runs: dict) -> None:
    a, b = runs["parent"]["report"], runs["linked"]["report"]
    for (wa, oa), (_wb, ob) in zip(_objects(a), _objects(b), strict=True):
        va = [(e["value"], e["start"]) for e in oa["p99"]["examples"]]
        assert va == [(e["value"], e["start"]) for e in ob["p99"]["examples"]], wa


def test_examples_are_spread_over_the_window_not_the_k_largest(runs: dict) -> None:
    k = _known()
    lead = _exact(k)["lead"]
    exs = runs["parent"]["report"]["end_to_end"]["p50"]["examples"]
    starts = sorted(e["start_unix"] for e in exs)
    # qualifying items span the whole run: one example per third of the window
    assert len(starts) == 3 and starts[-1] - starts[0] > 0.3 * (k["t0"][-1] - k["t0"][0]) / 1e9
    assert sorted(e["value"] for e in exs) != sorted(lead)[-3:]


def test_report_md_lists_the_examples_as_links(runs: dict) -> None:
    md = runs["linked"]["md"]
    assert "## Examples" in md and "](http://jaeger.test:16686/trace/" in md


# --- merge across partitions -------------------------------------------------------------


def _chain_batch(n: int, seed: int) -> SpanBatch:
    rng = np.random.default_rng(seed)
    t0 = 1_790_000_000 * 10**9 + np.sort(rng.integers(0, 3600 * 10**9, n))
    a_end = t0 + rng.integers(1_000_000, 5_000_000, n)
    b_start = a_end + rng.exponential(20e6, n).astype(np.int64)
    b_end = b_start + rng.integers(1_000_000, 9_000_000, n)
    ids = np.arange(1, n + 1, dtype=np.uint64)
    cols = {"trace_hi": np.r_[ids, ids] * 0 + 7, "trace_lo": np.r_[ids, ids],
            "span_id": np.r_[ids * 2, ids * 2 + 1], "parent_id": np.r_[ids * 0, ids * 2],
            "service": ["a"] * n + ["b"] * n, "start_ns": np.r_[t0, b_start], "end_ns": np.r_[a_end, b_end],
            "kind": [4] * n + [5] * n}
    return SpanBatch.from_columns(cols)


def test_merged_partition_candidates_equal_the_whole_datas_examples() -> None:
    batch = _chain_batch(5000, 3)
    matches, up = [StageMatch("a", "a"), StageMatch("b", "b")], {"a": None, "b": "a"}
    whole = build_trace_table(batch, matches, up)
    window = (1_790_000_000.0, 1_790_003_600.0)
    lead = np.sort(whole.lead)
    th = {("end_to_end", "lead", 0.99): Threshold(float(lead[int(0.99 * lead.size)])),
          ("b", "wait", 0.9): Threshold(float(np.quantile(whole.stage_frame("b")["wait"], 0.9))),
          ("b", "hop", MEDIAN): Threshold(0.0, 1.0, float(np.median(whole.totals("b"))))}
    expected = choose(whole, th, 4, window)
    # partitions by trace id, as a scale-out path would split them
    part = (batch.trace_lo % 3).astype(int)
    proposals = [propose(build_trace_table(batch.take(np.flatnonzero(part == i)), matches, up), th, window, 4)
                 for i in range(3)]
    merged = merge(proposals, th, 4)
    assert merged.by_key == expected.by_key
    assert all(len(v) == 4 for v in expected.by_key.values())
    # deterministic: the same data gives the same examples
    assert choose(whole, th, 4, window).by_key == expected.by_key
    # one per time slice first
    tail = expected.get("end_to_end", "lead", 0.99)
    assert sorted(e.slice for e in tail) == [0, 1, 2, 3]


def test_merge_prefers_one_per_slice_then_the_next_largest() -> None:
    def ex(v: float, s: float, sl: int) -> Example:
        return Example((f"{int(v * 1000):032x}",), s, v, slice=sl)

    a = {("x", "wait", 0.99): [ex(9, 1, 0), ex(8, 2, 0), ex(7, 3, 0)]}
    b = {("x", "wait", 0.99): [ex(2, 11, 2), ex(9, 1, 0)]}
    got = merge([a, b], {("x", "wait", 0.99): Threshold(1.0)}, 3).get("x", "wait", 0.99)
    assert [e.value for e in got] == [9, 2, 8]
    assert slice_of(np.array([0.0, 5.0, 10.0]), (0.0, 10.0), 3).tolist() == [0, 1, 2]


def test_the_examples_command_prints_them_with_links(runs: dict, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(runs["linked"]["spec"])
    base = ["examples", "-c", spec, "--until", "2026-09-22T00:00:00Z", "--window", "2d"]
    assert main([*base, "--stage", "alerting", "--part", "wait", "--percentile", "99", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["percentile"] == "p99" and doc["viewer"] == "jaeger" and len(doc["examples"]) == 3
    assert all(e["value"] >= doc["low"] and len(e["links"]) == 3 for e in doc["examples"])
    assert [e["value"] for e in doc["examples"]] == sorted((e["value"] for e in doc["examples"]), reverse=True)
    assert main([*base, "--part", "lead", "--percentile", "99.9"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("lead time p99.9: ") and "http://jaeger.test:16686/trace/" in text
    assert "median, for contrast:" in text
    assert main([*base, "--part", "wait"]) == 2
    assert "--stage: give the stage" in capsys.readouterr().err
    assert main([*base, "--stage", "nope", "--part", "wait"]) == 2
