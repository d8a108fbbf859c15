"""Push a run's numbers to a Prometheus Pushgateway, so Grafana can chart the nightly trend.

Encoding (:func:`registry_for`) is kept apart from sending (:func:`push_run`). Every series
carries ``stream``; the push groups by ``job`` and ``stream``, so each stream's push replaces
only its own group. Values are seconds; a percentile the data cannot support is left out
rather than pushed as a made-up number.
"""

from __future__ import annotations

import time
from urllib.error import URLError
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from mapper.analysis.latency import PARTS, LatencyMap
from mapper.core.distribution import Distribution, percentile_label
from mapper.core.errors import SourceError
from mapper.core.names import (
    HOP_COUNT,
    HOP_LATENCY,
    JOB,
    LEAD_COUNT,
    LEAD_TIME,
    OBJECTIVE_BROKEN,
    RUN_TIMESTAMP,
)
from mapper.core.redact import remote_text
from mapper.core.urls import check_http_url


def registry_for(lm: LatencyMap, now: float | None = None) -> CollectorRegistry:
    """The gauges of one run: per stage part (``wait``, ``process``, ``total``) and end to
    end, each asked percentile and the count; objectives as 1 (broken) / 0 (met)."""
    reg = CollectorRegistry()
    stream = lm.spec.name
    hop = Gauge(HOP_LATENCY, "Latency of a stage part at a percentile, seconds.",
                ["stream", "stage", "part", "percentile"], registry=reg)
    count = Gauge(HOP_COUNT, "Items measured for a stage part in the window.",
                  ["stream", "stage", "part"], registry=reg)
    lead = Gauge(LEAD_TIME, "End-to-end lead time at a percentile, seconds.", ["stream", "percentile"],
                 registry=reg)
    lead_n = Gauge(LEAD_COUNT, "Items behind the end-to-end lead time.", ["stream"], registry=reg)
    broken = Gauge(OBJECTIVE_BROKEN, "1 when the objective is broken, 0 when met (unknown: absent).",
                   ["stream", "target", "percentile"], registry=reg)
    stamp = Gauge(RUN_TIMESTAMP, "When this run was made, unix seconds.", ["stream"], registry=reg)
    qs = lm.spec.percentiles

    def put(d: Distribution | None, stage: str, part: str) -> None:
        if d is None:
            return
        count.labels(stream, stage, part).set(d.count)
        for q in qs:
            e = d.quantile(q)
            if e.value is not None:
                hop.labels(stream, stage, part, percentile_label(q)).set(e.value)

    for s in lm.stages:
        for p in PARTS:
            r = s.part(p)
            put(r.distribution if r else None, s.stage.name, p)
        put(s.total, s.stage.name, "total")
    if lm.end_to_end is not None:
        lead_n.labels(stream).set(lm.end_to_end.count)
        for q in qs:
            e = lm.end_to_end.quantile(q)
            if e.value is not None:
                lead.labels(stream, percentile_label(q)).set(e.value)
    for o in lm.objectives:
        if o.status in ("broken", "met"):
            broken.labels(stream, o.objective.target, percentile_label(o.objective.q)).set(
                1.0 if o.status == "broken" else 0.0)
    stamp.labels(stream).set(time.time() if now is None else now)
    return reg


def _safe(url: str) -> str:
    """The URL without user:password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=host)) if parts.netloc else url


def push_run(lm: LatencyMap, url: str, job: str = JOB, timeout: float = 30.0) -> None:
    """Replace this stream's group (``job``, ``stream``) on the Pushgateway at ``url``."""
    check_http_url(url, "--pushgateway")
    reg = registry_for(lm)
    try:
        push_to_gateway(url, job=job, registry=reg, grouping_key={"stream": lm.spec.name}, timeout=timeout)
    except (URLError, OSError, ValueError) as err:
        raise SourceError(f"{_safe(url)}: cannot push to the Pushgateway: {remote_text(err)}") from err
