"""Sampling read at ingest (issue 26): the OTel ``th`` threshold in ``tracestate``, the W3C
``sampled`` flag and the Collector's ``tailsampling.policy``, through both decoders and the spool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collectors.otlp.codec import INVALID_SAMPLING_THRESHOLD
from collectors.otlp.columns import threshold_of
from collectors.otlp.json import decode_json
from collectors.otlp.protobuf import decode_protobuf
from collectors.spool.payload import SCHEMA, decode_payload, encode_payload
from collectors.spool.reader import payloads_batch, scan_spool
from collectors.spool.store import Spool, SpoolLimits
from mapper.core import spans as S

T0 = 1_700_000_000_000_000_000


@pytest.mark.parametrize(("state", "expected"), [
    ("ot=th:0", 0),                                   # always sampled: adjusted count 1
    ("ot=th:8", 2**55),                               # trailing zeros left out: probability 1/2
    ("ot=th:c", 0xC << 52),                           # 1/4
    ("ot=th:fd70a3d70a3d71", 0xFD70A3D70A3D71),       # 14 digits: 1%
    ("vendor=x, ot=rv:0123456789abcd;th:c", 0xC << 52),  # other members, other sub-keys first
    ("ot=rv:0123456789abcd", S.TH_UNKNOWN),           # randomness without a threshold
    ("vendor=th:8", S.TH_UNKNOWN),                    # another vendor's th is not OTel's
    ("", S.TH_UNKNOWN),
    ("ot=th:C", None),                                # upper case: not the spec's
    ("ot=th:0123456789abcde", None),                  # 15 digits
    ("ot=th:", None),
])
def test_threshold_of_reads_the_ot_member(state: str, expected: int | None) -> None:
    assert threshold_of(state) == expected


def _request(spans: list[tuple[str, int]], policy: str | None = "latency-over-1s") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "alerting"
    ss = rs.scope_spans.add()
    if policy is not None:
        kv = ss.scope.attributes.add()
        kv.key, kv.value.string_value = "tailsampling.policy", policy
    for i, (state, flags) in enumerate(spans):
        s = ss.spans.add()
        s.trace_id, s.span_id = bytes([1] * 15 + [i + 1]), bytes([i + 1] * 8)
        s.start_time_unix_nano, s.end_time_unix_nano = T0, T0 + 1000
        s.name, s.trace_state, s.flags = "eval", state, flags
    return req


SPANS = [("ot=th:8", 0x101), ("ot=th:c", 0x1), ("", 0), ("ot=th:Z", 0x1), ("ot=th:0", 0x100)]
EXPECTED_TH = [2**55, 0xC << 52, S.TH_UNKNOWN, S.TH_UNKNOWN, S.TH_NOT_SAMPLED]


@pytest.mark.parametrize("codec", ["protobuf", "json"])
def test_both_decoders_read_th_flags_and_the_tail_sampling_policy(codec: str) -> None:
    req = _request(SPANS)
    decoded = (decode_protobuf(req.SerializeToString()) if codec == "protobuf"
               else decode_json(json_format.MessageToJson(req)))
    assert decoded.batch.sampling_th.tolist() == EXPECTED_TH
    assert decoded.batch.tail_policy.tolist() == ["latency-over-1s"] * 5
    assert decoded.warnings == {INVALID_SAMPLING_THRESHOLD: 1}  # "th:Z": kept, sampling unknown


def test_without_tracestate_or_policy_sampling_is_unknown() -> None:
    decoded = decode_protobuf(_request([("", 0), ("k=v", 0x1)], policy=None).SerializeToString())
    assert decoded.batch.sampling_th.tolist() == [S.TH_UNKNOWN] * 2
    assert decoded.batch.tail_policy.tolist() == [None, None]
    assert decoded.warnings == {}


def _batch(n: int, th: int | None) -> S.SpanBatch:
    cols = {"trace_hi": np.zeros(n), "trace_lo": np.arange(1, n + 1), "span_id": np.arange(1, n + 1),
            "start_ns": T0 + np.arange(n), "end_ns": T0 + np.arange(n) + 500, "service": ["svc"] * n,
            "name": ["op"] * n}
    if th is not None:
        cols["sampling_th"] = np.full(n, th)
        cols["tail_policy"] = ["p"] * n
    return S.SpanBatch.from_columns(cols)


def test_the_sampling_columns_survive_a_spool_record_and_compaction(tmp_path: Path) -> None:
    batch = _batch(3, 2**55)
    assert payloads_batch([encode_payload(batch)]).sampling_th.tolist() == [2**55] * 3
    with Spool(tmp_path, SpoolLimits(compact_interval=3600), compact=False) as spool:
        spool.append(batch)
        spool.compact()
    read = scan_spool(tmp_path).batch
    assert read.sampling_th.tolist() == [2**55] * 3 and read.tail_policy.tolist() == ["p"] * 3


def test_a_spool_written_before_the_sampling_columns_reads_as_unknown(tmp_path: Path) -> None:
    old_schema = pa.schema([f for f in SCHEMA if f.name not in S.SAMPLING_COLUMNS])
    table = pa.table({f.name: pa.array(getattr(_batch(2, 2**55), f.name), f.type)
                      for f in old_schema if f.name != S.LINKS_COLUMN})
    part = tmp_path / "date=2023-11-14" / "hour=22"
    part.mkdir(parents=True)
    pq.write_table(table, part / "old.parquet")
    read = scan_spool(tmp_path).batch
    assert read.sampling_th.tolist() == [S.TH_UNKNOWN] * 2 and read.tail_policy.tolist() == [None, None]
    # an old write-ahead record (an IPC stream without the columns) likewise
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    assert decode_payload(sink.getvalue()).schema == SCHEMA
    assert payloads_batch([sink.getvalue()]).sampling_th.tolist() == [S.TH_UNKNOWN] * 2
