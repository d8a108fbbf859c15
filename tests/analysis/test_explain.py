"""Why the tail is slow, from the traces' attributes: the slow host is named, significant
after correction, decoys are not; bad attributes are grouped or left out and counted; the
exact test agrees with known values; a baseline names a version that appeared."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mapper.analysis.examples import item_starts, part_values
from mapper.analysis.explain import Options, against, explain
from mapper.analysis.explain.attributes import Raw, group, looks_personal
from mapper.analysis.explain.stats import benjamini_hochberg, fisher_greater
from mapper.analysis.traces import StageMatch, TraceTable, build_trace_table
from mapper.core.distribution import SampleDistribution
from tests.explain_data import SLOW_HOST, STAGES, chain

UPSTREAM = {"gateway": None, "pricing": "gateway", "risk": "pricing"}
DECOYS = {"cloud.region", "http.route", "batch.size", "queue.depth", "span.name"}


def _table(**kw: object) -> TraceTable:
    return build_trace_table(chain(**kw), [StageMatch(s, s) for s in STAGES], UPSTREAM)  # type: ignore[arg-type]


def _low(table: TraceTable, target: str, part: str, q: float = 0.99) -> float:
    pv = part_values(table, target, part, item_starts(table))
    assert pv is not None
    low = SampleDistribution(pv.value).quantile(q).low
    assert low is not None
    return low


@pytest.fixture(scope="module")
def table() -> TraceTable:
    return _table()


@pytest.mark.parametrize(("target", "part"), [("risk", "process"), ("risk", "hop"), ("end_to_end", "lead")])
def test_the_slow_host_ranks_first_and_no_decoy_is_significant(table: TraceTable, target: str, part: str) -> None:
    e = explain(table, target, part, 0.99, _low(table, target, part))
    top = e.findings[0]
    assert (top.stage, top.scope, top.key, top.value) == ("risk", "resource", "host.name", SLOW_HOST)
    assert top.significant and top.q_value < 1e-6 and top.lift is not None and top.lift > 3
    assert [f for f in e.significant if f.key in DECOYS] == []
    assert top.examples and all(len(x.trace_ids[0]) == 32 and x.value >= e.threshold for x in top.examples)
    assert e.tail_items + e.rest_items == 3000 and e.tail_items >= 30


def test_bad_attributes_are_grouped_or_left_out_and_said_so(table: TraceTable) -> None:
    e = explain(table, "risk", "hop", 0.99, _low(table, "risk", "hop"))
    assert e.left_out["pii"] == ("user.id",)
    assert e.left_out["unique"] == ("request.id",)
    assert e.left_out["rare"] == ("rare.flag",)
    assert "deployment" in e.left_out["constant"]
    assert e.grouped["not-finite"] == ("queue.depth",) and e.grouped["not-a-number"] == ("queue.depth",)
    assert "batch.size" in e.grouped["numeric-bins"]
    keys = {(c.key, c.value) for c in e.counts}
    assert ("queue.depth", "(not finite)") in keys and ("queue.depth", "(not a number)") in keys
    assert len({c.value for c in e.counts if c.key == "batch.size"}) <= 6  # 5 bins at most, never 199 rows
    with_pii = explain(table, "risk", "hop", 0.99, _low(table, "risk", "hop"), opts=Options(include_pii=True))
    assert "pii" not in with_pii.left_out and with_pii.left_out["unique"] == ("request.id", "user.id")


def test_many_values_are_capped_with_other() -> None:
    code = np.arange(1000) % 50
    g = group(Raw("s", "span", "tenant", code, np.array([f"t{i}" for i in range(50)], dtype=object)),
              Options(max_values=20))
    assert not isinstance(g, str) and len(g.labels) == 21 and g.labels[-1] == "(other)" and "other" in g.grouped


@pytest.mark.parametrize(("key", "personal"), [
    ("user.id", True), ("enduser.id", True), ("http.request.header.cookie", True), ("net.peer.ip", True),
    ("client.address", True), ("host.name", False), ("service.version", False), ("tenant", False)])
def test_personal_keys(key: str, personal: bool) -> None:
    assert looks_personal(key) is personal


def test_fisher_matches_the_hypergeometric_tail() -> None:
    # The lady tasting tea: 3 of 4 right, P(X >= 3) = 17/70.
    p, test = fisher_greater(3, 4, 4, 8)
    assert test == "fisher" and p == pytest.approx(17 / 70, rel=1e-12)
    p, _ = fisher_greater(4, 4, 4, 8)
    assert p == pytest.approx(1 / 70, rel=1e-12)
    assert fisher_greater(0, 4, 4, 8)[0] == 1.0
    big, test = fisher_greater(60_000, 100_000, 500_000, 1_000_000)
    assert (test == "normal" and 0 < big < 1e-100) or big == 0.0


def test_benjamini_hochberg_is_monotone_and_known() -> None:
    q = benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.005]))
    assert q.tolist() == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert benjamini_hochberg(np.array([])).size == 0


def test_a_baseline_names_the_version_that_appeared() -> None:
    before = _table(seed=2)
    now = _table(seed=3, version_on_slow="1.1")
    old = explain(before, "risk", "hop", 0.99, _low(before, "risk", "hop"))
    cur = explain(now, "risk", "hop", 0.99, _low(now, "risk", "hop"))
    c = against(cur, old.counts, old.tail_items, "baseline old.json", baseline_left_out=old.left_out)
    top = c.findings[0]
    assert (top.key, top.value, top.new, top.significant) == ("service.version", "1.1", True, True)
    assert [f for f in c.significant if f.key != "service.version"] == []
    assert c.contrast == "baseline" and c.rest_items == old.tail_items


def test_no_slow_host_no_finding() -> None:
    t = _table(slow=None, seed=6)  # (BH keeps the chance of any false finding under 5%: seed 5 is one)
    e = explain(t, "risk", "hop", 0.99, _low(t, "risk", "hop"))
    assert e.significant == () and e.tested > 0 and math.isfinite(e.findings[0].p_value)


def test_a_table_without_spans_says_so() -> None:
    t = _table()
    bare = TraceTable(t.frame.drop(columns=["span_row"]), t.stages, t.traces, t.lead, t.spans_used, t.lead_traces)
    e = explain(bare, "risk", "hop", 0.99, 0.01)
    assert e.tested == 0 and [c.code for c in e.checks] == ["explain-no-attributes"]
    assert [c.code for c in explain(t, "risk", "hop", 0.99, None).checks] == ["explain-no-tail"]
