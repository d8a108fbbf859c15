"""The event-loop side of the export path (``Receiver.export_async``, what OTLP/HTTP uses):
the decode pool lent to coroutines and threads alike, and the spool's group commit completing
asyncio futures, with the same errors and the same durability as the blocking calls."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collectors.otlp.codec import PayloadError
from collectors.spool.decode_pool import DecodePool
from collectors.spool.store import Spool, SpoolFullError, SpoolLimits, encode_payload, read_spool
from mapper.core.spans import SpanBatch


def _request(spans: int, trace: int) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "svc"
    ss = rs.scope_spans.add()
    t0 = 1_700_000_000_000_000_000
    for i in range(spans):
        ss.spans.add(trace_id=trace.to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name="op",
                     start_time_unix_nano=t0 + i, end_time_unix_nano=t0 + 1000 + i)
    return req.SerializeToString()


def _payload(trace: int) -> bytes:
    batch = SpanBatch.from_columns({"trace_hi": [0], "trace_lo": [trace], "span_id": [1],
                                    "start_ns": [1_700_000_000_000_000_000], "end_ns": [1_700_000_000_000_001_000],
                                    "service": ["svc"], "name": ["op"], "kind": [2]})
    return bytes(encode_payload(batch).to_pybytes())


def test_async_and_blocking_appends_share_the_group_commit(tmp_path: Path) -> None:
    with Spool(tmp_path, SpoolLimits(compact_interval=3600)) as spool:
        threads = [threading.Thread(target=spool.append_payload, args=(_payload(100 + i),)) for i in range(5)]
        for t in threads:
            t.start()

        async def appends() -> None:
            await asyncio.gather(*(spool.append_payload_async(_payload(i)) for i in range(1, 21)))

        asyncio.run(appends())
        for t in threads:
            t.join()
        assert spool.stats().pending_bytes == 0
    assert sorted(read_spool(tmp_path).trace_lo.tolist()) == [*range(1, 21), *range(100, 105)]


def test_async_append_refuses_when_full_and_writes_nothing(tmp_path: Path) -> None:
    with Spool(tmp_path, SpoolLimits(max_disk_bytes=100, compact_interval=3600)) as spool, \
            pytest.raises(SpoolFullError):
        asyncio.run(spool.append_payload_async(_payload(1)))
    assert len(read_spool(tmp_path)) == 0


def test_decode_pool_lends_its_workers_to_coroutines_and_threads() -> None:
    pool = DecodePool(1)
    try:
        blocking: list[int] = []

        def in_thread() -> None:
            for i in range(5):
                blocking.append(pool.decode(_request(3, 50 + i), "protobuf")[0])

        thread = threading.Thread(target=in_thread)
        thread.start()

        async def on_loop() -> list[int]:
            results = await asyncio.gather(*(pool.decode_async(_request(i + 1, i + 1), "protobuf") for i in range(8)))
            with pytest.raises(PayloadError):
                await pool.decode_async(b"\xff\xff not protobuf", "protobuf")
            return [r[0] for r in results]

        assert asyncio.run(on_loop()) == [i + 1 for i in range(8)]
        thread.join()
        assert blocking == [3] * 5
    finally:
        pool.close()


def test_a_cancelled_wait_for_a_worker_passes_it_on() -> None:
    """A request that gives up while waiting in line for a decode worker (its client went
    away, the server stops) hands the worker to the next in line, not into a void."""
    pool = DecodePool(1)
    try:
        async def scenario() -> int:
            worker = pool._take()  # the only worker is busy elsewhere
            waiting = asyncio.ensure_future(pool.decode_async(_request(2, 1), "protobuf"))
            await asyncio.sleep(0.05)
            waiting.cancel()
            pool._give_back(worker)  # goes to the cancelled waiter, which passes it on
            await asyncio.sleep(0.05)
            rows, *_ = await asyncio.wait_for(pool.decode_async(_request(4, 2), "protobuf"), 30)
            return rows

        assert asyncio.run(scenario()) == 4
    finally:
        pool.close()
