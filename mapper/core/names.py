"""Metric names latmap itself writes, defined once for every module that writes or reads them.

The nightly report pushes these gauges to a Pushgateway (``mapper.app.pushgw``) and the
generated Grafana dashboards chart them (``dashboards.queries``); both import the names from
here so a rename cannot leave one side behind. Values are seconds; every series carries the
``stream`` label and the push groups by ``job`` (below) and ``stream``.
"""

from __future__ import annotations

#: The Pushgateway job of every push.
JOB = "latmap"
#: Gauge: a hop's percentile (labels ``stage``, ``part``, ``percentile``), seconds.
HOP_LATENCY = "latmap_hop_latency_seconds"
#: Gauge: the observations behind a hop's percentiles.
HOP_COUNT = "latmap_hop_count"
#: Gauge: the end-to-end lead time's percentile (label ``percentile``), seconds.
LEAD_TIME = "latmap_lead_time_seconds"
#: Gauge: the items behind the lead time's percentiles.
LEAD_COUNT = "latmap_lead_time_count"
#: Gauge: 1 when an objective is broken, 0 when met (labels ``target``, ``percentile``).
OBJECTIVE_BROKEN = "latmap_objective_broken"
#: Gauge: when the run ended, unix seconds.
RUN_TIMESTAMP = "latmap_run_timestamp_seconds"

# The live value stream (``latmap serve --stream``): histograms on the receiver's /metrics,
# one observation per completed item, labels ``stream``, ``stage`` (not on the lead time) and
# the spec's segment labels that name a span column. The lead-time histogram shares its family
# name with the pushed gauge above on purpose: the gauge's series carry ``percentile``, the
# histogram's are ``_bucket`` / ``_sum`` / ``_count``, so the two never meet in one query.
#: Histogram: the wait before a stage (hand-over to the stage's first span), seconds.
STAGE_WAIT = "latmap_stage_wait_seconds"
#: Histogram: a stage's process (self) time, seconds.
STAGE_PROCESS = "latmap_stage_process_seconds"
#: Histogram: an item's lead time, first stage's start to last stage's end, seconds.
LIVE_LEAD_TIME = LEAD_TIME
#: Counter: items complete, through every stage they reached: to the stream's end, or stopped
#: where no stage took them on (``_total`` is added by the exposition).
LIVE_ITEMS_COMPLETED = "latmap_live_items_completed"
#: Counter: groups of spans dropped before they were complete (label ``reason``: ttl, busy,
#: limit, reload).
LIVE_ITEMS_INCOMPLETE = "latmap_live_items_incomplete"
#: Counter: spans that matched no stage of the stream.
LIVE_SPANS_UNMATCHED = "latmap_live_spans_unmatched"
#: Counter: spans not held because the store was at ``max_spans`` between two flushes.
LIVE_SPANS_DROPPED = "latmap_live_spans_dropped"
#: Counter: spans that arrived after their item had been emitted (not a new item).
LIVE_SPANS_LATE = "latmap_live_spans_late"
#: Counter: consumer spans linked to a producer that had already expired from the store.
LIVE_PRODUCER_EXPIRED = "latmap_live_producer_expired"
#: Counter: waits below zero (clock skew between hosts; kept, not clamped), label ``stage``.
LIVE_NEGATIVE_WAITS = "latmap_live_negative_waits"
#: Counter: label values replaced by ``__other__`` past the per-label limit, label ``label``.
LIVE_LABEL_VALUES_CUT = "latmap_live_label_values_cut"
#: Gauge: groups of spans held, waiting for the rest of their item.
LIVE_OPEN_ITEMS = "latmap_live_open_items"
#: Gauge: spans held by the store.
LIVE_HELD_SPANS = "latmap_live_held_spans"

# The flow of the live value stream (issue 27), per traced stage, labels ``stream`` and ``stage``.
#: Counter: items at a stage by ``outcome`` (``_total`` is added by the exposition): ``passed``
#: (handed on to a next stage) or ``stopped`` (ended at the stage): the two partition the items
#: that reached it; and, of those, ``failed`` (an attempt ended in an error) or else ``retried``
#: (processed more than once): each item not right the first time counts once, under one of them.
STAGE_ITEMS = "latmap_stage_items"
#: The values of ``STAGE_ITEMS``'s ``outcome`` label.
OUTCOMES = ("passed", "stopped", "failed", "retried")
#: Gauge: items waiting before a stage (handed over, not yet started). Live, from the spans
#: held: hand-overs (a PRODUCER span, a CLIENT call to the stage's service) no span of the
#: stage has taken yet, so items in process there count too until their span is exported.
STAGE_INVENTORY = "latmap_stage_inventory"
