"""Issue 26: the first stage's wait is `-`; a check says why, and when the spans hold its
hand-over from a service that is not a stage (a `feed`), proposes that service."""

from __future__ import annotations

from mapper.analysis.traces import StageMatch, build_trace_table
from mapper.core.spans import SpanBatch

MS = 1_000_000
PROD, CONS, SERVER = 4, 5, 2
MATCHES = [StageMatch("ingest", "ingest"), StageMatch("alerting", "alerting")]
UP = {"ingest": None, "alerting": "ingest"}


def _batch(with_feed: bool) -> SpanBatch:
    spans = []
    for i in range(4):
        t, tr = i * 1000 * MS, i + 1
        if with_feed:
            spans.append((tr, 10 * i + 9, 0, "feed", t, t + 2 * MS, PROD))
        spans += [(tr, 10 * i + 1, 10 * i + 9 if with_feed else 0, "ingest", t + 7 * MS, t + 10 * MS,
                   CONS if with_feed else SERVER),
                  (tr, 10 * i + 2, 10 * i + 1, "alerting", t + 12 * MS, t + 20 * MS, SERVER)]
    cols = {"trace_hi": [0] * len(spans), "trace_lo": [s[0] for s in spans], "span_id": [s[1] for s in spans],
            "parent_id": [s[2] for s in spans], "service": [s[3] for s in spans],
            "start_ns": [s[4] for s in spans], "end_ns": [s[5] for s in spans], "kind": [s[6] for s in spans]}
    return SpanBatch.from_columns(cols)


def test_a_producer_outside_the_stream_is_proposed_as_the_first_stage_wait_source() -> None:
    checks = [c for c in build_trace_table(_batch(True), MATCHES, UP).checks if c.stage == "ingest"]
    (check,) = checks
    assert check.code == "first-stage-wait-not-measured" and check.part == "wait"
    assert "4 of its 4 spans are handed over by spans of 'feed'" in check.message
    assert "median hand-over 0.005s" in check.message
    assert "{name: feed, traces: {service: feed}} as a stage before ingest" in check.message


def test_a_first_stage_with_no_traced_hand_over_says_why_it_has_no_wait() -> None:
    checks = [c for c in build_trace_table(_batch(False), MATCHES, UP).checks if c.stage == "ingest"]
    assert [c.code for c in checks] == ["first-stage-no-wait"]
    assert "hand-over into the stream is not traced" in checks[0].message
    assert not [c for c in build_trace_table(_batch(False), MATCHES, UP).checks if c.stage == "alerting"]


def test_partitions_say_a_first_stage_check_once() -> None:
    from mapper.analysis.partition import PartVectors, sum_parts
    from mapper.core.model import Check

    c = Check("info", "first-stage-no-wait", "ingest wait: not measured", "ingest", "wait")
    other = Check("warning", "link-cycle", "2 traces", None)
    summed = sum_parts([PartVectors({}, checks=(c, other)), PartVectors({}, checks=(c, other))], 2)
    assert [x.code for x in summed.checks] == ["first-stage-no-wait", "link-cycle", "link-cycle"]
    assert summed.checks[0].message.startswith("partition 1/2: ")
