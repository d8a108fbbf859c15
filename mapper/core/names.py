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
