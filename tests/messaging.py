"""OpenTelemetry messaging shapes made by the real SDK, decoded by latmap's OTLP codec.

The shapes real message-driven software emits (semantic conventions for messaging spans):
a batch consumer (``process``/``receive``) in a new trace with span links to the producers it
took, a batch producer (one ``send``/``publish`` span for several messages, each consumed in
its own trace), consumers that are children of their producer, and a consumer linked to a
producer that never arrives. Three services, three stages: ``orders`` (an HTTP server span
with a ``publish`` PRODUCER child), ``billing`` (the CONSUMER, with its own ``publish``
PRODUCER child for the next hop), ``mailer`` (a CONSUMER child of billing's publish).

Each shape returns the batch as decoded from the SDK's OTLP protobuf, and the known value of
every part per item, computed here from the times it was made with (the map's definitions,
mapper/analysis/items.py and traces.py: a stage's wait is its first span's start minus the
hand-over span's end; process is self time; the lead time is the item's last end minus its
first start).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind

from collectors.otlp.protobuf import decode_protobuf
from mapper.analysis.live import LiveStream
from mapper.analysis.traces import StageMatch
from mapper.core.spans import SpanBatch

MS = 1_000_000
T0 = 1_790_000_000 * 1_000_000_000
SERVICES = ("orders", "billing", "mailer")
STREAM = LiveStream(
    "orders",
    (StageMatch("orders", "orders"), StageMatch("billing", "billing"), StageMatch("mailer", "mailer")),
    {"orders": None, "billing": "orders", "mailer": "billing"},
)


@dataclass
class Known:
    """The known values (seconds), one list entry per item, per (stage, part) and lead."""

    parts: dict[tuple[str | None, str], list[float]] = field(default_factory=dict)
    #: the trace ids (32 hex) of each item, by its lead time value
    items: list[tuple[float, frozenset[str]]] = field(default_factory=list)
    #: the trace ids of each item, by its billing wait (distinct per item in a batch consumer)
    waits: list[tuple[float, frozenset[str]]] = field(default_factory=list)

    def add(self, stage: str | None, part: str, seconds: float) -> None:
        self.parts.setdefault((stage, part), []).append(seconds)


def sdk_batch(make: Callable[[dict[str, trace.Tracer]], None]) -> SpanBatch:
    """The spans ``make`` writes, exported by the SDK's OTLP encoder and decoded by latmap."""
    exporter = InMemorySpanExporter()
    tracers = {}
    for svc in SERVICES:
        p = TracerProvider(resource=Resource.create({"service.name": svc}))
        p.add_span_processor(SimpleSpanProcessor(exporter))
        tracers[svc] = p.get_tracer("test")
    make(tracers)
    return decode_protobuf(encode_spans(exporter.get_finished_spans()).SerializeToString()).batch


def tid(span: Any) -> str:
    return f"{span.get_span_context().trace_id:032x}"


def _msg(t: trace.Tracer, name: str, kind: SpanKind, start: int, parent: Any = None,
         links: list[Link] | None = None) -> Any:
    ctx = trace.set_span_in_context(parent) if parent is not None else Context()  # Context(): a new trace
    return t.start_span(name, ctx, kind, start_time=int(start), links=links,
                        attributes={"messaging.system": "kafka", "messaging.destination.name": name.split()[0]})


def _order(t: dict[str, trace.Tracer], s0: int, work: int) -> tuple[Any, Any]:
    """An orders trace: HTTP server span [s0, s0+work], its publish PRODUCER child ending at s0+work."""
    srv = t["orders"].start_span("POST /orders", Context(), SpanKind.SERVER, start_time=s0)
    pub = _msg(t["orders"], "orders publish", SpanKind.PRODUCER, s0 + work - MS // 2, srv)
    pub.end(s0 + work)
    srv.end(s0 + work)
    return srv, pub


def _billing_then_mail(t: dict[str, trace.Tracer], con: Any, c0: int, c1: int, mail_wait: int,
                       mail_dur: int) -> int:
    """Billing's publish PRODUCER child ending at c1 (its consumer ``con`` ends at c1 too), and
    the mailer CONSUMER child of that publish. Returns the mailer's end."""
    pub = _msg(t["billing"], "invoices publish", SpanKind.PRODUCER, c1 - MS // 4, con)
    pub.end(c1)
    con.end(c1)
    m0 = c1 + mail_wait
    _msg(t["mailer"], "invoices process", SpanKind.CONSUMER, m0, pub).end(m0 + mail_dur)
    return m0 + mail_dur


def batch_consumer(n: int, seed: int = 1, skew: int = 0, missing: int = 0) -> tuple[SpanBatch, Known]:
    """``n`` orders in ``n`` traces, consumed by ONE billing ``process`` span in a new trace
    linked to all of them (a batch receive), then one mail. ``skew``: billing's and mailer's
    clocks run ``skew`` ns behind. ``missing``: the last ``missing`` producers are linked but
    never exported (outside the window, not sampled): their items are not in the data."""
    rng = np.random.default_rng(seed)
    known = Known()
    works = rng.integers(1 * MS, 9 * MS, n)
    starts = T0 + np.cumsum(rng.integers(1 * MS, 20 * MS, n))
    dropped: list[int] = []

    def make(t: dict[str, trace.Tracer]) -> None:
        pubs = []
        for i in range(n):
            srv, pub = _order(t, int(starts[i]), int(works[i]))
            pubs.append((srv, pub))
        last_end = int(starts[-1] + works[-1])
        c0 = last_end + 3 * MS - skew
        c1 = c0 + 7 * MS
        con = _msg(t["billing"], "orders process", SpanKind.CONSUMER, c0,
                   links=[Link(p.get_span_context()) for _, p in pubs])
        m_end = _billing_then_mail(t, con, c0, c1, 2 * MS, 4 * MS)
        dropped.extend(srv.get_span_context().trace_id & (2**64 - 1) for srv, _ in pubs[n - missing:])
        for i, (srv, _pub) in enumerate(pubs[: n - missing]):
            s0, e0 = int(starts[i]), int(starts[i] + works[i])
            known.add("orders", "process", works[i] / 1e9)
            known.add("billing", "wait", (c0 - e0) / 1e9)
            known.add("billing", "process", 7e-3)  # the stage's self time: its publish child is billing too
            known.add("mailer", "wait", 2e-3)
            known.add("mailer", "process", 4e-3)
            known.add(None, "lead", (m_end - s0) / 1e9)
            known.items.append(((m_end - s0) / 1e9, frozenset({tid(srv), tid(con)})))
            known.waits.append(((c0 - e0) / 1e9, frozenset({tid(srv), tid(con)})))

    b = sdk_batch(make)
    if missing:  # the last producers' traces never reach latmap
        gone = np.isin(b.trace_lo, np.array(dropped, dtype=np.uint64))
        b = b.take(np.flatnonzero(~gone))
    return b, known


def batch_producer(n: int, seed: int = 2) -> tuple[SpanBatch, Known]:
    """ONE orders ``publish`` span sending ``n`` messages (a batch send); each message consumed
    by its own billing span in a new trace linked to that publish (fan-out by links), each
    followed by its mail. ``n`` items, the orders stage shared by all of them."""
    rng = np.random.default_rng(seed)
    known = Known()
    waits = rng.integers(1 * MS, 30 * MS, n)
    procs = rng.integers(2 * MS, 9 * MS, n)

    def make(t: dict[str, trace.Tracer]) -> None:
        srv, pub = _order(t, T0, 5 * MS)
        known.add("orders", "process", 5e-3)  # one sample: the shared producer counted once
        for i in range(n):
            c0 = T0 + 5 * MS + int(waits[i])
            c1 = c0 + int(procs[i])
            con = _msg(t["billing"], "orders process", SpanKind.CONSUMER, c0, links=[Link(pub.get_span_context())])
            m_end = _billing_then_mail(t, con, c0, c1, 1 * MS, 2 * MS)
            known.add("billing", "wait", waits[i] / 1e9)
            known.add("billing", "process", procs[i] / 1e9)
            known.add("mailer", "wait", 1e-3)
            known.add("mailer", "process", 2e-3)
            known.add(None, "lead", (m_end - T0) / 1e9)
            known.items.append(((m_end - T0) / 1e9, frozenset({tid(srv), tid(con)})))

    return sdk_batch(make), known


def child_consumers(n: int, seed: int = 3) -> tuple[SpanBatch, Known]:
    """``n`` orders, each consumed by a billing span that is a CHILD of the publish (one trace
    per item), then its mail."""
    rng = np.random.default_rng(seed)
    known = Known()
    waits = rng.integers(1 * MS, 30 * MS, n)

    def make(t: dict[str, trace.Tracer]) -> None:
        for i in range(n):
            s0 = T0 + i * 100 * MS
            srv, pub = _order(t, s0, 3 * MS)
            c0 = s0 + 3 * MS + int(waits[i])
            con = _msg(t["billing"], "orders process", SpanKind.CONSUMER, c0, pub)
            m_end = _billing_then_mail(t, con, c0, c0 + 6 * MS, 1 * MS, 2 * MS)
            known.add("orders", "process", 3e-3)
            known.add("billing", "wait", waits[i] / 1e9)
            known.add("billing", "process", 6e-3)
            known.add("mailer", "wait", 1e-3)
            known.add("mailer", "process", 2e-3)
            known.add(None, "lead", (m_end - s0) / 1e9)
            known.items.append(((m_end - s0) / 1e9, frozenset({tid(srv)})))

    return sdk_batch(make), known


def batch_receive_per_message(n: int, seed: int = 4) -> tuple[SpanBatch, Known]:
    """The messaging conventions' batch receive with per-message processing: ONE billing
    ``receive`` CONSUMER span linked to all ``n`` producers, with one ``process`` child per
    message linked to its own producer, each ``process`` with a ``publish`` child; every
    publish consumed by a mailer span in a NEW trace linked to it. Known: the trace ids of each
    item (orders trace, the batch's trace, its mailer trace), its lead time and the mailer's
    values."""
    rng = np.random.default_rng(seed)
    known = Known()
    works = rng.integers(1 * MS, 5 * MS, n)
    starts = T0 + np.cumsum(rng.integers(1 * MS, 10 * MS, n))
    ends: list[tuple[int, int, frozenset[str]]] = []

    def make(t: dict[str, trace.Tracer]) -> None:
        pubs = [_order(t, int(starts[i]), int(works[i])) for i in range(n)]
        r0 = int(starts[-1] + works[-1]) + 2 * MS
        recv = _msg(t["billing"], "orders receive", SpanKind.CONSUMER, r0,
                    links=[Link(p.get_span_context()) for _, p in pubs])
        at = r0 + MS
        for i, (srv, pub) in enumerate(pubs):
            proc = _msg(t["billing"], "orders process", SpanKind.CONSUMER, at, recv,
                        links=[Link(pub.get_span_context())])
            out = _msg(t["billing"], "invoices publish", SpanKind.PRODUCER, at + MS, proc)
            out.end(at + 2 * MS)
            proc.end(at + 2 * MS)
            m0 = at + 2 * MS + int(rng.integers(1 * MS, 20 * MS))
            mail = _msg(t["mailer"], "invoices process", SpanKind.CONSUMER, m0, links=[Link(out.get_span_context())])
            mail.end(m0 + 3 * MS)
            known.add("mailer", "wait", (m0 - at - 2 * MS) / 1e9)
            known.add("mailer", "process", 3e-3)
            ends.append((int(starts[i]), m0 + 3 * MS, frozenset({tid(srv), tid(recv), tid(mail)})))
            at += 2 * MS
        recv.end(at + MS)
        # The map's lead time: the item's first start to its last end, and the batch's receive
        # span is part of every message's billing stage (it ends after the whole batch).
        for s0, m_end, ids in ends:
            known.items.append(((max(m_end, at + MS) - s0) / 1e9, ids))

    return sdk_batch(make), known


def fan_in_fan_out(n_in: int, n_out: int, seed: int = 5) -> SpanBatch:
    """``n_in`` orders taken by ONE billing span (a batch receive linked to all of them) that
    publishes ONE message consumed by ``n_out`` mailers, each in a new trace linked to it."""
    rng = np.random.default_rng(seed)

    def make(t: dict[str, trace.Tracer]) -> None:
        pubs = [_order(t, T0 + i * 3 * MS, int(rng.integers(1 * MS, 4 * MS)))[1] for i in range(n_in)]
        r0 = T0 + n_in * 3 * MS + 5 * MS
        recv = _msg(t["billing"], "orders receive", SpanKind.CONSUMER, r0,
                    links=[Link(p.get_span_context()) for p in pubs])
        out = _msg(t["billing"], "invoices publish", SpanKind.PRODUCER, r0 + 4 * MS, recv)
        out.end(r0 + 5 * MS)
        recv.end(r0 + 5 * MS)
        for _ in range(n_out):
            m0 = r0 + 5 * MS + int(rng.integers(1 * MS, 30 * MS))
            _msg(t["mailer"], "invoices process", SpanKind.CONSUMER, m0,
                 links=[Link(out.get_span_context())]).end(m0 + 2 * MS)

    return sdk_batch(make)
