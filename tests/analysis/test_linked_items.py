"""One item, many traces: the same chain sent through the real OpenTelemetry SDK (OTLP/HTTP
exporter) into latmap's receiver in two shapes, mapped to the same numbers.

* **parent**: every consumer span is a child of its producer (one trace per item);
* **linked**: every consumer starts a new trace with a span link to its producer (the
  OpenTelemetry messaging conventions); a third of the notifications are batch consumers,
  one span linked to the 2-5 alerts it took.

The known latencies are chosen so that both shapes have the same spans at the same times
(a batch's items share the notification span's start and duration in the parent shape
too), so every per-hop and end-to-end number must be equal, and each interval must contain
the known quantile. ``alerting p99 <= 100ms`` is broken by the true hop p99 (~150 ms).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind

from mapper.analysis.items import build_items
from mapper.analysis.traces import StageMatch, build_trace_table, part_results
from mapper.cli import main
from mapper.core.spans import SpanBatch, SpanLinks
from tests.app.test_traces_map import T0, received_traces

MS = 1_000_000
N = 1000
CHAIN = ("market-data", "alerting", "notification")


def _known(seed: int = 13) -> dict[str, np.ndarray]:
    """Per item (ns): tick start, market-data process, alerting wait and process, the
    notification group (batch) of each item, and each group's start and duration."""
    rng = np.random.default_rng(seed)
    t0 = T0 + np.arange(N) * 50 * MS
    md = rng.integers(1 * MS, 4 * MS, N)
    a_wait = rng.integers(2 * MS, 30 * MS, N)
    slow = rng.random(N) < 0.05  # the tail that breaks the hop objective
    a_wait[slow] = rng.integers(140 * MS, 200 * MS, int(slow.sum()))
    a_proc = rng.integers(3 * MS, 9 * MS, N)
    # groups of consecutive items: two thirds alone, the rest in batches of 2-5
    sizes: list[int] = []
    while sum(sizes) < N:
        sizes.append(1 if rng.random() < 0.67 else int(rng.integers(2, 6)))
    sizes[-1] -= sum(sizes) - N
    group = np.repeat(np.arange(len(sizes)), sizes)
    a_end = t0 + md + a_wait + a_proc
    g_ready = np.maximum.reduceat(a_end, np.r_[0, np.cumsum(sizes)[:-1]])
    g_start = g_ready + rng.integers(1 * MS, 12 * MS, len(sizes))
    g_dur = rng.integers(5 * MS, 40 * MS, len(sizes))
    return {"t0": t0, "md": md, "a_wait": a_wait, "a_proc": a_proc, "group": group, "sizes": np.array(sizes),
            "g_start": g_start, "g_dur": g_dur}


def _exact(k: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The true value of every part, per item."""
    a_end = k["t0"] + k["md"] + k["a_wait"] + k["a_proc"]
    n_start, n_dur = k["g_start"][k["group"]], k["g_dur"][k["group"]]
    out = {"market-data process": k["md"], "alerting wait": k["a_wait"], "alerting process": k["a_proc"],
           "notification wait": n_start - a_end, "notification process": n_dur}
    out = {key: v / 1e9 for key, v in out.items()}
    out["alerting total"] = out["alerting wait"] + out["alerting process"]
    out["lead"] = (n_start + n_dur - k["t0"]) / 1e9
    return out


def _messaging(t: trace.Tracer, name: str, kind: SpanKind, start: int, parent: Any = None,
               links: list[Link] | None = None) -> trace.Span:
    ctx = trace.set_span_in_context(parent) if parent is not None else Context()  # Context(): a new trace
    return t.start_span(name, ctx, kind, start_time=int(start), links=links,
                        attributes={"messaging.system": "kafka", "messaging.destination.name": name.split()[0]})


def make_chain(linked: bool) -> Any:
    """The spans of :func:`_known` in one shape, for :func:`received_traces`."""
    k = _known()

    def make(t: dict[str, trace.Tracer]) -> None:
        alerts: list[trace.Span] = []
        for i in range(N):
            s0, md = int(k["t0"][i]), int(k["md"][i])
            tick = t["market-data"].start_span("tick", kind=SpanKind.SERVER, start_time=s0)
            pub = _messaging(t["market-data"], "ticks publish", SpanKind.PRODUCER, s0 + md - MS // 2, tick)
            pub.end(s0 + md)
            tick.end(s0 + md)
            c0 = s0 + md + int(k["a_wait"][i])
            c1 = c0 + int(k["a_proc"][i])
            con = (_messaging(t["alerting"], "ticks process", SpanKind.CONSUMER, c0,
                              links=[Link(pub.get_span_context())]) if linked
                   else _messaging(t["alerting"], "ticks process", SpanKind.CONSUMER, c0, pub))
            t["alerting"].start_span("evaluate", trace.set_span_in_context(con), SpanKind.INTERNAL,
                                     start_time=c0 + MS // 2).end(c1 - MS // 2)
            enq = _messaging(t["alerting"], "alerts publish", SpanKind.PRODUCER, c1 - MS // 4, con)
            enq.end(c1)
            con.end(c1)
            alerts.append(enq)
        first = 0
        for g, size in enumerate(k["sizes"]):
            n0, n1 = int(k["g_start"][g]), int(k["g_start"][g] + k["g_dur"][g])
            members = alerts[first:first + int(size)]
            first += int(size)
            if linked:  # one span, linked to every alert of the batch
                _messaging(t["notification"], "alerts process", SpanKind.CONSUMER, n0,
                           links=[Link(a.get_span_context()) for a in members]).end(n1)
            else:
                for a in members:
                    _messaging(t["notification"], "alerts process", SpanKind.CONSUMER, n0, a).end(n1)

    return make


SPEC = """\
name: alerts
sources:
  spans: {{kind: traces, path: "{path}"}}
stages:
  - {{name: market-data, owner: md-team, traces: {{source: spans, service: market-data}}}}
  - name: alerting
    owner: alerts-team
    traces: {{source: spans, service: alerting}}
    objectives: {{p99: 100ms}}
  - {{name: notification, owner: notify-team, traces: {{source: spans, service: notification}}}}
"""


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for shape in ("parent", "linked"):
        tmp = tmp_path_factory.mktemp(shape)
        spool = received_traces(tmp, make_chain(shape == "linked"), CHAIN, grpc_services=())
        spec = tmp / "stream.yaml"
        spec.write_text(SPEC.format(path=spool))
        code = main(["map", "-c", str(spec), "--until", "2026-09-22T00:00:00Z", "--window", "2d",
                     "--out", str(tmp / "out")])
        out[shape] = json.loads((tmp / "out" / "report.json").read_text())
        out[shape]["exit"] = code
        out[shape]["spool"] = spool
    return out


def _part(report: dict, stage: str, part: str) -> dict:
    return next(s for s in report["stages"] if s["name"] == stage)[part]


def _assert_contains(latency: dict, exact: np.ndarray, what: str) -> None:
    assert latency["count"] == exact.size, what
    assert latency["mean"] == pytest.approx(exact.mean(), rel=1e-7), what
    for key, q in (("p50", 0.5), ("p99", 0.99)):
        est = latency[key]
        assert est["low"] <= np.quantile(exact, q) <= est["high"], (what, key, est)
        assert est["value"] == pytest.approx(np.quantile(exact, q), rel=1e-7), (what, key)


@pytest.mark.parametrize("shape", ["parent", "linked"])
def test_every_part_and_the_lead_time_contain_the_known_values(reports: dict, shape: str) -> None:
    exact = _exact(_known())
    r = reports[shape]
    for stage, part in (("market-data", "process"), ("alerting", "wait"), ("alerting", "process"),
                        ("notification", "wait"), ("notification", "process")):
        _assert_contains(_part(r, stage, part), exact[f"{stage} {part}"], f"{shape} {stage} {part}")
    _assert_contains(_part(r, "alerting", "total"), exact["alerting total"], f"{shape} alerting hop")
    _assert_contains(r["end_to_end"], exact["lead"], f"{shape} end to end")
    assert r["end_to_end"]["method"].startswith("samples")
    assert not any(c["code"] in ("incomplete-traces", "no-measurement", "negative-wait") for c in r["checks"])


def _numbers(est: Any) -> Any:
    return {k: v for k, v in est.items() if k != "examples"} if isinstance(est, dict) else est


def test_both_shapes_give_the_same_numbers(reports: dict) -> None:
    a, b = reports["parent"], reports["linked"]
    assert [s["name"] for s in a["stages"]] == [s["name"] for s in b["stages"]]
    for sa, sb in zip(a["stages"], b["stages"], strict=True):
        for part in ("wait", "process", "total"):
            if sa[part] is None:
                assert sb[part] is None
                continue
            for key in ("count", "mean"):
                assert sa[part][key] == pytest.approx(sb[part][key], rel=1e-12), (sa["name"], part, key)
            for p in ("p50", "p99", "p99.99"):  # examples name different traces (tests/analysis/test_examples.py)
                assert _numbers(sa[part][p]) == _numbers(sb[part][p]), (sa["name"], part, p)
    numbers = {k: _numbers(v) for k, v in a["end_to_end"].items() if k not in ("source", "median_examples")}
    assert numbers == {k: _numbers(v) for k, v in b["end_to_end"].items() if k not in ("source", "median_examples")}
    # the provenance says what each number is, and differs where the shapes differ
    assert a["end_to_end"]["source"].startswith("traces: lead time per complete trace")
    assert b["end_to_end"]["source"].startswith("traces: lead time per complete item (traces joined by span links)")
    assert a["flow_efficiency"] == b["flow_efficiency"]


def test_the_hop_objective_the_true_p99_breaks_is_broken_in_both_shapes(reports: dict) -> None:
    true_p99 = np.quantile(_exact(_known())["alerting total"], 0.99)
    assert true_p99 > 0.1
    for shape in ("parent", "linked"):
        obj = next(o for o in reports[shape]["objectives"] if o["target"] == "alerting")
        assert obj["status"] == "broken", shape
        assert obj["low"] > 0.1
        assert reports[shape]["exit"] == 1


def test_discover_drafts_every_stage_of_the_linked_shape(reports: dict, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "stream.yaml"
    assert main(["discover", "--traces", str(reports["linked"]["spool"]), "--write", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "market-data -> alerting" in printed and "alerting -> notification" in printed
    from mapper.core.spec import load_spec

    assert [s.name for s in load_spec(out).stages] == list(CHAIN)


# --- the item graph on hand-made spans: the bad-input checks ---------------------------------


def _batch(spans: list[tuple[int, int, int, str, int, int, int]],
           links: list[tuple[int, int, int]] = ()) -> SpanBatch:  # type: ignore[assignment]
    """Spans (trace, span, parent, service, start, end, kind) and links (row, trace, span)."""
    cols = {"trace_hi": [0] * len(spans), "trace_lo": [s[0] for s in spans], "span_id": [s[1] for s in spans],
            "parent_id": [s[2] for s in spans], "service": [s[3] for s in spans],
            "start_ns": [s[4] for s in spans], "end_ns": [s[5] for s in spans], "kind": [s[6] for s in spans]}
    lk = SpanLinks([x[0] for x in links], [0] * len(links), [x[1] for x in links], [x[2] for x in links])
    return SpanBatch.from_columns(cols, links=lk)


PROD, CONS = 4, 5
UP = {"a": None, "b": "a"}
AB = [StageMatch("a", "a"), StageMatch("b", "b")]


def _codes(table: Any) -> dict[str, str]:
    return {c.code: c.message for c in table.checks}


def test_a_batch_span_is_each_linked_items_process_time() -> None:
    b = _batch([(1, 11, 0, "a", 0, 10, PROD), (2, 21, 0, "a", 5, 20, PROD), (3, 31, 0, "b", 30, 90, CONS)],
               [(2, 1, 11), (2, 2, 21)])
    table = build_trace_table(b, AB, UP)
    assert table.traces == 2 and table.link_edges == 2
    assert sorted(table.stage_frame("b")["wait"].tolist()) == pytest.approx([10e-9, 20e-9])
    assert table.stage_frame("b")["process"].tolist() == pytest.approx([60e-9, 60e-9])
    assert sorted(table.lead.tolist()) == pytest.approx([85e-9, 90e-9])
    assert table.stage_frame("b")["linked"].all()


def test_fan_out_gives_one_lead_time_per_path_and_the_shared_stage_once() -> None:
    b = _batch([(1, 11, 0, "a", 0, 10, PROD), (2, 21, 0, "b", 12, 20, CONS), (3, 31, 0, "b", 15, 40, CONS)],
               [(1, 1, 11), (2, 1, 11)])
    table = build_trace_table(b, AB, UP)
    assert sorted(table.lead.tolist()) == pytest.approx([20e-9, 40e-9])
    assert table.stage_frame("a")["process"].size == 1  # the tick, once
    assert table.stage_frame("b")["process"].size == 2


def test_missing_malformed_duplicate_links_and_cycles_are_counted() -> None:
    b = _batch([(1, 11, 0, "a", 0, 10, PROD), (2, 21, 0, "b", 12, 20, CONS), (3, 31, 0, "b", 30, 40, CONS),
                (4, 41, 0, "a", 0, 5, PROD), (5, 51, 0, "a", 1, 6, PROD)],
               [(1, 1, 11), (1, 1, 11), (2, 9, 99), (2, 0, 0), (3, 5, 51), (4, 4, 41)])
    codes = _codes(build_trace_table(b, AB, UP))
    assert {"link-duplicate", "link-target-missing", "link-malformed", "link-cycle"} <= set(codes)
    assert codes["link-target-missing"].startswith("1 span links")
    assert codes["link-cycle"].startswith("2 traces")
    # the cycle's traces are each their own item, nothing counted twice
    items = build_items(b, np.array([0, 1, 2, 3, 4]), 5)
    assert items.rows is not None and np.bincount(items.rows).max() == 1


def test_skew_across_a_link_is_counted_not_clamped() -> None:
    # The consumer starts before its producer began: only skewed clocks do that (issue 26).
    b = _batch([(1, 11, 0, "a", 10, 20, PROD), (2, 21, 0, "b", 7, 30, CONS)], [(1, 1, 11)])
    table = build_trace_table(b, AB, UP)
    res = part_results(table, "b", "test")
    assert res["wait"].distribution is not None
    assert {c.code for c in res["wait"].checks} == {"negative-wait", "link-clock-skew"}
    assert table.stage_frame("b")["wait"].tolist() == pytest.approx([-13e-9])


def test_a_linked_consumer_starting_before_its_producer_ends_is_not_called_skew() -> None:
    b = _batch([(1, 11, 0, "a", 0, 10, PROD), (2, 21, 0, "b", 7, 20, CONS)], [(1, 1, 11)])
    res = part_results(build_trace_table(b, AB, UP), "b", "test")
    (check,) = res["wait"].checks
    assert check.code == "negative-wait" and "before their hand-over span ends" in check.message


def test_a_spool_of_the_old_schema_still_reads_its_first_links(tmp_path: Path) -> None:
    """Parquet files and write-ahead records written before the ``links`` column existed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from collectors.spool.store import Spool, encode_payload, scan_spool

    def old_payload(b: SpanBatch) -> Any:
        table = pa.ipc.open_stream(encode_payload(b)).read_all().drop_columns(["links"])
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return table, sink.getvalue().to_pybytes()

    t0 = T0
    old_wal = _batch([(1, 11, 0, "a", t0, t0 + 10, PROD), (2, 21, 0, "b", t0 + 20, t0 + 30, CONS)])
    old_wal = SpanBatch.from_columns({**old_wal.columns(), "link_trace_lo": np.array([0, 1], np.uint64),
                                      "link_span_id": np.array([0, 11], np.uint64)})
    old_pq = _batch([(3, 31, 0, "a", t0, t0 + 10, PROD), (4, 41, 0, "b", t0 + 20, t0 + 30, CONS)])
    old_pq = SpanBatch.from_columns({**old_pq.columns(), "link_trace_lo": np.array([0, 3], np.uint64),
                                     "link_span_id": np.array([0, 31], np.uint64)})
    new = _batch([(5, 51, 0, "a", t0, t0 + 10, PROD), (6, 61, 0, "a", t0, t0 + 10, PROD),
                  (7, 71, 0, "b", t0 + 20, t0 + 30, CONS)], [(2, 5, 51), (2, 6, 61)])
    spool_dir = tmp_path / "spool"
    with Spool(spool_dir, compact=False) as spool:
        spool.append_payload(old_payload(old_wal)[1])
        spool.append(new)
    part = spool_dir / "date=2026-09-21" / "hour=00"
    part.mkdir(parents=True)
    pq.write_table(old_payload(old_pq)[0], part / "old.parquet")
    batch = scan_spool(spool_dir).batch
    links = batch.all_links
    got = sorted((int(batch.span_id[r]), int(lo), int(s)) for r, lo, s in
                 zip(links.row, links.trace_lo, links.span_id, strict=True))
    assert got == [(21, 1, 11), (41, 3, 31), (71, 5, 51), (71, 6, 61)]
    table = build_trace_table(batch, AB, UP)
    assert table.traces == 4 and table.lead.size == 4


def test_sampling_is_asked_only_when_traces_are_fewer_than_observations() -> None:
    from mapper.analysis.traces import compare
    from mapper.core.distribution import SampleDistribution

    few, many = SampleDistribution(np.linspace(0.01, 0.02, 50)), SampleDistribution(np.linspace(0.01, 0.02, 200))
    fewer = compare("alerting", "process", many, few, (0.5,))
    # a quarter of the observations: more than any threshold explains (issue 26)
    assert [(c.code, c.message.endswith("sampling?)")) for c in fewer] == [("metrics-traces-count", True),
                                                                           ("tail-sampling-suspected", False)]
    more = compare("alerting", "process", few, many, (0.5,))
    assert [c.code for c in more] == ["traces-exceed-metrics"] and "sampling" not in more[0].message
    same = compare("alerting", "process", few, few, (0.5,))
    assert [c.code for c in same] == ["metrics-traces-count"] and "sampling" not in same[0].message


def test_the_service_graph_has_an_edge_per_linked_producer_and_none_twice() -> None:
    from mapper.analysis.servicegraph import service_graph

    # a batch consumer linked to two producers in other traces; a consumer both child of and
    # linked to its producer (one hand-over, not two)
    b = _batch([(1, 11, 0, "md", 0, 10, PROD), (2, 21, 0, "md", 5, 20, PROD), (3, 31, 0, "alerting", 30, 90, CONS),
                (4, 41, 0, "md", 0, 10, PROD), (4, 42, 41, "alerting", 15, 25, CONS)],
               [(2, 1, 11), (2, 2, 21), (4, 4, 41)])
    edges = [(e.client, e.server, e.connection_type, e.count, sorted(e.waits.tolist())) for e in service_graph(b)]
    assert edges == [("md", "alerting", "messaging_system", 3, pytest.approx([5e-9, 10e-9, 20e-9]))]


INT = 1
ABC = [StageMatch("a", "a"), StageMatch("b", "b"), StageMatch("c", "c")]
UP3 = {"a": None, "b": "a", "c": "b"}


def test_per_message_spans_under_a_batch_keep_each_items_own_path() -> None:
    """A batch receive span linked to two ticks, a per-message span under it linked to its
    own tick, each publishing one alert that a consumer in its own trace takes: two items,
    each reaching only its own alert's consumer."""
    b = _batch([(1, 11, 0, "a", 0, 10, PROD), (2, 21, 0, "a", 5, 20, PROD),
                (3, 31, 0, "b", 30, 90, CONS), (3, 32, 31, "b", 31, 50, INT), (3, 33, 31, "b", 51, 80, INT),
                (3, 34, 32, "b", 45, 50, PROD), (3, 35, 33, "b", 75, 80, PROD),
                (4, 41, 0, "c", 60, 70, CONS), (5, 51, 0, "c", 100, 130, CONS)],
               [(2, 1, 11), (2, 2, 21), (3, 1, 11), (4, 2, 21), (7, 3, 34), (8, 3, 35)])
    table = build_trace_table(b, ABC, UP3)
    assert table.traces == 2
    c = table.stage_frame("c").sort_values("start")
    assert c["wait"].tolist() == pytest.approx([10e-9, 20e-9])  # each from its own alert's end
    assert sorted(table.lead.tolist()) == pytest.approx([90e-9, 125e-9])  # the batch span ends last for item 1


def test_a_batch_span_alone_continues_every_item_of_the_batch() -> None:
    """Without per-message spans the data cannot tell which alert came from which tick: each
    item continues to every consumer of the batch's alerts (the documented rule)."""
    b = _batch([(1, 11, 0, "a", 0, 10, PROD), (2, 21, 0, "a", 5, 20, PROD),
                (3, 31, 0, "b", 30, 90, CONS), (3, 34, 31, "b", 45, 50, PROD), (3, 35, 31, "b", 75, 80, PROD),
                (4, 41, 0, "c", 60, 70, CONS), (5, 51, 0, "c", 100, 130, CONS)],
               [(2, 1, 11), (2, 2, 21), (5, 3, 34), (6, 3, 35)])
    table = build_trace_table(b, ABC, UP3)
    assert table.traces == 4 and table.lead.size == 4


def test_a_cycle_behind_a_root_is_cut_not_followed_round() -> None:
    """Root -> 2 <-> 3 (and 2 forks to 4): followed round, the paths would double each hop."""
    b = _batch([(1, 11, 0, "a", 0, 10, PROD), (2, 21, 0, "b", 20, 30, CONS), (2, 22, 21, "b", 25, 30, PROD),
                (3, 31, 0, "b", 40, 50, CONS), (3, 32, 31, "b", 45, 50, PROD), (4, 41, 0, "b", 60, 70, CONS)],
               [(1, 1, 11), (1, 3, 32), (3, 2, 22), (5, 2, 22), (5, 3, 32)])
    table = build_trace_table(b, AB, UP)
    assert "link-cycle" in _codes(table)
    assert table.traces <= 4
