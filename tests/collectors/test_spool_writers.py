"""Receivers that scale out: several writers share one spool directory, each with its own id,
lock, segments and compaction; readers (and ``latmap map``) read them all.

The end-to-end test starts two real ``latmap serve --writer-id`` processes on one spool,
posts raw OTLP/HTTP requests to both from concurrent clients, stops them, and checks that
every acknowledged span is in the spool and that one map counts both receivers' items.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from collectors.spool.reader import SpoolError, scan_spool, writer_of
from collectors.spool.store import Spool, SpoolLimits
from mapper.cli import main
from mapper.core.spans import SpanBatch
from tests.collectors.test_receiver import otlp_request
from tests.paths import ROOT

NOW = time.time_ns()


def _batch(n: int, trace: int) -> SpanBatch:
    return SpanBatch.from_columns({
        "trace_hi": np.zeros(n), "trace_lo": np.full(n, trace), "span_id": np.arange(1, n + 1),
        "start_ns": NOW + np.arange(n) * 1000, "end_ns": NOW + np.arange(n) * 1000 + 500,
        "service": ["svc"] * n, "name": ["op"] * n,
    })


def _ids(limits_id: str) -> SpoolLimits:
    return SpoolLimits(compact_interval=3600, writer_id=limits_id)


def test_writers_keep_to_their_own_segments_and_compaction(tmp_path: Path) -> None:
    with Spool(tmp_path, _ids("rx-a")) as a, Spool(tmp_path, _ids("rx-b")) as b:
        a.append(_batch(10, 1))
        b.append(_batch(20, 2))
        a.rotate()
        b.append(_batch(5, 3))  # b's segment stays active
        names = {writer_of(s) for s in (tmp_path / "_wal").glob("*.wal")}
        assert names == {"rx-a", "rx-b"}
        assert a.compact() == 1  # only its own closed segment; b's active one is not touched
        assert {writer_of(s) for s in (tmp_path / "_wal").glob("*.wal")} == {"rx-b"}
        parquet = list(tmp_path.glob("date=*/hour=*/*.parquet"))
        assert parquet and all(p.stem.endswith("@rx-a") for p in parquet)
        read = scan_spool(tmp_path)
        assert len(read.batch) == 35 and read.duplicates == 0
        b.rotate()
        assert b.compact() == 1
    assert len(scan_spool(tmp_path).batch) == 35


def test_same_writer_id_twice_or_a_writer_without_id_is_refused(tmp_path: Path) -> None:
    with Spool(tmp_path, _ids("rx-a")):
        with pytest.raises(SpoolError, match="'rx-a' is already writing"):
            Spool(tmp_path, _ids("rx-a"))
        with pytest.raises(SpoolError, match="another process is writing"):
            Spool(tmp_path)
    with Spool(tmp_path), pytest.raises(SpoolError, match="without --writer-id"):
        Spool(tmp_path, _ids("rx-b"))
    with pytest.raises(SpoolError, match="writer id"):
        Spool(tmp_path, _ids("a/b"))


def _start(spool: Path, writer: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mapper", "serve", "--spool", str(spool), "--writer-id", writer,
         "--http", "127.0.0.1:0", "--grpc", "off", "--decode-workers", "0"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "OTLP/HTTP port" in line, line
    return proc, int(line.split("OTLP/HTTP port ")[1].split(",")[0])


def test_two_serve_processes_share_one_spool_and_one_map_reads_both(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    procs = []
    try:
        procs = [_start(spool, "rx-0"), _start(spool, "rx-1")]
        # the same id again is refused at start, in one line, exit 2
        dup = subprocess.run([sys.executable, "-m", "mapper", "serve", "--spool", str(spool), "--writer-id", "rx-0",
                              "--http", "127.0.0.1:0", "--grpc", "off"], cwd=ROOT, capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60, check=False)
        assert dup.returncode == 2 and "'rx-0' is already writing" in dup.stderr
        acked: list[int] = []
        lock = threading.Lock()

        def client(k: int) -> None:
            port = procs[k % 2][1]
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for i in range(40):
                trace = k * 1000 + i + 1
                conn.request("POST", "/v1/traces", body=otlp_request(50, trace=trace, first_span=1),
                             headers={"Content-Type": "application/x-protobuf"})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    with lock:
                        acked.append(trace)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        for proc, _ in procs:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()
    assert len(acked) == 240
    read = scan_spool(spool)
    got = set(zip(read.batch.trace_lo.tolist(), read.batch.span_id.tolist(), strict=True))
    assert all((t, s) in got for t in acked for s in range(1, 51))
    assert {writer_of(s) for s in (spool / "_wal").glob("*.wal")} == {"rx-0", "rx-1"}

    spec = tmp_path / "stream.yaml"
    spec.write_text(f"name: two\nsources:\n  spans: {{kind: traces, path: \"{spool}\"}}\n"
                    "stages:\n  - {name: svc, owner: me, traces: {source: spans, service: svc}}\n")
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert main(["map", "-c", str(spec), "--until", until, "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["stages"][0]["process"]["count"] == 240  # one item per trace, from both writers


def test_a_replacement_writer_compacts_the_segments_of_one_that_is_gone(tmp_path: Path) -> None:
    with Spool(tmp_path, _ids("rx-old")) as old:
        old.append(_batch(10, 1))  # closed at exit, never compacted (the pod was replaced)
    with Spool(tmp_path, _ids("rx-live")) as live, Spool(tmp_path, _ids("rx-new")) as new:
        live.append(_batch(5, 2))  # alive: its active segment must not be adopted
        assert new.compact() == 1
        left = {writer_of(s) for s in (tmp_path / "_wal").glob("*.wal")}
        assert left == {"rx-live"}
        assert len(scan_spool(tmp_path).batch) == 15


def test_a_segment_compacted_after_listing_is_read_from_its_parquet(tmp_path: Path) -> None:
    from collectors.spool.reader import iter_spool_file, spool_files

    with Spool(tmp_path, _ids("rx-a")) as a:
        a.append(_batch(12, 7))
        a.rotate()
        listed = spool_files(tmp_path)
        assert len(listed.segments) == 1 and not listed.parquet
        assert a.compact() == 1  # a live receiver compacts between the map's passes
    rows = sum(t.num_rows for t, _ in iter_spool_file(listed.segments[0]))
    assert rows == 12
