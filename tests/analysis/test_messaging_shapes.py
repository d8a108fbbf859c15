"""OpenTelemetry messaging shapes (tests/messaging.py, made by the real SDK) through the map's
kernel, the examples and the live join store: every value is the known one, the live store
emits exactly the map's values for the same spans (or counts the item as incomplete or late,
never a different value), and the examples name every trace of their item."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mapper.analysis.examples import END_TO_END, MEDIAN, Threshold, choose
from mapper.analysis.latency import MapInput, analyse
from mapper.analysis.live import JoinStore, StoreLimits, Values
from mapper.analysis.traces import build_trace_table, part_results
from mapper.core.distribution import SampleDistribution
from mapper.core.model import MeasurementResult, Window
from mapper.core.spans import SpanBatch
from mapper.core.spec import loads_spec
from tests.messaging import (
    STREAM,
    T0,
    Known,
    batch_consumer,
    batch_producer,
    batch_receive_per_message,
    child_consumers,
    fan_in_fan_out,
)


def _map_values(b: SpanBatch) -> dict[tuple[str | None, str], list[float]]:
    t = build_trace_table(b, STREAM.matches, STREAM.upstream)
    out: dict[tuple[str | None, str], list[float]] = {}
    for stage in STREAM.stages:
        f = t.stage_frame(stage)
        out[(stage, "process")] = f["process"].tolist()
        w = f["wait"].to_numpy()
        if (~np.isnan(w)).any():
            out[(stage, "wait")] = w[~np.isnan(w)].tolist()
    out[(None, "lead")] = t.lead.tolist()
    return out


def _live_values(values: tuple[Values, ...]) -> dict[tuple[str | None, str], list[float]]:
    out: dict[tuple[str | None, str], list[float]] = {}
    for v in values:
        out.setdefault((v.stage, v.part), []).extend(v.seconds.tolist())
    return out


def _same(got: dict, want: dict, what: str) -> None:
    assert set(got) == set(want), what
    for key in want:
        assert sorted(got[key]) == pytest.approx(sorted(want[key]), abs=1e-9), (what, key)


def _within(got: dict, want: dict, what: str) -> None:
    """Every value of ``got`` is one of ``want``'s (a multiset subset): nothing different."""
    for key, vals in got.items():
        pool = Counter(round(v, 9) for v in want.get(key, []))
        for v in vals:
            assert pool[round(v, 9)] > 0, (what, key, v, sorted(want.get(key, [])))
            pool[round(v, 9)] -= 1


def _requests(b: SpanBatch, n: int, rng: np.random.Generator) -> list[SpanBatch]:
    """The spans cut into ``n`` requests of random rows (a batch's spans from several
    exporters), in random order."""
    cut = rng.integers(0, n, len(b))
    return [b.take(np.flatnonzero(cut == k)) for k in rng.permutation(n) if (cut == k).any()]


SHAPES = {
    "batch consumer N=1": lambda: batch_consumer(1),
    "batch consumer N=5": lambda: batch_consumer(5),
    "batch consumer N=100": lambda: batch_consumer(100),
    "batch producer of 6": lambda: batch_producer(6),
    "batch producer of 100": lambda: batch_producer(100),
    "child consumers": lambda: child_consumers(20),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_map_gives_the_known_values(shape: str) -> None:
    b, known = SHAPES[shape]()
    _same(_map_values(b), known.parts, shape)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_live_values_equal_the_maps_when_spans_arrive_split_and_out_of_order(shape: str) -> None:
    b, known = SHAPES[shape]()
    rng = np.random.default_rng(5)
    store = JoinStore(STREAM, StoreLimits(ttl=30, settle=1))
    values: list[Values] = []
    for k, req in enumerate(_requests(b, 7, rng)):
        store.accept(req, now=k * 0.1)
        out = store.flush(now=k * 0.1 + 0.05)
        values += out.values
    values += store.flush(now=5.0).values
    _same(_live_values(tuple(values)), known.parts, shape)
    assert not store.counts.incomplete and store.counts.spans_late == 0


def test_clock_skew_gives_the_maps_negative_waits_live_too() -> None:
    b, known = batch_consumer(5, skew=40 * 1_000_000)  # billing's clock 40ms behind: waits < 0
    waits = known.parts[("billing", "wait")]
    assert min(waits) < 0
    want = _map_values(b)
    assert sorted(want[("billing", "wait")]) == pytest.approx(sorted(waits), abs=1e-9)
    store = JoinStore(STREAM, StoreLimits(ttl=30, settle=0))
    for k, req in enumerate(_requests(b, 4, np.random.default_rng(1))):
        store.accept(req, now=float(k))
    _same(_live_values(store.flush(now=10.0).values), want, "skew live")
    assert store.counts.negative_waits["billing"] == sum(w < 0 for w in waits)


def test_a_batch_consumer_linked_to_producers_that_never_arrive() -> None:
    b, known = batch_consumer(5, missing=2)  # 2 of the 5 linked producers outside the window
    _same(_map_values(b), known.parts, "missing map")
    store = JoinStore(STREAM, StoreLimits(ttl=30, settle=0))
    store.accept(b, now=0.0)
    _same(_live_values(store.flush(now=1.0).values), known.parts, "missing live")


def test_a_consumer_whose_only_producer_never_arrives_is_incomplete_live() -> None:
    b, _ = batch_consumer(1, missing=1)
    store = JoinStore(STREAM, StoreLimits(ttl=5, settle=0))
    store.accept(b, now=0.0)
    assert store.flush(now=1.0).completed == 0
    out = store.flush(now=6.0)
    assert out.values == () and out.expired == {"ttl": 1}


def test_fan_out_consumers_arriving_after_the_item_was_emitted_are_late_never_different() -> None:
    b, known = batch_producer(6)
    order = np.argsort(b.start_ns, kind="stable")
    first, rest = b.take(order[: len(b) // 2]), b.take(order[len(b) // 2:])
    store = JoinStore(STREAM, StoreLimits(ttl=30, settle=1))
    store.accept(first, now=0.0)
    values = list(store.flush(now=2.0).values)
    store.accept(rest, now=3.0)
    values += store.flush(now=5.0).values
    values += store.flush(now=40.0).values
    got = _live_values(tuple(values))
    _within(got, known.parts, "fan-out")
    held = store.counts
    assert held.items_completed + held.spans_late + sum(held.incomplete.values()) > 0


def _lead_thresholds(known: Known, q: float) -> dict:
    leads = np.array(known.parts[(None, "lead")])
    return {(END_TO_END, "lead", 0.99): Threshold(float(np.quantile(leads, q)))}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_examples_name_every_trace_of_their_item_and_add_up(shape: str) -> None:
    b, known = SHAPES[shape]()
    table = build_trace_table(b, STREAM.matches, STREAM.upstream)
    th = _lead_thresholds(known, 0.5)
    ex = choose(table, th, 3).get(END_TO_END, "lead", 0.99)
    assert ex, shape
    by_value = {round(v, 9): ids for v, ids in known.items}
    for e in ex:
        assert e.value >= th[(END_TO_END, "lead", 0.99)].low
        assert e.lead == pytest.approx(e.value, abs=1e-9)
        assert set(e.trace_ids) == by_value[round(e.value, 9)], (shape, e)
        assert e.unaccounted is not None
        total = sum((s.wait or 0.0) + s.process for s in e.stages) + e.unaccounted
        assert total == pytest.approx(e.lead, abs=1e-9)
        assert [s.stage for s in e.stages] == list(STREAM.stages)


def _huge_trace(n: int) -> SpanBatch:
    """One item in one trace of ``n`` spans: orders -> billing (child) -> mailer (child), then
    ``n - 3`` more mailer spans (a fan of sends), the last ending 1 s after the item began."""
    ms = 1_000_000
    k = n - 3
    start = np.r_[0, 5 * ms, 9 * ms, 10 * ms + np.arange(k) * (990 * ms // max(k, 1))]
    end = np.r_[4 * ms, 8 * ms, 12 * ms, start[3:] + ms]
    end[-1] = 1000 * ms
    return SpanBatch.from_columns({
        "trace_hi": [7] * n, "trace_lo": [7] * n, "span_id": np.arange(1, n + 1),
        "parent_id": np.r_[0, 1, 2, np.full(k, 3)], "start_ns": start, "end_ns": end,
        "kind": [0] * n, "service": ["orders", "billing"] + ["mailer"] * (n - 2), "name": ["x"] * n})


def test_a_trace_of_100k_spans_gives_the_maps_values_live() -> None:
    b = _huge_trace(100_000)
    store = JoinStore(STREAM, StoreLimits(ttl=30, settle=0, max_spans=200_000))
    for k, req in enumerate(_requests(b, 10, np.random.default_rng(3))):
        store.accept(req, now=float(k) * 0.01)
    out = store.flush(now=1.0)
    _same(_live_values(out.values), _map_values(b), "100k spans")
    assert _live_values(out.values)[(None, "lead")] == pytest.approx([b.end_ns.max() / 1e9])
    assert store.held_spans == 0


def test_a_trace_cut_by_the_span_limit_is_never_emitted_with_a_partial_value() -> None:
    b = _huge_trace(100_000)  # more spans than the store may take in between two flushes
    store = JoinStore(STREAM, StoreLimits(ttl=30, settle=0, max_spans=50_000))
    store.accept(b, now=0.0)
    out = store.flush(now=1.0)
    assert out.values == () and out.completed == 0  # its last spans were dropped: its lead unknown
    assert store.counts.spans_dropped == 50_000
    assert store.counts.incomplete["limit"] == 1
    late = _huge_trace(10).take(np.array([9]))  # one more span of it afterwards: not a new item
    store.accept(late, now=2.0)
    assert store.flush(now=3.0).values == () and store.flush(now=60.0).values == ()


def _link_flood(second: int, n: int, links: int) -> SpanBatch:
    """``n`` billing batch consumers, each in its own trace and linked to ``links`` producers
    that never arrive (a consumer group fed by a topic whose producers are not traced)."""
    rows = np.arange(n)
    base = second * n + rows
    link_rows = np.repeat(rows, links)
    from mapper.core.spans import SpanLinks
    return SpanBatch.from_columns({
        "trace_hi": np.full(n, 3), "trace_lo": base + 1, "span_id": np.full(n, 1), "parent_id": np.zeros(n, int),
        "start_ns": np.zeros(n, int), "end_ns": np.full(n, 5_000_000), "kind": np.full(n, 5),
        "service": ["billing"] * n, "name": ["orders process"] * n},
        links=SpanLinks(link_rows, np.full(link_rows.size, 4, np.uint64),
                        (np.repeat(base, links) * 1000 + np.tile(np.arange(links), n)).astype(np.uint64),
                        np.full(link_rows.size, 9, np.uint64)))


def test_a_flood_of_link_only_consumers_keeps_the_store_bounded_links_included() -> None:
    limits = StoreLimits(ttl=60, max_items=5_000, max_spans=2_000, settle=0)
    store = JoinStore(STREAM, limits)
    peak = 0
    for second in range(20):
        for _ in range(3):
            store.accept(_link_flood(second, 1_000, 100), now=float(second))
        pending = sum(len(c[0].all_links) + len(c[0]) for c in store._chunks)
        peak = max(peak, pending)
        store.flush(now=second + 0.5)
        held = store._held
        peak = max(peak, (len(held[0].all_links) + len(held[0])) if held else 0)
    assert store.counts.items_completed == 0
    # spans and their links together stay within the limits (a link costs about what a span does)
    assert peak <= 2 * limits.max_spans


@pytest.mark.parametrize("shape", ["batch consumer N=5", "child consumers"])
def test_a_stage_whose_entry_span_comes_in_a_later_export_is_not_emitted_from_its_child(shape: str) -> None:
    """The SDK's batch processor exports each service on its own timer (5 s by default), so
    billing's CONSUMER span may come in a later export than its own publish child (which ended
    first) and the mailer's spans. Until it comes, the billing stage is only that child: its
    wait and process would be wrong. The store waits for an in-process parent (the parent of an
    INTERNAL, CLIENT or PRODUCER span is in its own service, so in its stage)."""
    b, known = SHAPES[shape]()
    entry = (b.service == "billing") & (b.kind == 5)  # billing's CONSUMER spans
    store = JoinStore(STREAM, StoreLimits(ttl=30, settle=1))
    store.accept(b.take(np.flatnonzero(~entry)), now=0.0)
    values = list(store.flush(now=2.0).values)
    assert values == []  # nothing emitted from a stage without its entry span
    store.accept(b.take(np.flatnonzero(entry)), now=4.0)  # the next export of billing
    values += store.flush(now=4.5).values
    values += store.flush(now=6.0).values
    _same(_live_values(tuple(values)), known.parts, shape)
    assert store.counts.spans_late == 0 and not store.counts.incomplete


@pytest.mark.parametrize("shape", list(SHAPES))
def test_an_export_retried_after_a_timeout_counts_once(shape: str) -> None:
    """An OTLP exporter retries a request whose answer timed out: the spans arrive twice."""
    b, known = SHAPES[shape]()
    reqs = _requests(b, 4, np.random.default_rng(11))
    store = JoinStore(STREAM, StoreLimits(ttl=30, settle=1))
    for k, req in enumerate([*reqs, reqs[0]]):
        store.accept(req, now=k * 0.2)
    values = store.flush(now=5.0).values
    _same(_live_values(values), known.parts, shape)
    _same(_map_values(SpanBatch.concat([b, reqs[0]])), known.parts, shape)


@pytest.mark.parametrize("n", [5, 100])
def test_a_batch_consumers_wait_examples_name_the_producer_they_waited_for(n: int) -> None:
    b, known = batch_consumer(n)
    table = build_trace_table(b, STREAM.matches, STREAM.upstream)
    waits = np.array([w for w, _ in known.waits])
    for part in ("wait", "hop"):
        key = ("billing", part, 0.99)
        th = {key: Threshold(float(np.quantile(waits, 0.5)) + (0.007 if part == "hop" else 0.0))}
        ex = choose(table, th, 3).get(*key)
        assert ex
        by_wait = {round(w, 9): ids for w, ids in known.waits}
        for e in ex:
            assert e.value >= th[key].low
            wait = e.value - (0.007 if part == "hop" else 0.0)
            assert set(e.trace_ids) == by_wait[round(wait, 9)], (part, e)
            billing = next(s for s in e.stages if s.stage == "billing")
            assert billing.wait == pytest.approx(wait, abs=1e-9)


@pytest.mark.parametrize("n", [1, 5, 100])
def test_batch_receive_with_per_message_spans_live_equals_the_map_and_examples_name_each_path(n: int) -> None:
    b, known = batch_receive_per_message(n)
    want = _map_values(b)
    assert sorted(want[("mailer", "wait")]) == pytest.approx(sorted(known.parts[("mailer", "wait")]), abs=1e-9)
    assert sorted(want[(None, "lead")]) == pytest.approx(sorted(v for v, _ in known.items), abs=1e-9)
    store = JoinStore(STREAM, StoreLimits(ttl=30, settle=1))
    values: list[Values] = []
    for k, req in enumerate(_requests(b, 6, np.random.default_rng(n))):
        store.accept(req, now=k * 0.1)
        values += store.flush(now=k * 0.1 + 0.05).values
    values += store.flush(now=5.0).values
    _same(_live_values(tuple(values)), want, f"receive+process n={n}")
    table = build_trace_table(b, STREAM.matches, STREAM.upstream)
    th = {(END_TO_END, "lead", 0.99): Threshold(float(np.quantile([v for v, _ in known.items], 0.5)))}
    by_value = {round(v, 9): ids for v, ids in known.items}
    for e in choose(table, th, 3).get(END_TO_END, "lead", 0.99):
        assert set(e.trace_ids) == by_value[round(e.value, 9)]  # its orders trace, the batch's, its mail's
        total = sum((s.wait or 0.0) + s.process for s in e.stages) + (e.unaccounted or 0.0)
        assert total == pytest.approx(e.value, abs=1e-9)


MIXED = """\
name: orders
sources:
  spans: {kind: traces, path: ./spool}
  prom: {kind: prometheus, url: "http://127.0.0.1:9090"}
stages:
  - {name: orders, traces: {source: spans, service: orders}}
  - {name: billing, traces: {source: spans, service: billing}}
  - {name: mailer, process: {source: prom, histogram: mailer_seconds}}
"""


def test_lead_examples_only_where_the_lead_time_is_the_traces() -> None:
    """Two stages traced, the third from a metric: the lead time is a convolution, and the
    traces' items only span the traced stages. Their partial lead is not a lead-time example."""
    b, _ = child_consumers(200)
    spec = loads_spec(MIXED, "s.yaml")
    two = STREAM.matches[:2]
    table = build_trace_table(b, two, {"orders": None, "billing": "orders"})
    results = {(s, p): r for s in ("orders", "billing") for p, r in part_results(table, s, "traces").items()}
    mail = np.random.default_rng(2).uniform(0.0001, 0.0002, 200)  # small: the partial leads would qualify
    results[("mailer", "process")] = MeasurementResult(SampleDistribution(mail), "prom: mailer_seconds")
    lm = analyse(spec, Window(T0 / 1e9 - 60, T0 / 1e9 + 3600), MapInput(results, table))
    assert lm.end_to_end_method == "convolution"
    assert lm.examples is not None
    assert not lm.examples.get(END_TO_END, "lead", 0.99) and not lm.examples.get(END_TO_END, "lead", MEDIAN)
    assert lm.examples.get("billing", "wait", 0.99)  # the traced parts keep theirs


@pytest.mark.parametrize(("n_in", "n_out"), [(5, 3), (100, 2), (3, 10)])
def test_fan_in_then_fan_out_live_equals_the_map(n_in: int, n_out: int) -> None:
    b = fan_in_fan_out(n_in, n_out)
    want = _map_values(b)
    store = JoinStore(STREAM, StoreLimits(ttl=30, settle=1))
    values: list[Values] = []
    for k, req in enumerate(_requests(b, 5, np.random.default_rng(n_in))):
        store.accept(req, now=k * 0.1)
        values += store.flush(now=k * 0.1 + 0.05).values
    values += store.flush(now=5.0).values
    _same(_live_values(tuple(values)), want, f"fan-in {n_in} fan-out {n_out}")


@pytest.mark.parametrize("shape", ["batch producer of 6", "batch receive per message"])
def test_the_slowest_branch_of_a_group_is_not_censored(shape: str) -> None:
    """A group holding several items (a batch, a fan-out) has every stage as soon as one of its
    items is through; the slowest item's last span comes later (its queue was long: the tail).
    Emitting the group then would drop that item as late, so the live tail would miss exactly
    the slow items. The group waits until each of its items is through (or ttl)."""
    b, _ = SHAPES[shape]() if shape in SHAPES else batch_receive_per_message(6)
    mailer = np.flatnonzero(b.service == "mailer")
    slowest = mailer[np.argmax(b.end_ns[mailer])]
    slow_trace = (b.trace_hi == b.trace_hi[slowest]) & (b.trace_lo == b.trace_lo[slowest])
    slow = slow_trace & (b.service == "mailer")
    store = JoinStore(STREAM, StoreLimits(ttl=30, settle=1))
    store.accept(b.take(np.flatnonzero(~slow)), now=0.0)
    values = list(store.flush(now=2.0).values)
    store.accept(b.take(np.flatnonzero(slow)), now=3.0)  # 3 s later: after `settle`
    values += store.flush(now=3.5).values
    values += store.flush(now=5.0).values
    _same(_live_values(tuple(values)), _map_values(b), shape)
    assert store.counts.spans_late == 0


def test_a_message_whose_consumer_is_missing_is_not_paired_with_the_others_consumers() -> None:
    """Batch receive with per-message spans: message k's mailer is not in the data (not
    sampled, outside the window). Its path ends in the batch's trace; it must not continue
    through the other messages' publishes (5 phantom items with the others' mail times)."""
    b, known = batch_receive_per_message(6)
    mailer = np.flatnonzero(b.service == "mailer")
    gone = mailer[np.argmax(b.end_ns[mailer])]
    lost = (b.trace_hi == b.trace_hi[gone]) & (b.trace_lo == b.trace_lo[gone])
    table = build_trace_table(b.take(np.flatnonzero(~lost)), STREAM.matches, STREAM.upstream)
    assert table.traces == 6 and table.lead.size == 5
    lost_id = f"{int(b.trace_hi[gone]):016x}{int(b.trace_lo[gone]):016x}"
    leads = sorted(v for v, ids in known.items if lost_id not in ids)
    assert sorted(table.lead) == pytest.approx(leads, abs=1e-9)
    assert len(table.stage_frame("mailer")) == 5 and len(table.stage_frame("billing")) == 6


def test_a_branch_that_never_finishes_lets_the_others_out_at_ttl() -> None:
    b, _ = batch_producer(6)
    mailer = np.flatnonzero(b.service == "mailer")
    never = mailer[np.argmax(b.end_ns[mailer])]
    rest = b.take(np.flatnonzero(np.arange(len(b)) != never))
    store = JoinStore(STREAM, StoreLimits(ttl=10, settle=1))
    store.accept(rest, now=0.0)
    assert store.flush(now=5.0).values == ()  # waiting for its sixth item
    out = store.flush(now=11.0)
    assert out.completed == 5 and out.expired == {"ttl": 1}
    got = _live_values(out.values)
    _same(got, _map_values(rest), "at ttl")
    assert len(got[(None, "lead")]) == 5
