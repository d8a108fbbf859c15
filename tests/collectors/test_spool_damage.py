"""A damaged write-ahead segment costs its own spans, not the spool: readers skip it and name
it (a ``spool-damaged`` check in the map), the writer moves it into ``_wal/quarantine/`` when it
opens the spool and ``latmap serve`` says so at start; empty segments left by failed writes
are removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from collectors.spool.receiver import Receiver
from collectors.spool.store import QUARANTINE_DIR, SEGMENT_MAGIC, Spool, SpoolLimits, scan_spool
from collectors.traces import load_spans
from mapper.cli import main
from mapper.core import spans as S
from mapper.core.model import Window
from mapper.core.spec import SourceSpec
from tests.collectors.test_receiver import post
from tests.paths import ROOT


def _batch(n: int, trace: int, start_ns: int) -> S.SpanBatch:
    return S.SpanBatch.from_columns({
        "trace_hi": np.zeros(n), "trace_lo": np.full(n, trace), "span_id": np.arange(1, n + 1),
        "start_ns": start_ns + np.arange(n) * 1000, "end_ns": start_ns + np.arange(n) * 1000 + 500,
        "service": ["svc"] * n, "name": ["op"] * n, "kind": np.full(n, 2),
    })


def _damaged_spool(path: Path) -> list[Path]:
    """Four segments of 10 spans (traces 1-4), then: #1's magic overwritten, #2 replaced by
    random bytes, plus an empty segment and one holding only the magic (failed writes)."""
    now = time.time_ns() - 10**9
    with Spool(path, SpoolLimits(compact_interval=3600), compact=False) as spool:
        for trace in (1, 2, 3, 4):
            spool.append(_batch(10, trace, now))
            spool.rotate()
    segments = sorted((path / "_wal").glob("*.wal"))
    assert len(segments) == 4
    data = segments[0].read_bytes()
    segments[0].write_bytes(b"XXXXXXXX" + data[8:])
    segments[1].write_bytes(np.random.default_rng(7).bytes(len(data)))
    (path / "_wal" / "9999999999999999999-0.wal").write_bytes(b"")
    (path / "_wal" / "9999999999999999999-1.wal").write_bytes(SEGMENT_MAGIC)
    return segments


def test_readers_skip_and_name_a_damaged_segment(tmp_path: Path) -> None:
    segments = _damaged_spool(tmp_path)
    read = scan_spool(tmp_path)
    assert sorted(set(read.batch.trace_lo.tolist())) == [3, 4]
    assert read.damaged_segments == (segments[0].name, segments[1].name)
    loaded = load_spans(SourceSpec("spans", "traces", "", "test", path=str(tmp_path)),
                        Window(0.0, time.time() + 60))
    assert loaded.damaged == (segments[0].name, segments[1].name) and len(loaded.batch) == 20


def test_map_and_discover_still_work_on_a_damaged_spool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spool = tmp_path / "spool"
    segments = _damaged_spool(spool)
    spec = tmp_path / "stream.yaml"
    spec.write_text(f"version: 1\nname: s\nwindow: 1h\nsources: {{spans: {{kind: traces, path: '{spool}'}}}}\n"
                    "stages:\n  - {name: svc, owner: o, traces: {source: spans, service: svc}}\n")
    assert main(["discover", "--traces", str(spool)]) == 0
    assert "svc" in capsys.readouterr().out
    assert main(["map", "-c", str(spec), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (check,) = [c for c in doc["checks"] if c["code"] == "spool-damaged"]
    assert f"2 damaged segment(s) or file(s) not read, their spans missing from the map: {segments[0].name}, " \
           f"{segments[1].name}" in check["message"]


def test_the_writer_quarantines_damaged_segments_and_removes_empty_ones(tmp_path: Path) -> None:
    segments = _damaged_spool(tmp_path)
    with Spool(tmp_path, SpoolLimits(compact_interval=3600), compact=False) as spool:
        assert spool.quarantined_at_open == (segments[0].name, segments[1].name)
        assert spool.stats().quarantined == 2
        spool.append(_batch(5, 9, time.time_ns()))
    left = sorted(p.name for p in (tmp_path / "_wal").glob("*.wal"))
    assert segments[2].name in left and segments[3].name in left and len(left) == 3  # + the new one
    assert sorted(p.name for p in (tmp_path / "_wal" / QUARANTINE_DIR).iterdir()) == [segments[0].name,
                                                                                      segments[1].name]
    read = scan_spool(tmp_path)
    assert read.damaged_segments == () and sorted(set(read.batch.trace_lo.tolist())) == [3, 4, 9]
    assert read.quarantined == (segments[0].name, segments[1].name)


def test_metrics_count_the_quarantined_segments(tmp_path: Path) -> None:
    _damaged_spool(tmp_path)
    with Spool(tmp_path, SpoolLimits(compact_interval=3600), compact=False) as spool, \
            Receiver(spool, http="127.0.0.1:0", grpc=None, decode_workers=0) as receiver:
        status, _, body = post(receiver.http_port or 0, b"", {}, path="/metrics", method="GET")
    assert status == 200
    assert "latmap_spool_quarantined_segments 2.0" in body.decode().splitlines()


def test_serve_says_at_start_that_it_moved_segments_aside(tmp_path: Path) -> None:
    segments = _damaged_spool(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "mapper", "serve", "--spool", str(tmp_path), "--http",
                             "127.0.0.1:0", "--grpc", "off", "--decode-workers", "0"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline() for _ in range(4)]  # the log's two lines, then the summary
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
    assert all(f"{seg.name}: not a spool segment (bad magic); moved aside to " in line
               for seg, line in zip(segments[:2], lines[:2], strict=True))
    assert lines[2].startswith("latmap serve: OTLP/HTTP port ")
    assert lines[3] == (f"latmap serve: 2 damaged spool segment(s) moved aside to {tmp_path}/_wal/quarantine: "
                        f"{segments[0].name}, {segments[1].name}; the rest of the spool is served\n")
