"""The demo's traces: the simulated chain, as real OpenTelemetry spans sent over OTLP.

Each traced item is one market-data tick: market-data handles it (SERVER) and publishes it
to a Kafka-like topic (PRODUCER); alerting consumes it (CONSUMER, child of the producer
span: the asynchronous hop) after its queue wait, evaluates it (INTERNAL) and enqueues the
notification (PRODUCER); notification consumes it after waiting for a sender (CONSUMER)
and calls the provider (CLIENT, ``peer.service: twilio``). Latencies are drawn from the
same simulated distributions as the metrics, so the two sources agree within their intervals.
"""

from __future__ import annotations

import numpy as np
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind

from mapper.demo.data import DemoData

SERVICES = ("market-data", "alerting", "notification")
TOPIC = "ticks"
QUEUE = "notifications"


def _draw(data: DemoData, name: str, n: int, rng: np.random.Generator,
          labels: dict[str, str] | None = None) -> np.ndarray:
    raw = data.raw(name, labels)
    return raw[rng.integers(0, raw.size, n)]


def _messaging(tracer: trace.Tracer, destination: str, operation: str, ctx: Context, start: int) -> Span:
    """A Kafka PRODUCER ("publish") or CONSUMER ("process") span on ``destination``."""
    kind = SpanKind.PRODUCER if operation == "publish" else SpanKind.CONSUMER
    return tracer.start_span(f"{destination} {operation}", ctx, kind, start_time=start,
                             attributes={"messaging.system": "kafka", "messaging.destination.name": destination})


def emit_traces(data: DemoData, endpoint: str, n: int = 3000, seed: int = 5) -> int:
    """Send ``n`` traced items to the OTLP/HTTP ``endpoint`` (``.../v1/traces``); return spans sent."""
    rng = np.random.default_rng(seed)
    md = _draw(data, "md_tick_process_seconds", n, rng)
    a_wait = _draw(data, "alert_queue_wait_seconds", n, rng)
    a_eval = _draw(data, "alert_eval_seconds", n, rng)
    n_wait = _draw(data, "notify_queue_wait_seconds", n, rng)
    n_send = _draw(data, "notify_send_seconds", n, rng, {"provider": "twilio"})
    starts = np.sort(rng.uniform(data.timestamps[1] - data.step, data.timestamps[-1] - 60, n))
    providers = {}
    tracers = {}
    for svc in SERVICES:
        p = TracerProvider(resource=Resource.create({"service.name": svc, "service.namespace": "trading"}))
        p.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), max_queue_size=n * 8,
                                                max_export_batch_size=512))
        providers[svc] = p
        tracers[svc] = p.get_tracer("latmap.demo")
    ns = 1_000_000_000
    for i in range(n):
        t0 = int(starts[i] * ns)
        t_md = t0 + int(md[i] * ns)
        root = tracers["market-data"].start_span("tick", kind=SpanKind.SERVER, start_time=t0)
        ctx = trace.set_span_in_context(root)
        # The publish is the last part of the tick's processing, inside the SERVER span.
        pub = _messaging(tracers["market-data"], TOPIC, "publish", ctx, t_md - (t_md - t0) // 5)
        t_pub = t_md
        pub.end(t_pub)
        root.end(t_pub)
        t_c = t_pub + int(a_wait[i] * ns)
        t_eval = t_c + int(a_eval[i] * ns)
        consume = _messaging(tracers["alerting"], TOPIC, "process", trace.set_span_in_context(pub), t_c)
        cctx = trace.set_span_in_context(consume)
        tracers["alerting"].start_span("evaluate alerts", cctx, SpanKind.INTERNAL, start_time=t_c).end(t_eval)
        enqueue = _messaging(tracers["alerting"], QUEUE, "publish", cctx, t_eval - (t_eval - t_c) // 5)
        t_q = t_eval
        enqueue.end(t_q)
        consume.end(t_q)
        t_send = t_q + int(n_wait[i] * ns)
        t_done = t_send + int(n_send[i] * ns)
        deliver = _messaging(tracers["notification"], QUEUE, "process", trace.set_span_in_context(enqueue), t_send)
        tracers["notification"].start_span("twilio send", trace.set_span_in_context(deliver), SpanKind.CLIENT,
                                           start_time=t_send, attributes={"peer.service": "twilio"}).end(t_done)
        deliver.end(t_done)
    for p in providers.values():
        p.force_flush()
        p.shutdown()
    return n * 7
