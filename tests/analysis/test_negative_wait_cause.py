"""Issue 26: a negative wait names its cause. On one host a consumer (Celery) can start before
its producer's publish span ends, never before it began; a start before the producer began is
clock skew between hosts. The check says by how much and what the wait is measured from."""

from __future__ import annotations

from mapper.analysis.traces import StageMatch, build_trace_table, part_results
from mapper.core.spans import SpanBatch

MS = 1_000_000
PROD, CONS = 4, 5
MATCHES = [StageMatch("web", "web"), StageMatch("worker", "celery")]
UP = {"web": None, "worker": "web"}


def _items(consumer_start_ms: list[float]) -> SpanBatch:
    """Per item: a web PRODUCER span 0..10 ms and a celery CONSUMER child starting at the given ms."""
    spans = []
    for i, c0 in enumerate(consumer_start_ms):
        t = i * 1000 * MS
        spans += [(i + 1, 10 * i + 1, 0, "web", t, t + 10 * MS, PROD),
                  (i + 1, 10 * i + 2, 10 * i + 1, "celery", t + int(c0 * MS), t + int((c0 + 20) * MS), CONS)]
    cols = {"trace_hi": [0] * len(spans), "trace_lo": [s[0] for s in spans], "span_id": [s[1] for s in spans],
            "parent_id": [s[2] for s in spans], "service": [s[3] for s in spans],
            "start_ns": [s[4] for s in spans], "end_ns": [s[5] for s in spans], "kind": [s[6] for s in spans]}
    return SpanBatch.from_columns(cols)


def _wait_checks(starts: list[float]) -> list:
    return list(part_results(build_trace_table(_items(starts), MATCHES, UP), "worker", "test")["wait"].checks)


def test_one_host_early_consumer_is_not_called_clock_skew() -> None:
    # Celery: the worker starts 7-9 ms into a 10 ms publish span (the producer still waits for the ack).
    (check,) = _wait_checks([7.0, 8.0, 9.0, 12.0])
    assert check.code == "negative-wait"
    assert "skew between hosts" not in check.message.replace("or skew smaller", "")
    assert "3 of 4 items start before their hand-over span ends" in check.message
    assert "median 0.002s, up to 0.003s" in check.message
    assert "measured from the end of its parent or linked span in the upstream stage (3)" in check.message


def test_two_host_skew_is_called_clock_skew() -> None:
    # The worker's clock is behind: it "starts" before the publish span began.
    (check,) = _wait_checks([-5.0, 15.0])
    assert check.code == "negative-wait"
    assert "1 of 2 items start before their hand-over span even began (by up to 0.005s)" in check.message
    assert "clock skew between hosts" in check.message


def test_both_shapes_in_one_window_give_one_check_each() -> None:
    checks = _wait_checks([8.0, -2.0, 20.0])
    assert [c.code for c in checks] == ["negative-wait", "negative-wait"]
    assert "hand-over span ends" in checks[0].message and "even began" in checks[1].message
