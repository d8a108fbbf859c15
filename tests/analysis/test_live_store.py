"""The live join store: items joined across requests, the map's values, and its bounds."""

from __future__ import annotations

import numpy as np
import pytest

from mapper.analysis.live import JoinStore, LiveStream, StoreLimits
from mapper.analysis.traces import StageMatch, build_trace_table
from mapper.core.spans import KIND_CONSUMER, KIND_PRODUCER, SpanBatch, SpanLinks

MS = 1_000_000
STREAM = LiveStream(
    "alerts",
    (StageMatch("ingest", "ingest"), StageMatch("alerting", "alerting"), StageMatch("notify", "notify")),
    {"ingest": None, "alerting": "ingest", "notify": "alerting"},
    ("destination",),
)


def chain(i: int, t0: int = 0, skew: int = 0) -> tuple[SpanBatch, SpanBatch]:
    """Item ``i``: ingest (trace A) -> link -> alerting (trace B) -> parent -> notify (trace B).

    Known values: ingest process 10ms; alerting waits 5ms (after the producer's end) and works
    20ms; notify waits 5ms (after alerting's PRODUCER span ends) and works 12ms; lead 52ms.
    Returned as two requests: the producer's trace and the consumer's.
    """
    a_hi, a_lo, b_hi, b_lo = 1, 1000 + 2 * i, 2, 1001 + 2 * i
    producer = SpanBatch.from_columns({
        "trace_hi": [a_hi], "trace_lo": [a_lo], "span_id": [10], "parent_id": [0],
        "start_ns": [t0], "end_ns": [t0 + 10 * MS], "kind": [KIND_PRODUCER], "service": ["ingest"],
        "name": ["publish"], "destination": ["eu"],
    })
    consumer = SpanBatch.from_columns({
        "trace_hi": [b_hi] * 3, "trace_lo": [b_lo] * 3, "span_id": [20, 21, 30], "parent_id": [0, 20, 21],
        "start_ns": [t0 + 15 * MS, t0 + 33 * MS, t0 + 40 * MS - skew],
        "end_ns": [t0 + 35 * MS, t0 + 35 * MS, t0 + 52 * MS - skew],
        "kind": [KIND_CONSUMER, KIND_PRODUCER, KIND_CONSUMER], "service": ["alerting", "alerting", "notify"],
        "name": ["evaluate", "publish", "send"], "destination": ["eu"] * 3,
    }, links=SpanLinks(np.array([0]), np.array([a_hi], np.uint64), np.array([a_lo], np.uint64),
                       np.array([10], np.uint64)))
    return producer, consumer


def by_part(values: tuple) -> dict[tuple[str | None, str], np.ndarray]:
    out: dict[tuple[str | None, str], list[np.ndarray]] = {}
    for v in values:
        out.setdefault((v.stage, v.part), []).append(v.seconds)
    return {k: np.concatenate(v) for k, v in out.items()}


def test_an_item_split_over_requests_gives_the_known_values_once_complete() -> None:
    store = JoinStore(STREAM, StoreLimits(ttl=30, settle=1))
    producer, consumer = chain(0)
    store.accept(consumer, now=0.0)  # the consumer first: its producer arrives later
    assert store.flush(now=0.5).completed == 0
    store.accept(producer, now=2.0)
    assert store.flush(now=2.5).completed == 0  # not quiet for `settle` yet
    out = store.flush(now=3.1)
    assert out.completed == 1 and out.open_items == 0 and out.held_spans == 0
    got = by_part(out.values)
    assert got[("ingest", "process")] == pytest.approx([0.010])
    assert got[("alerting", "wait")] == pytest.approx([0.005])
    assert got[("alerting", "process")] == pytest.approx([0.020])
    assert got[("notify", "wait")] == pytest.approx([0.005])
    assert got[("notify", "process")] == pytest.approx([0.012])
    assert got[(None, "lead")] == pytest.approx([0.052])
    lead = next(v for v in out.values if v.part == "lead")
    assert lead.trace_ids[0] == f"{1:016x}{1000:016x}"  # the item's first stage's trace
    assert lead.labels["destination"][0] == "eu"
    assert ("ingest", "wait") not in got  # a first stage has no wait


def test_live_values_equal_the_maps_values_for_the_same_spans() -> None:
    rng = np.random.default_rng(7)
    store = JoinStore(STREAM, StoreLimits(ttl=30, settle=0))
    batches = []
    for i in range(200):
        p, c = chain(i, t0=int(rng.integers(0, 10**9)), skew=int(rng.integers(0, 8 * MS)))
        batches += [p, c]
    order = rng.permutation(len(batches))
    for k, j in enumerate(order):
        store.accept(batches[j], now=k * 0.001)
    live = by_part(store.flush(now=10.0).values)
    table = build_trace_table(SpanBatch.concat(batches), STREAM.matches, STREAM.upstream)
    for stage in STREAM.stages:
        f = table.stage_frame(stage)
        assert np.sort(live[(stage, "process")]) == pytest.approx(np.sort(f["process"].to_numpy()))
        w = f["wait"].to_numpy()
        if stage != "ingest":
            assert np.sort(live[(stage, "wait")]) == pytest.approx(np.sort(w[~np.isnan(w)]))
    assert np.sort(live[(None, "lead")]) == pytest.approx(np.sort(table.lead))
    # clock skew of up to 8ms against a 5ms wait: negative waits counted, as the map counts them
    assert store.counts.negative_waits["notify"] == table.negative_waits("notify") > 0


def test_spans_of_no_stage_are_counted_not_held() -> None:
    store = JoinStore(STREAM)
    other = SpanBatch.from_columns({"trace_hi": [9], "trace_lo": [9], "span_id": [1], "start_ns": [0],
                                    "end_ns": [1], "service": ["billing"]})
    store.accept(other, now=0.0)
    assert store.counts.spans_unmatched == 1 and store.held_spans == 0


def test_an_item_that_never_completes_expires_and_its_late_consumer_is_counted() -> None:
    store = JoinStore(STREAM, StoreLimits(ttl=5, settle=0))
    producer, consumer = chain(0)
    store.accept(producer, now=0.0)
    assert store.flush(now=4.0).open_items == 1
    out = store.flush(now=6.0)
    assert out.expired == {"ttl": 1} and out.open_items == 0
    store.accept(consumer, now=7.0)  # the producer has gone: this one can never complete
    store.flush(now=20.0)
    assert store.counts.incomplete["ttl"] == 2
    assert store.counts.producer_expired == 1
    assert store.counts.items_completed == 0


def test_the_store_stays_within_its_limits_under_items_that_never_complete() -> None:
    limits = StoreLimits(ttl=60, max_items=500, max_spans=2_000, settle=0)
    store = JoinStore(STREAM, limits)
    peak_held = peak_open = 0
    for second in range(40):
        for i in range(300):  # consumers whose producers never come
            store.accept(chain(second * 300 + i)[1], now=float(second))
        peak_held = max(peak_held, store.held_spans)
        out = store.flush(now=float(second) + 0.5)
        peak_open = max(peak_open, out.open_items)
    assert peak_open <= limits.max_items
    assert store.held_spans <= limits.max_spans
    assert peak_held <= 2 * limits.max_spans  # held after the last flush + taken in since
    assert store.counts.incomplete["limit"] > 0
    assert store.counts.items_completed == 0
    total = 40 * 300
    assert store.counts.incomplete["limit"] + store.open_items + store.counts.spans_dropped // 3 >= total * 0.99


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="ttl"):
        StoreLimits(ttl=0)


def _extra_notify(i: int, span_id: int, t0: int = 0) -> SpanBatch:
    """One more notify span in item ``i``'s consumer trace (a retry, a trickle)."""
    return SpanBatch.from_columns({
        "trace_hi": [2], "trace_lo": [1001 + 2 * i], "span_id": [span_id], "parent_id": [21],
        "start_ns": [t0 + 60 * MS], "end_ns": [t0 + 61 * MS], "kind": [KIND_CONSUMER], "service": ["notify"],
        "name": ["send"], "destination": ["eu"],
    })


def test_a_complete_group_that_never_goes_quiet_expires_as_busy_not_emitted() -> None:
    store = JoinStore(STREAM, StoreLimits(ttl=5, settle=1))
    producer, consumer = chain(0)
    store.accept(producer, now=0.0)
    store.accept(consumer, now=0.0)
    for k in range(1, 12):  # a span every 0.5s: never quiet for `settle`
        store.accept(_extra_notify(0, 100 + k), now=k * 0.5)
        out = store.flush(now=k * 0.5 + 0.1)
        assert out.completed == 0
    assert store.counts.incomplete == {"busy": 1}  # its own reason: every stage was there
    assert store.open_items == 0 and store.counts.items_completed == 0
    assert store.counts.spans_late == 1  # the span after it was dropped: not a new group


def test_a_span_after_its_item_was_emitted_is_late_not_a_new_group() -> None:
    store = JoinStore(STREAM, StoreLimits(ttl=5, settle=0))
    producer, consumer = chain(0)
    store.accept(producer, now=0.0)
    store.accept(consumer, now=0.0)
    assert store.flush(now=0.5).completed == 1
    store.accept(_extra_notify(0, 200), now=1.0)  # the consumer trace again
    late_consumer = chain(0)[1].take(np.array([0]))  # a consumer linked to the emitted producer
    store.accept(late_consumer, now=1.0)
    out = store.flush(now=1.5)
    assert out.completed == 0 and out.open_items == 0 and out.held_spans == 0
    assert store.counts.spans_late == 2
    # a consumer in a trace of its own, linked to the emitted producer: late as well
    linked = SpanBatch.from_columns({"trace_hi": [7], "trace_lo": [7], "span_id": [1], "parent_id": [0],
                                     "start_ns": [20 * MS], "end_ns": [21 * MS], "kind": [KIND_CONSUMER],
                                     "service": ["alerting"], "name": ["evaluate"], "destination": ["eu"]},
                                    links=SpanLinks(np.array([0]), np.array([1], np.uint64),
                                                    np.array([1000], np.uint64), np.array([10], np.uint64)))
    store.accept(linked, now=2.0)
    store.flush(now=2.5)
    assert store.counts.spans_late == 3
    store.flush(now=30.0)
    assert not store.counts.incomplete  # never counted as an incomplete group
    # an unrelated item afterwards is not late
    p1, c1 = chain(1)
    store.accept(p1, now=31.0)
    store.accept(c1, now=31.0)
    assert store.flush(now=31.5).completed == 1 and store.counts.spans_late == 3


def test_an_item_that_stops_at_the_first_stage_is_complete_there() -> None:
    """A tick that nothing takes on (no hand-over span): complete at ingest once quiet, counted
    stopped there; no lead time (it did not reach the stream's end)."""
    store = JoinStore(STREAM, StoreLimits(ttl=30, settle=1))
    tick = SpanBatch.from_columns({"trace_hi": [5], "trace_lo": [5], "span_id": [1], "parent_id": [0],
                                   "start_ns": [0], "end_ns": [3 * MS], "kind": [2], "service": ["ingest"],
                                   "name": ["tick"]})
    store.accept(tick, now=0.0)
    assert store.flush(now=0.5).completed == 0  # not quiet yet
    out = store.flush(now=1.5)
    assert out.completed == 1 and out.outcomes == {"ingest": {"passed": 0, "stopped": 1, "failed": 0, "retried": 0}}
    assert store.counts.lead_times == 0 and store.inventory == {}
