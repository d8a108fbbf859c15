"""Every key the spec loader accepts, by where it may appear: the one list the parsers check
against and docs/hooks/spec_reference.py generates the spec reference from.

A key not listed for its place is an error at load (``file:line: field: unknown key``). The
keys under ``objectives`` are not fixed names: percentiles (``p99``) under a stage, and
``end_to_end`` or a stage name at the top level.
"""

from __future__ import annotations

#: ``end_to_end`` at the top level is a measurement (the keys of ``MEASUREMENT`` or
#: ``DATADOG_MEASUREMENT``): the measured lead time, e.g. ``latmap_lead_time_seconds``.
TOP = ("version", "name", "owner", "description", "window", "percentiles", "sources", "stages", "objectives",
       "segments", "events", "baseline", "future", "examples", "links", "end_to_end", "engine", "draft")
#: A ``prometheus`` or ``scrape`` source.
SOURCE = ("kind", "url", "bearer_token_env", "bearer_token_file", "basic_auth", "headers", "tls", "timeout",
          "retries", "max_response")
#: A ``traces`` source (a spool directory or OTLP files).
TRACES_SOURCE = ("kind", "path")
#: A ``datadog`` source.
DATADOG_SOURCE = ("kind", "site", "url", "api_key_env", "api_key_file", "app_key_env", "app_key_file",
                  "relative_accuracy", "spans_query", "max_spans", "max_wait", "timeout", "retries",
                  "max_response")
BASIC_AUTH = ("username", "password_env", "password_file")
TLS = ("ca_file", "insecure_skip_verify")
STAGE = ("name", "owner", "description", "wait", "process", "traces", "upstream", "objectives", "weight",
         "workers", "errors", "retries", "inventory")
#: What a measurement from a Prometheus-like source names: exactly one of these.
METRIC = ("histogram", "summary", "query")
#: ``wait:`` / ``process:`` from a Prometheus-like source.
MEASUREMENT = ("source", *METRIC, "selector", "unit")
#: What a measurement from a ``datadog`` source names: a distribution or a histogram metric.
DATADOG_METRIC = ("distribution", "histogram")
#: ``wait:`` / ``process:`` from a ``datadog`` source.
DATADOG_MEASUREMENT = ("source", *DATADOG_METRIC, "filter", "unit")
#: A stage's ``traces:`` selector.
TRACE_MATCH = ("source", "service", "span_name", "attributes")
#: A stage's ``errors:`` / ``retries:`` (a counter, or a selector on its process histogram).
FLOW_COUNTER = ("source", "counter", "selector")
#: A stage's ``inventory:`` (a queue-depth or consumer-lag gauge).
FLOW_GAUGE = ("source", "gauge", "selector")
SEGMENTS = ("labels", "hours", "weekdays")
EVENT = ("name", "start", "end", "cron", "duration", "tz")
#: The kinds of a planned change (one per ``future`` item, beside ``hop``).
CHANGE_KINDS = ("scale", "cap", "remove", "parallel")
CHANGE = ("hop", *CHANGE_KINDS)
#: How many example items each percentile lists, and the exemplar labels holding trace ids.
EXAMPLES = ("count", "trace_id_labels")
#: Where a trace id opens: a preset (with url, datasource) or a URL template.
LINKS = ("preset", "url", "datasource", "template")
#: ``engine:`` as a mapping (see :mod:`mapper.core.spec.engine`).
ENGINE = ("kind", "scheduler", "partition_spans", "memory_budget", "scratch")

#: Where each list applies, as the spec reference (docs/reference) names the places.
ALLOWED: dict[str, tuple[str, ...]] = {
    "(top level)": TOP,
    "sources.NAME (prometheus, scrape)": SOURCE,
    "sources.NAME.basic_auth": BASIC_AUTH,
    "sources.NAME.tls": TLS,
    "sources.NAME (traces)": TRACES_SOURCE,
    "sources.NAME (datadog)": DATADOG_SOURCE,
    "stages[]": STAGE,
    "stages[].wait, stages[].process": MEASUREMENT,
    "stages[].wait, stages[].process (datadog)": DATADOG_MEASUREMENT,
    "stages[].traces": TRACE_MATCH,
    "stages[].errors, stages[].retries": FLOW_COUNTER,
    "stages[].inventory": FLOW_GAUGE,
    "segments": SEGMENTS,
    "events[]": EVENT,
    "future[]": CHANGE,
    "examples": EXAMPLES,
    "links": LINKS,
    "engine": ENGINE,
}
