"""report.json's JSON Schema (mapper/render/report.schema.json, shipped in the package): a valid
draft 2020-12 schema, met by the reports latmap writes, and refusing what breaks the contract.

Every report.json any test writes is validated as well (tests/conftest.py); the demo's, both
modes, by tests/app/test_demo.py.
"""

from __future__ import annotations

import copy
import json
import math
from importlib.resources import files
from typing import Any

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from mapper.analysis.findings import find
from mapper.analysis.latency import LatencyMap, MapInput, analyse
from mapper.app.budgets import with_budgets
from mapper.core.distribution import HistogramDistribution
from mapper.core.model import MeasurementResult, Window
from mapper.core.spec import loads_spec
from mapper.render.report import SCHEMA_VERSION, to_json

SCHEMA = json.loads(files("mapper.render").joinpath("report.schema.json").read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)

SPEC = """\
name: chain
owner: sre
sources: {prom: {kind: prometheus, url: "http://127.0.0.1:9"}}
stages:
  - {name: a, owner: x, process: {source: prom, histogram: a_seconds}}
  - {name: b, owner: y, wait: {source: prom, histogram: bw_seconds}, process: {source: prom, histogram: b_seconds},
     objectives: {p99: 100ms}}
  - {name: c, process: {source: prom, histogram: c_seconds}}
  - {name: d, process: {source: prom, histogram: d_seconds}}
objectives: {end_to_end: {p99: 250ms}}
future: [{hop: b, scale: 0.5}]
"""
BOUNDS = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, math.inf]


def _map(seed: int = 2) -> LatencyMap:
    """Four stages from histograms: one with too few observations for p99.99, one with
    observations in the +Inf bucket, one with no data at all (values null with a note, and no
    end to end)."""
    rng = np.random.default_rng(seed)
    parts = {("a", "process"): rng.lognormal(math.log(0.002), 0.3, 20_000),
             ("b", "wait"): rng.lognormal(math.log(0.003), 0.5, 20_000),
             ("b", "process"): rng.lognormal(math.log(0.004), 0.3, 500),
             ("c", "process"): np.concatenate([rng.lognormal(math.log(0.02), 0.3, 20_000), np.full(50, 3.0)])}
    results = {k: MeasurementResult(HistogramDistribution.from_cumulative(
        BOUNDS, [(v <= b).sum() for b in BOUNDS], sum=float(v.sum())), "test") for k, v in parts.items()}
    results["d", "process"] = MeasurementResult(None, "test: no series")
    return analyse(loads_spec(SPEC), Window(0, 86400), MapInput(results))


def _errors(doc: Any) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in VALIDATOR.iter_errors(doc)]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A report with every section a map run writes: findings compared with a baseline (itself
    a report), the future state, budgets; round-tripped through JSON like the file."""
    baseline = tmp_path_factory.mktemp("baseline") / "report.json"
    baseline.write_text(json.dumps(to_json(_map(seed=3))))
    lm = _map()
    doc = to_json(lm, with_budgets(lm, find(lm, str(baseline))))
    return json.loads(json.dumps(doc))


def test_the_schema_is_a_valid_draft_2020_12_schema_for_version_1() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["properties"]["schema_version"] == {"const": SCHEMA_VERSION}


def test_a_report_with_every_section_follows_the_schema(report: dict[str, Any]) -> None:
    assert {"attribution", "time_shares", "comparison", "future_state", "budgets", "segments"} <= report.keys()
    assert report["comparison"] is not None and report["end_to_end"] is None  # d has no data
    notes = [e for s in report["stages"] for p in ("wait", "process") if s[p] for e in [s[p]["p99.99"]]]
    assert any(e["value"] is None and e["note"] for e in notes), "the data should hold a value with no number"
    assert _errors(report) == []


def _set(path: str, value: Any) -> Any:
    def mutate(doc: dict[str, Any]) -> None:
        *head, last = path.split(".")
        node: Any = doc
        for key in head:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is _DROP:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return mutate


_DROP = object()


@pytest.mark.parametrize(("mutate", "where"), [
    (_set("schema_version", 2), "$.schema_version"),
    (_set("checks", _DROP), "$"),
    (_set("stages.0.process.p99.note", None), "$.stages[0].process.p99.note"),  # no number, no word why
    (_set("stages.0.process.p50.low", _DROP), "$.stages[0].process.p50"),
    (_set("stages.0.process.p50.mean", 1.0), "$.stages[0].process.p50"),  # a percentile is closed
    (_set("stages.0.process.count", "20000"), "$.stages[0].process.count"),
    (_set("stages.0.process.unit", "ms"), "$.stages[0].process.unit"),
    (_set("window.start", "yesterday"), "$.window.start"),
    (_set("checks.0.level", "fatal"), "$.checks[0].level"),
    (_set("objectives.0.status", "ok"), "$.objectives[0].status"),
    (_set("percentiles.0", "median"), "$.percentiles[0]"),
], ids=lambda x: x if isinstance(x, str) else "")
def test_what_breaks_the_contract_is_refused_at_its_place(report: dict[str, Any], mutate: Any, where: str) -> None:
    doc = copy.deepcopy(report)
    if where.endswith(".note"):
        doc["stages"][0]["process"]["p99"]["value"] = None
    mutate(doc)
    error = best_match(VALIDATOR.iter_errors(doc))
    assert error is not None and error.json_path == where, error
