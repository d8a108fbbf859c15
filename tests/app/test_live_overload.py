"""The live deriver under overload: an export it drops (over --live-max-spans queued) cuts the
items whose spans it carried; those items are never emitted from the spans that did arrive."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry

from collectors.spool.exposition import metrics_response
from collectors.spool.payload import encode_payload
from mapper.analysis.live import StoreLimits
from mapper.app.live import LiveDeriver, plan
from mapper.core.spec import loads_spec
from tests.messaging import child_consumers

SPEC = """\
name: orders
sources:
  spans: {kind: traces, path: ./spool}
stages:
  - {name: orders, traces: {source: spans, service: orders}}
  - {name: billing, traces: {source: spans, service: billing}}
  - {name: mailer, traces: {source: spans, service: mailer}}
"""


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_export_dropped_at_the_queue_bound_leaves_its_items_incomplete_not_wrong() -> None:
    b, _ = child_consumers(20)
    clock = Clock()
    d = LiveDeriver([plan(loads_spec(SPEC, "stream.yaml"))], StoreLimits(ttl=30, settle=1, max_spans=80),
                    clock=clock)
    # billing's exporter sends its PRODUCER children (the mailer's parents) in an export of
    # their own; the queue is full by then, so that export is dropped
    billing_pub = (b.service == "billing") & (b.kind == 4)
    first = b.take(np.flatnonzero(~billing_pub))
    dropped = b.take(np.flatnonzero(billing_pub))
    d.accept(encode_payload(first).to_pybytes(), len(first))
    d.accept(encode_payload(dropped).to_pybytes(), 80)  # counted as more than the room left
    assert d.dropped == 80
    d.flush()
    clock.now = 5.0
    assert d.flush() == 0  # without the hand-over spans the mailer's wait would be another one
    registry = CollectorRegistry(auto_describe=False)
    registry.register(d)
    text = metrics_response(registry, "application/openmetrics-text; version=1.0.0")[0].decode()
    assert 'latmap_live_items_incomplete_total{reason="limit",stream="orders"} 20.0' in text
    assert 'latmap_live_items_completed_total{stream="orders"} 0.0' in text


PARTIAL = SPEC.replace("  - {name: mailer, traces: {source: spans, service: mailer}}\n",
                       "  - {name: mailer, process: {source: prom, histogram: mailer_seconds}}\n").replace(
    "  spans: {kind: traces, path: ./spool}\n",
    "  spans: {kind: traces, path: ./spool}\n  prom: {kind: prometheus, url: \"http://127.0.0.1:9090\"}\n")


def test_a_stream_not_every_stage_of_which_is_traced_emits_no_lead_time() -> None:
    """orders and billing traced, the mailer from a metric: an item's first start to last end
    in the spans misses the mailer; latmap_lead_time_seconds would be read back (end_to_end:)
    as the whole lead time. Its stages' waits and process times are emitted."""
    b, _ = child_consumers(20)
    clock = Clock()
    p = plan(loads_spec(PARTIAL, "stream.yaml"))
    assert not p.lead
    d = LiveDeriver([p], StoreLimits(ttl=30, settle=1), clock=clock)
    d.accept(encode_payload(b).to_pybytes(), len(b))
    d.flush()
    clock.now = 5.0
    assert d.flush() == 20
    registry = CollectorRegistry(auto_describe=False)
    registry.register(d)
    text = metrics_response(registry, "application/openmetrics-text; version=1.0.0")[0].decode()
    assert "latmap_lead_time_seconds_count" not in text
    assert 'latmap_stage_wait_seconds_count{stage="billing",stream="orders"} 20.0' in text
    assert plan(loads_spec(SPEC, "stream.yaml")).lead
