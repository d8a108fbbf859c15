"""OTLP trace files: JSON lines, JSON documents, plain and length-prefixed protobuf, gzip, errors naming the place."""

from __future__ import annotations

import base64
import copy
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collectors.otlp.codec import (
    PayloadError,
)
from collectors.otlp.files import read_trace_files
from mapper.core.errors import SourceError
from tests.otlp_helpers import FIXTURES, add_span, one_scope, request_json, rows, span_json

# --------------------------------------------------------------------------- files


def three_requests() -> list[ExportTraceServiceRequest]:
    out = []
    for r in range(3):
        req, scope = one_scope(f"svc-{r}")
        for i in range(4):
            add_span(scope, 100 + r, 10 * r + i + 1)
        out.append(req)
    add_span(out[2].resource_spans[0].scope_spans[0], 100, 1)  # a retried span from request 0
    return out


def otlp_json_line(req: ExportTraceServiceRequest) -> str:
    """One line as the Collector's file exporter writes it: OTLP/JSON, hex ids."""
    doc = json_format.MessageToDict(req)
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in sp:
                        sp[key] = base64.b64decode(sp[key]).hex()
    return json.dumps(doc, separators=(",", ":"))


def test_json_lines_file_is_read_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(otlp_json_line(r) for r in three_requests()) + "\n\n")
    [merged] = read_trace_files(path)
    assert len(merged.batch) == 12 and merged.rejected == {"duplicate span": 1}
    assert merged.batch.service.tolist() == ["svc-0"] * 4 + ["svc-1"] * 4 + ["svc-2"] * 4
    per_line = list(read_trace_files(path, batch_spans=1))
    assert [len(d.batch) for d in per_line] == [4, 4, 5]  # one Decoded per line: no dedupe across them
    assert [d.rejected for d in per_line] == [{}, {}, {}]


def test_json_lines_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    lines = [otlp_json_line(r) for r in three_requests()]
    path.write_text("\n".join([lines[0], "", lines[1], lines[2][:-3]]) + "\n")
    reader = read_trace_files(path, batch_spans=1)
    assert len(next(reader).batch) == 4
    with pytest.raises(PayloadError) as err:
        list(reader)
    assert str(err.value).startswith(f"{path}:4: invalid JSON: Expecting ',' delimiter at column ")
    path.write_text(lines[0] + "\n" + '{"resourceSpans": 3}' + "\n")
    with pytest.raises(PayloadError) as err:
        list(read_trace_files(path))
    assert str(err.value) == f"{path}:2: resourceSpans: expected a list, got int"


def test_pretty_json_document_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    text = (FIXTURES / "trace.json").read_text().replace('"kind": 2,', '"kind": 2')
    path.write_text("\n" + text)
    with pytest.raises(PayloadError) as err:
        list(read_trace_files(path))
    # "kind" is on line 37 (36 + the blank line); the missing comma is noticed at the next token.
    assert str(err.value) == f"{path}:38: invalid JSON: Expecting ',' delimiter at column 15"


def test_concatenated_pretty_documents_as_jq_writes_them(tmp_path: Path) -> None:
    path = tmp_path / "traces.json"
    docs = [request_json(span_json(span=f"00000000000000a{i}"), service=f"s{i}") for i in (1, 2)]
    path.write_text("\n".join(json.dumps(d, indent=2) for d in docs) + "\n")
    [decoded] = read_trace_files(path)
    assert decoded.batch.service.tolist() == ["s1", "s2"]
    assert [len(d.batch) for d in read_trace_files(path, batch_spans=1)] == [1, 1]


def test_protobuf_files_single_and_length_prefixed(tmp_path: Path) -> None:
    requests = three_requests()
    single = tmp_path / "one.binpb"
    single.write_bytes(requests[0].SerializeToString())
    [one] = read_trace_files(single)
    assert one.batch.span_id.tolist() == [1, 2, 3, 4]
    # The file exporter's format: proto: a 4-byte big-endian length before each message.
    framed = b"".join(len(b).to_bytes(4, "big") + b for b in (r.SerializeToString() for r in requests))
    (tmp_path / "exporter").mkdir()
    (tmp_path / "exporter" / "traces.proto.bin").write_bytes(framed)
    (tmp_path / "exporter" / "traces.proto.bin.gz").write_bytes(gzip.compress(framed))
    (tmp_path / "exporter" / ".hidden").write_bytes(b"junk")
    got = list(read_trace_files(tmp_path / "exporter"))
    assert [len(d.batch) for d in got] == [12, 12]
    assert [d.rejected for d in got] == [{"duplicate span": 1}] * 2
    assert rows(got[0].batch) == rows(got[1].batch)


def test_truncated_length_prefixed_file_names_the_record(tmp_path: Path) -> None:
    bodies = [r.SerializeToString() for r in three_requests()]
    framed = b"".join(len(b).to_bytes(4, "big") + b for b in bodies)
    path = tmp_path / "traces.pb"
    path.write_bytes(framed[:-10])
    with pytest.raises(PayloadError) as err:
        list(read_trace_files(path))
    offset = 8 + len(bodies[0]) + len(bodies[1])
    assert str(err.value) == (f"{path}: record 3 at byte {offset}: truncated record "
                              f"({len(bodies[2]) - 10} of {len(bodies[2])} bytes)")
    path.write_bytes(len(bodies[0][:-3]).to_bytes(4, "big") + bodies[0][:-3])  # framing fine, message cut
    with pytest.raises(PayloadError) as err:
        list(read_trace_files(path))
    assert str(err.value) == (f"{path}: record 1 at byte 0: invalid protobuf: wire format was corrupt "
                              "(expected an OTLP ExportTraceServiceRequest)")


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as missing:
        list(read_trace_files(tmp_path / "nope.jsonl"))
    assert str(missing.value) == f"{tmp_path / 'nope.jsonl'}: no such file or directory"
    zst = tmp_path / "traces.zst"
    zst.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 8)
    with pytest.raises(PayloadError) as err:
        list(read_trace_files(zst))
    assert str(err.value) == f"{zst}: zstd-compressed (the file exporter's compression: zstd); decompress it first"
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(PayloadError) as err:
        list(read_trace_files(text))
    assert str(err.value) == f"{text}: not OTLP traces (JSON, JSON lines or protobuf)"
    broken = tmp_path / "spans.jsonl.gz"
    broken.write_bytes(gzip.compress(b'{"resourceSpans": []}\n' * 100)[:-20])
    with pytest.raises(PayloadError) as err:
        list(read_trace_files(broken))
    assert str(err.value).startswith(f"{broken}: corrupt gzip: ")


def test_big_json_lines_file_is_streamed_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    template = json.loads(otlp_json_line(three_requests()[0]))
    with path.open("w") as out:
        for line in range(250):
            doc = copy.deepcopy(template)
            for i, sp in enumerate(doc["resourceSpans"][0]["scopeSpans"][0]["spans"]):
                sp["spanId"] = f"{line * 4 + i + 1:016x}"
            out.write(json.dumps(doc) + "\n")
    got = list(read_trace_files(path, batch_spans=300))
    assert [len(d.batch) for d in got] == [300, 300, 300, 100]
    assert np.concatenate([d.batch.span_id for d in got]).tolist() == list(range(1, 1001))
