"""Defects the review of ``latmap explain`` found, each on the smallest input that shows it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mapper.analysis.baseline import SCHEMA_VERSION
from mapper.analysis.explain import Explanation, Options, ValueCount, against
from mapper.analysis.explain.attributes import Grouped, looks_personal
from mapper.analysis.explain.compare import test_counts as counts_tested
from mapper.analysis.explain.model import OTHER
from mapper.core.errors import UsageError


def test_values_no_tail_item_carries_still_count_in_the_correction() -> None:
    # 1,000 items, 10 in the tail; an attribute of 20 values: "a" on 980 items, 19 values on
    # one item each. One of those (in the tail) has p = 10/1000 = 0.01: among the 20 values
    # tested q = 0.2. Correcting over only the 2 values a tail item carries (q = 0.02) called
    # it significant: with 19 such values that happens by chance in ~17% of windows.
    n, n_tail = 1000, 10
    code = np.zeros(n, np.int64)
    code[n_tail - 1] = 1  # the tail's one rare item
    code[n_tail:n_tail + 18] = np.arange(2, 20)  # the 18 other rare values, in the rest
    g = Grouped("s", "span", "k", code, tuple(f"v{i}" for i in range(20)))
    is_tail = np.arange(n) < n_tail
    per = [(np.bincount(code[is_tail], minlength=20), np.bincount(code[~is_tail], minlength=20))]
    found, tested, _more, _counts = counts_tested([g], per, n_tail, n - n_tail, Options())
    rare = next(f for f, _, _ in found if f.value == "v1")
    assert rare.p_value == pytest.approx(0.01)
    assert tested == 20
    assert rare.q_value == pytest.approx(0.2) and not rare.significant


@pytest.mark.parametrize("key", ["userEmail", "customerEmail", "api_key", "x-api-key", "accessToken", "sessionId",
                                 "creditCardNumber", "phoneNumber", "IPAddress", "remote_addr", "x-forwarded-for"])
def test_personal_keys_in_camel_case_or_split_are_left_out(key: str) -> None:
    assert looks_personal(key)


@pytest.mark.parametrize("key", ["service.version", "host.name", "k8s.pod.name", "http.route", "customer.tier",
                                 "server.address", "HTTPStatus"])
def test_ordinary_keys_are_not_personal(key: str) -> None:
    assert not looks_personal(key)


def _current(counts: list[ValueCount], tail: int) -> Explanation:
    return Explanation("attributes", "s", "hop", 0.99, "rest", 1.0, tail, 100, counts=tuple(counts))


def test_a_value_beside_the_baselines_other_is_not_new() -> None:
    # The baseline had more than max_values versions: v9 sat in its (other). Now v9 is listed:
    # it is not new, and its baseline count is unknown (not 0); (other) against (other) holds
    # different values in each run.
    now = [ValueCount("s", "span", "v", "v9", 30, 0), ValueCount("s", "span", "v", OTHER, 30, 0),
           ValueCount("s", "span", "v", "v1", 10, 0)]
    then = [ValueCount("s", "span", "v", "v1", 30, 0), ValueCount("s", "span", "v", OTHER, 5, 0)]
    e = against(_current(now, 70), then, 35, "baseline")
    assert {f.value for f in e.findings} == {"v1"}
    assert not any(f.new for f in e.findings)


def test_a_new_version_is_still_named() -> None:
    now = [ValueCount("s", "span", "v", "2.0", 40, 0), ValueCount("s", "span", "v", "1.0", 20, 0)]
    then = [ValueCount("s", "span", "v", "1.0", 60, 0)]
    e = against(_current(now, 60), then, 60, "baseline")
    top = e.findings[0]
    assert (top.value, top.new, top.significant) == ("2.0", True, True)


def test_a_baseline_count_beyond_its_tail_is_a_usage_error(tmp_path: Path) -> None:
    from mapper.app.explain import _baseline_counts

    doc = {"stream": "x", "schema_version": SCHEMA_VERSION, "explanations": [
        {"kind": "attributes", "stage": "s", "part": "hop", "percentile": "p99", "contrast": "rest",
         "tail_items": 5, "left_out": {},
         "counts": [{"stage": "s", "scope": "span", "key": "k", "value": "a", "tail": 50, "rest": 0}]}]}
    p = tmp_path / "baseline.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match=r"counts\[0\]: tail 50 is more than the 5 tail items"):
        _baseline_counts(str(p), "x", "s", "hop", 0.99)


def test_a_value_only_in_the_tail_is_not_called_new_against_the_rest() -> None:
    from mapper.analysis.explain import Finding
    from mapper.render.explain import finding_line

    f = Finding("s", "span", "host.name", "h1", 8, 0, 0.8, 0.0, None, 1e-9, 1e-8, True, "fisher")
    e = _current([], 10)
    assert "lift new" not in finding_line(f, e) and "none in the contrast" in finding_line(f, e)
    assert "lift new" in finding_line(f, Explanation("attributes", "s", "hop", 0.99, "baseline", 1.0, 10, 10))


@pytest.mark.parametrize(("target", "part"), [("risk", "process"), ("end_to_end", "lead")])
def test_counts_added_over_partitions_explain_as_in_memory(target: str, part: str) -> None:
    import dataclasses

    from mapper.analysis.explain import explain
    from mapper.analysis.explain.merge import add_counts, explain_counts, partition_counts
    from mapper.analysis.traces import StageMatch, build_trace_table
    from mapper.core.spans import SpanBatch
    from tests.analysis.test_explain import UPSTREAM, _low
    from tests.explain_data import STAGES, chain

    def table(b: SpanBatch):  # type: ignore[no-untyped-def]
        return build_trace_table(b, [StageMatch(s, s) for s in STAGES], UPSTREAM)

    parts = [chain(n=600, seed=s, trace_base=1000 * s) for s in (1, 2, 3)]
    whole = table(SpanBatch.concat(parts))
    low = _low(whole, target, part)
    mem = explain(whole, target, part, 0.99, low)
    merged = explain_counts((target, part, 0.99, low),
                            add_counts([partition_counts(table(p), [(target, part, 0.99, low)]) for p in parts], 1)[0])
    bare = tuple(dataclasses.replace(f, examples=()) for f in mem.findings)
    assert dataclasses.replace(mem, findings=bare) == merged
    assert mem.significant and mem.significant[0].value == "risk-3"
