"""Traces at any scale: the partitioned analysis (local engine, Dask engine) gives the same
report.json numbers as the in-memory path, on a chain with known timings whose consumers
are linked from other traces and whose queue has a 500 ms tail (1% of items).

The spool holds Parquet hour partitions (written vectorised by ``benchmarks/trace_scale.py``)
plus a write-ahead segment (written by latmap's :class:`~collectors.spool.store.Spool`) with a
retried export (duplicated spans): partitions must keep each item whole across traces and
files, and drop the duplicates the in-memory path drops.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from collectors.spool.reader import spool_files
from collectors.spool.store import Spool
from mapper.analysis.examples import MEDIAN, Threshold
from mapper.analysis.latency import MapInput, analyse
from mapper.analysis.traces import StageMatch
from mapper.app import pipeline
from mapper.app.engine import Replays
from mapper.app.gather import traces_at
from mapper.app.partition_tasks import TABLE_FILE, pass_four, pass_one, spill_files
from mapper.app.trace_side import collect_traces
from mapper.cli import main
from mapper.core.errors import SourceError
from mapper.core.model import Window
from mapper.core.spec import load_spec
from tests.servers import load_benchmark

N_PARQUET = 3_000
N_WAL = 500
N = N_PARQUET + N_WAL
PARTITION_SPANS = 4_000  # ~6 partitions of the 24,500 spans

bench = load_benchmark("trace_scale")


@pytest.fixture(scope="module")
def spool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scale") / "spool"
    bench.write_spool(root, N_PARQUET, chunk=700)
    with Spool(root, compact=False) as s:
        s.append(bench.chain(N_PARQUET, N_WAL))
        s.append(bench.chain(N_PARQUET, 100))  # a retried export: the same spans again
    return root


#: Segments and a planned change, so every per-item figure is compared: the hour-of-day and
#: weekday profiles, the label (on no traced measurement: a check), an event of 0.1 s inside
#: the chain's 0.35 s (its quiet baseline the hour before and after), the what-if future.
EXTRA = """\
segments: {hours: true, weekdays: true, labels: [region]}
events:
  - {name: burst, start: "2026-09-21T14:13:20.1Z", end: "2026-09-21T14:13:20.2Z"}
future:
  - {hop: alerting, scale: 0.5}
"""


def _map(tmp: Path, spool: Path | str, name: str, engine: str, *extra: str) -> tuple[int, dict[str, Any]]:
    spec = bench.write_spec(tmp / f"{name}.yaml", spool, engine)
    spec.write_text(spec.read_text() + EXTRA)
    code = main(["map", "-c", str(spec), "--until", bench.UNTIL, "--out", str(tmp / name), *extra])
    report = json.loads((tmp / name / "report.json").read_text()) if code in (0, 1) else {}
    return code, report


@pytest.fixture(scope="module")
def reports(spool: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("maps")
    out = {}
    for name, engine in (("memory", "local"),  # 24,500 spans fit the default budget: analysed whole
                         ("merged", f"{{kind: local, partition_spans: {PARTITION_SPANS}, memory_budget: 0}}")):
        code, out[name] = _map(tmp, spool, name, engine)
        assert code == 0, name
    return out


def _codes(report: dict[str, Any]) -> list[str]:
    return [c["code"] for c in report["checks"]]


def _without(report: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The report without its checks and keys, and without each inventory's peak: merged from
    partitions it is bounded, not exact (see :func:`_peaks_bounded`)."""
    out = {k: v for k, v in report.items() if k not in ("checks", "generated_at", *keys)}
    if "stages" in out:
        out["stages"] = [{**s, "flow": _no_peak(s.get("flow"))} for s in out["stages"]]
    return out


def _no_peak(flow: dict[str, Any] | None) -> dict[str, Any] | None:
    if not flow or not flow.get("inventory"):
        return flow
    return {**flow, "inventory": {k: v for k, v in flow["inventory"].items() if k != "peak"}}


def _peaks_bounded(merged: dict[str, Any], memory: dict[str, Any]) -> None:
    """Each merged inventory peak is the in-memory (exact) one, or none at all, with the
    ``inventory-peak-sampled`` check's bounds holding the exact peak: never a lower bound
    printed as the peak."""
    said = {c["stage"]: c["message"] for c in merged["checks"] if c["code"] == "inventory-peak-sampled"}
    for a, b in zip(merged["stages"], memory["stages"], strict=True):
        if not b["flow"] or not b["flow"]["inventory"]:
            continue
        got, exact = a["flow"]["inventory"]["peak"], b["flow"]["inventory"]["peak"]
        if got is None:
            low, high = re.search(r"between (\d+) .* and (\d+) ", said[a["name"]]).groups()  # type: ignore[union-attr]
            assert float(low) <= exact <= float(high), a["name"]
        else:
            assert got == exact and a["name"] not in said, a["name"]


def test_partitioned_numbers_equal_in_memory(reports: dict[str, dict[str, Any]]) -> None:
    assert bench.numbers(reports["merged"]) == bench.numbers(reports["memory"])
    assert reports["memory"]["end_to_end"]["count"] == N
    assert "traces-partitioned" in _codes(reports["merged"])
    assert "traces-partitioned" not in _codes(reports["memory"])


def test_both_routes_count_the_duplicates_they_drop(reports: dict[str, dict[str, Any]]) -> None:
    """The retried export's spans are dropped on both routes, and said so alike (issue 25)."""
    def aside(report: dict[str, Any]) -> str:
        (check,) = [c for c in report["checks"] if c["code"] == "spans-set-aside"]
        return check["message"].split("spans set aside: ", 1)[1]

    memory, merged = aside(reports["memory"]), aside(reports["merged"])
    assert "duplicate span" in memory and "duplicate span" in merged
    count = [p for p in memory.split(", ") if p.endswith("duplicate span")]
    assert count and count[0] in merged


def test_over_budget_every_figure_is_the_in_memory_one(reports: dict[str, dict[str, Any]]) -> None:
    merged, memory = reports["merged"], reports["memory"]
    # one path, every stage from traces: the tail attribution and the time shares (a third
    # pass), the segments, the what-if replay and the budgets (replayed on demand) are exact,
    # so no check calls any figure approximate
    assert "per-item-figures-approximate" not in _codes(merged)
    assert _without(merged) == _without(memory)
    _peaks_bounded(merged, memory)
    assert all(a["method"] == "traces" for a in merged["attribution"].values())
    assert merged["budgets"][0]["method"] == "trace replay"


def _examples(report: dict[str, Any]) -> dict[str, Any]:
    """Every ``examples`` and ``median_examples`` list of a report.json, by its place."""
    out: dict[str, Any] = {}

    def walk(x: Any, at: str) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("examples", "median_examples"):
                    out[f"{at}/{k}"] = v
                else:
                    walk(v, f"{at}/{k}")
        elif isinstance(x, list):
            for i, v in enumerate(x):
                walk(v, f"{at}/{i}")

    walk(report, "")
    return out


def test_partitions_propose_the_examples_of_the_in_memory_path(reports: dict[str, dict[str, Any]]) -> None:
    memory, merged = _examples(reports["memory"]), _examples(reports["merged"])
    listed = [e for v in memory.values() for e in v]
    # every part and the lead have tail and median examples, with trace ids and breakdowns
    assert sum(bool(v) for v in memory.values()) > 20
    assert all(e["trace_ids"] and e["stages"] for e in listed)
    assert {e["source"] for e in listed} == {"traces"}
    # the queue's 500 ms tail (1% of items) behind the lead time's p99
    assert all(e["value"] >= 0.5 for e in reports["memory"]["end_to_end"]["p99"]["examples"])
    assert merged == memory


def test_analyse_never_chooses_examples_from_a_partitioned_table(spool: Path, tmp_path: Path) -> None:
    """Without examples asked for (no fourth pass) a partitioned table has no rows to choose
    from: no examples, rather than examples chosen from an empty frame."""
    spec = load_spec(bench.write_spec(tmp_path / "s.yaml", spool,
                                      f"{{kind: local, partition_spans: {PARTITION_SPANS}, memory_budget: 0}}"))
    end = datetime.fromisoformat(bench.UNTIL.replace("Z", "+00:00")).timestamp()
    window = Window(end - 2 * 86400, end)
    source = traces_at(str(spool))
    tr = collect_traces(spec, window, source, examples=False)
    assert tr.table is not None and tr.table.items() is None and tr.examples is None
    lm = analyse(spec, window, MapInput(tr.results, tr.table, totals=tr.totals, lead=tr.lead))
    assert lm.examples is None
    # asked for them, the fourth pass proposes them for the map's own thresholds
    hooked = collect_traces(spec, window, source)
    assert hooked.examples is not None and hooked.examples.get("end_to_end", "lead", 0.99)
    assert analyse(spec, window, MapInput(tr.results, tr.table, totals=tr.totals, lead=tr.lead,
                                          examples=hooked.examples)).examples is hooked.examples


def test_a_partitioned_map_is_analysed_once(spool: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The partitions propose examples for the thresholds of the map's stages and lead time
    (``example_thresholds_for``), not of a second whole analysis: ``analyse`` runs once."""
    spec = load_spec(bench.write_spec(tmp_path / "s.yaml", spool,
                                      f"{{kind: local, partition_spans: {PARTITION_SPANS}, memory_budget: 0}}"))
    end = datetime.fromisoformat(bench.UNTIL.replace("Z", "+00:00")).timestamp()
    calls = []

    def counted(*args: Any) -> Any:
        calls.append(args)
        return analyse(*args)

    monkeypatch.setattr(pipeline, "analyse", counted)
    lm = pipeline.build_map(spec, Window(end - 2 * 86400, end))
    assert len(calls) == 1
    assert lm.traces is not None and lm.traces.items() is None
    assert lm.examples is not None and lm.examples.get("end_to_end", "lead", 0.99)


def test_pass_four_reads_the_kept_table_as_the_rebuilt_one(spool: Path, tmp_path: Path) -> None:
    """Pass 1 keeps each partition's trace table (plain arrays) for pass 4; without it pass 4
    builds the table again from the spilled rows: the same candidates either way."""
    files = spool_files(str(spool), 1, 2**62)
    matches = [StageMatch(s, s) for s in bench.STAGES]
    upstream = dict(zip(bench.STAGES, (None, *bench.STAGES[:-1]), strict=True))
    none = np.array([], np.uint32)
    spill_files(files.files, 0, 1, 2**62, none, none, 2, str(tmp_path))
    pv, _ = pass_one(str(tmp_path), 1, matches, upstream, None, keep_table=True)
    assert pv.starts is not None and (tmp_path / "p=1" / TABLE_FILE).exists()
    thresholds = {("alerting", "wait", 0.99): Threshold(0.4), ("notifier", "hop", MEDIAN): Threshold(0.0, 1.0, 0.012),
                  ("end_to_end", "lead", 0.5): Threshold(0.0)}
    kept = pass_four(str(tmp_path), 1, matches, upstream, thresholds, pv.starts, 3)
    (tmp_path / "p=1" / TABLE_FILE).unlink()
    assert pass_four(str(tmp_path), 1, matches, upstream, thresholds, pv.starts, 3) == kept
    assert all(len(kept[k]) >= 3 for k in thresholds)
    assert all(e.trace_ids and e.stages for v in kept.values() for e in v)


def test_every_interval_contains_the_known_value(reports: dict[str, dict[str, Any]]) -> None:
    exact = bench.expected([*bench.ranges(N_PARQUET, 700), (N_PARQUET, N_WAL)])
    stage = {s["name"]: s for s in reports["merged"]["stages"]}
    cells = {"alerting wait": stage["alerting"]["wait"], "notifier wait": stage["notifier"]["wait"],
             "pricing process": stage["pricing"]["process"], "lead": reports["merged"]["end_to_end"]}
    for name, cell in cells.items():
        assert cell["count"] == N, name
        for label, q in (("p50", 0.5), ("p99", 0.99), ("p99.99", 0.9999)):
            e, known = cell[label], float(np.quantile(exact[name], q))
            assert e["low"] <= known * (1 + 1e-9), (name, label)
            assert e["high"] is None or known <= e["high"] * (1 + 1e-9), (name, label)
            if label != "p99.99":  # 3,500 items are too few for a p99.99 estimate (its bounds hold)
                assert e["value"] == pytest.approx(known, rel=1e-8), (name, label)


def test_engine_flag_and_unreachable_scheduler(spool: Path, tmp_path: Path) -> None:
    code, _ = _map(tmp_path, spool, "bad", f"{{kind: local, partition_spans: {PARTITION_SPANS}, memory_budget: 0}}",
                   "--engine", "dask://127.0.0.1:9")
    assert code == 2
    code, _ = _map(tmp_path, spool, "bad2", "local", "--engine", "spark://x")
    assert code == 2


@pytest.mark.slow
def test_dask_local_cluster_gives_identical_numbers(spool: Path, reports: dict[str, dict[str, Any]],
                                                      tmp_path: Path) -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GiB",
                      dashboard_address=None, host="127.0.0.1") as cluster:
        engine = (f"{{kind: dask, scheduler: \"{cluster.scheduler_address}\", partition_spans: {PARTITION_SPANS}, "
                  f"memory_budget: 0, scratch: \"{tmp_path / 'scratch'}\"}}")
        code, report = _map(tmp_path, spool, "dask", engine)
    assert code == 0
    assert bench.numbers(report) == bench.numbers(reports["memory"])
    assert _without(report) == _without(reports["merged"])
    assert _examples(report) == _examples(reports["memory"]) != {}
    assert any("dask tcp://127.0.0.1" in c["message"] for c in report["checks"] if c["code"] == "traces-partitioned")


def test_a_spool_given_by_fsspec_url_maps_to_the_same_numbers(spool: Path, reports: dict[str, dict[str, Any]],
                                                                tmp_path: Path) -> None:
    code, report = _map(tmp_path, f"file://{spool}", "url", f"{{kind: local, partition_spans: {PARTITION_SPANS}}}")
    assert code == 0
    assert bench.numbers(report) == bench.numbers(reports["memory"])
    # the same report but for the spool's spelling in each part's source (``file://...``)
    same = json.loads(json.dumps(report).replace(f"file://{spool}", str(spool)))
    assert _without(same) == _without(reports["memory"])
    assert _examples(report) == _examples(reports["memory"]) != {}


def test_segments_from_traces_are_merged_exactly(reports: dict[str, dict[str, Any]]) -> None:
    merged, memory = reports["merged"]["segments"], reports["memory"]["segments"]
    assert merged == memory
    hour = merged["hour_of_day"]["alerting"]["wait"][14]
    assert hour["count"] == N and hour["p99"]["value"] is not None
    assert sum(r["count"] for r in merged["weekday"]["notifier"]["process"]) == N
    (burst,) = [e for e in merged["events"] if e["stage"] == "alerting" and e["part"] == "wait"]
    assert burst["basis"] == "hour before and after"
    assert 0 < burst["event"]["count"] < N and burst["event"]["count"] + burst["quiet"]["count"] == N
    checks = [c for c in reports["merged"]["checks"] if c["code"] in ("daily-peak", "event-difference",
                                                                      "segment-label-missing")]
    assert checks == [c for c in reports["memory"]["checks"] if c["code"] in ("daily-peak", "event-difference",
                                                                              "segment-label-missing")]
    assert checks


def test_the_future_is_replayed_per_item_and_merged_exactly(reports: dict[str, dict[str, Any]]) -> None:
    merged, memory = reports["merged"]["future_state"], reports["memory"]["future_state"]
    assert merged["method"] == "trace replay"
    assert merged == memory
    exact = bench.expected([*bench.ranges(N_PARQUET, 700), (N_PARQUET, N_WAL)])
    assert merged["future"]["count"] == N
    # halving alerting's hop (its wait and process) takes half of them off each lead time
    hop = exact["alerting wait"] + 0.003
    known = float(np.quantile(exact["lead"] - hop / 2, 0.5))
    assert merged["future"]["p50"]["value"] == pytest.approx(known, rel=1e-6)


def test_a_stream_of_two_paths_is_merged_exactly_too(spool: Path, tmp_path: Path) -> None:
    """notifier forks off pricing: two paths. The what-if replay, the budgets, the tail
    attribution and the time shares (every stage's hop and the rows kept per partition, the
    map's path picked after the merge) equal the in-memory ones."""
    fork = bench.SPEC.replace("{{name: notifier, owner: d, traces:",
                              "{{name: notifier, owner: d, upstream: [pricing], traces:")
    out = {}
    for name, engine in (("memory", "local"), ("merged", f"{{kind: local, partition_spans: {PARTITION_SPANS}, "
                                                        "memory_budget: 0}")):
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(fork.format(path=spool, engine=engine) + "future:\n  - {hop: notifier, cap: 10ms}\n")
        assert main(["map", "-c", str(spec), "--until", bench.UNTIL, "--out", str(tmp_path / name)]) == 0
        out[name] = json.loads((tmp_path / name / "report.json").read_text())
    merged, memory = out["merged"], out["memory"]
    assert merged["path"] == memory["path"] == ["gateway", "pricing", "notifier"]
    assert merged["future_state"]["method"] == "trace replay"
    assert merged["future_state"] == memory["future_state"]
    for key in ("budgets", "attribution", "time_shares"):
        assert merged[key] == memory[key], key
    assert all(a["method"] == "traces" for a in merged["attribution"].values())
    assert "per-item-figures-approximate" not in _codes(merged)


def test_a_damaged_replay_file_names_its_partition(tmp_path: Path) -> None:
    (tmp_path / "p=0").mkdir()
    (tmp_path / "p=0" / "replay.npy").write_bytes(b"not numpy")
    replays = Replays(str(tmp_path), 1, ("a", "b"), (0.5,))
    with pytest.raises(SourceError, match=r"partition 0 .*replay"):
        replays[(("a", "b"), (("a", "scale", 0.5, None),))]
    assert (("c",), ()) not in replays  # a path of stages not kept: no replay (convolution)


def test_partitioned_explanations_equal_in_memory(reports: dict[str, dict[str, Any]]) -> None:
    """Counts per attribute value merge by addition against the merged distribution's
    threshold: the same tail, values tested, p- and q-values and findings (without the
    examples, which a partitioned explanation does not carry)."""
    def strip(report: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for e in report["explanations"]:
            e = {k: v for k, v in e.items() if k != "checks"}
            e["findings"] = [{k: v for k, v in f.items() if k != "examples"} for f in e["findings"]]
            e["counts"] = sorted(e["counts"], key=lambda c: (c["stage"], c["scope"], c["key"], c["value"]))
            out.append(e)
        return out

    memory, merged = strip(reports["memory"]), strip(reports["merged"])
    assert [(e["stage"], e["part"]) for e in merged] == [(e["stage"], e["part"]) for e in memory]
    assert memory and all(e["tail_items"] > 0 for e in memory)  # (this chain's columns are constant)
    assert merged == memory
    codes = [c["code"] for e in reports["merged"]["explanations"] for c in e["checks"]]
    assert "explain-not-computed" not in codes
