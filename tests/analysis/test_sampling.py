"""Sampled traces weigh by their adjusted count (issue 26): counts are estimates of the items
that flowed, percentiles and intervals stay those of the items actually sampled."""

from __future__ import annotations

import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collectors.otlp.protobuf import decode_protobuf
from mapper.analysis.partition import UNWEIGHTED, partition_vectors, sum_parts
from mapper.analysis.sampling import WeightedSamples, adjusted_counts, sampled_count, weighted_samples
from mapper.analysis.traces import StageMatch, build_trace_table, compare, part_results
from mapper.core.distribution import SampleDistribution
from mapper.core.spans import TH_NOT_SAMPLED, TH_UNKNOWN, SpanBatch

T0 = 1_700_000_000_000_000_000
STAGES = [StageMatch("alerting", "alerting")]
UP = {"alerting": None}


def _request(n: int, states: list[str], policy: str | None = None) -> bytes:
    """``n`` one-span traces of the alerting service, durations 1..n ms, trace state cycling."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "alerting"
    ss = rs.scope_spans.add()
    if policy:
        kv = ss.scope.attributes.add()
        kv.key, kv.value.string_value = "tailsampling.policy", policy
    for i in range(n):
        s = ss.spans.add()
        s.trace_id, s.span_id = (i + 1).to_bytes(16, "big"), (i + 1).to_bytes(8, "big")
        s.start_time_unix_nano = T0 + i * 10_000_000
        s.end_time_unix_nano = s.start_time_unix_nano + (i + 1) * 1_000_000
        s.name, s.trace_state, s.flags = "evaluate", states[i % len(states)], 0x101
    return req.SerializeToString()


def _process(body: bytes) -> tuple[object, list[str]]:
    table = build_trace_table(decode_protobuf(body).batch, STAGES, UP)
    result = part_results(table, "alerting", "test")["process"]
    return result.distribution, [c.code for c in result.checks]


def test_sampled_spans_with_th_give_counts_weighted_by_the_adjusted_count() -> None:
    # th:c rejects 12/16 of the traces: probability 1/4, each sampled item stands for 4
    dist, codes = _process(_request(400, ["ot=th:c"]))
    plain = SampleDistribution(np.arange(1, 401) / 1000)
    assert isinstance(dist, WeightedSamples)
    assert dist.count == pytest.approx(1600) and dist.sampled == 400
    for q in (0.5, 0.99):
        got, ref = dist.quantile(q), plain.quantile(q)
        # the estimate and its interval are the sampled items', the reported n the weighted one
        assert (got.value, got.low, got.high) == pytest.approx((ref.value, ref.low, ref.high))
        assert got.count == pytest.approx(1600)
    assert dist.quantile(0.9999).value is None  # 400 sampled items cannot give p99.99, whatever they weigh
    assert "sampled-traces-weighted" in codes


def test_th_zero_and_no_tracestate_are_unweighted() -> None:
    for states in (["ot=th:0"], [""]):
        dist, codes = _process(_request(50, states))
        assert type(dist) is SampleDistribution and dist.count == 50
        assert not any(c.startswith("sampl") for c in codes)


def test_mixed_probabilities_weight_the_quantile_and_keep_the_interval_conservative() -> None:
    # odd traces at 1/2 (th:8), even at 1: the odd (slower half of each pair) weigh twice
    dist, codes = _process(_request(1000, ["ot=th:8", "ot=th:0"]))
    assert isinstance(dist, WeightedSamples) and dist.count == pytest.approx(1500)
    plain = SampleDistribution(np.arange(1, 1001) / 1000)
    for q in (0.5, 0.9):
        got, ref = dist.quantile(q), plain.quantile(q)
        values = np.arange(1, 1001) / 1000
        w = np.where(np.arange(1000) % 2 == 0, 2.0, 1.0)
        expected = values[np.searchsorted(np.cumsum(w) / w.sum(), q)]
        assert got.value == pytest.approx(expected)
        assert got.low is not None and ref.low is not None and got.low <= ref.low
        assert got.high is not None and ref.high is not None and got.high >= ref.high
    assert "sampling-mixed-probabilities" in codes


def test_items_of_unknown_sampling_beside_weighted_ones_are_said() -> None:
    dist, codes = _process(_request(100, ["ot=th:c", ""]))
    assert dist.count == pytest.approx(50 * 4 + 50)
    assert "sampling-partly-unknown" in codes


def test_the_collector_tail_sampling_policy_is_a_bias_warning() -> None:
    dist, codes = _process(_request(60, [""], policy="slow-traces"))
    assert dist.count == 60
    assert "tail-sampled-traces" in codes


def test_a_clear_sampled_flag_counts_one() -> None:
    th = np.array([TH_NOT_SAMPLED, TH_UNKNOWN, 0, 2**55])
    assert np.isnan(adjusted_counts(th)[:2]).all() and adjusted_counts(th)[2:].tolist() == [1.0, 2.0]
    assert weighted_samples(np.array([1.0, 2.0, 3.0, 4.0]), th).count == 5.0


def test_compare_counts_weighted_items_and_judges_tails_on_the_sampled_ones() -> None:
    metric = SampleDistribution(np.linspace(0.001, 0.4, 1600))
    traced, _ = _process(_request(400, ["ot=th:c"]))
    assert isinstance(traced, WeightedSamples) and sampled_count(traced) == 400
    codes = [c.code for c in compare("alerting", "process", metric, traced, (0.5, 0.99))]
    assert "tail-sampling-suspected" not in codes  # 1,600 weighted items against 1,600 observations
    # unweighted, 400 of 1,600 is a sample the thresholds do not explain
    plain = SampleDistribution(traced.values)
    suspect = [c for c in compare("alerting", "process", metric, plain, (0.5,))
               if c.code == "tail-sampling-suspected"]
    assert suspect and "metric numbers" in suspect[0].message


def test_a_batch_built_without_sampling_columns_is_unknown_sampling() -> None:
    batch = SpanBatch.from_columns({"trace_hi": [0], "trace_lo": [1], "span_id": [1], "start_ns": [T0],
                                    "end_ns": [T0 + 5], "service": ["alerting"], "name": ["x"]})
    assert batch.sampling_th.tolist() == [TH_UNKNOWN] and batch.tail_policy.tolist() == [None]
    assert batch.take(np.array([0])).sampling_th.tolist() == [TH_UNKNOWN]


def test_a_partitioned_window_of_sampled_spans_says_it_does_not_weight_them() -> None:
    batch = decode_protobuf(_request(40, ["ot=th:c"])).batch
    parts = [partition_vectors(batch, STAGES, UP), partition_vectors(batch, STAGES, UP)]
    checks = [c for c in sum_parts(parts, 2).checks if c.code == UNWEIGHTED]
    assert len(checks) == 1 and checks[0].stage == "alerting" and "adjusted count" in checks[0].message
    plain = decode_protobuf(_request(40, ["ot=th:0"])).batch
    assert not [c for c in partition_vectors(plain, STAGES, UP).checks if c.code == UNWEIGHTED]
