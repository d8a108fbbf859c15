"""What latmap knows of well-known exporters' latency histograms, and which series are never a stage.

``latmap discover --prometheus`` drafts a spec the way someone who knows the exporters would:
a Flower task, a Spring Boot URI or a span name is a unit of work of its own (one stage each,
with its selector), infrastructure and latmap's own series are left out with the reason,
and a size histogram is never a time. The table is data: one :class:`Convention` a row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Convention:
    """One exporter's latency histogram.

    ``unit`` is the spec unit of its observations; ``service`` the labels naming the service
    (the first present wins); ``work`` the labels telling its units of work apart (one stage
    per value); ``part`` ``wait`` or ``process`` when the exporter says which, "" to guess
    from the name; ``fixed`` label values to select when the series carry them (Istio's
    destination-reported side, say); ``role`` ``edge`` for service-graph edges, which order
    the stages rather than make them.
    """

    exporter: str
    names: tuple[str, ...]
    unit: str
    service: tuple[str, ...] = ("service", "job")
    work: tuple[str, ...] = ()
    part: str = ""
    fixed: tuple[tuple[str, str], ...] = ()
    role: str = "stage"


SERVICE_GRAPH = "traces_service_graph_request_server_seconds"
#: latmap's live value stream (``latmap serve --stream``), per its ``stage`` label.
LIVE_WAIT = "latmap_stage_wait_seconds"
LIVE_PROCESS = "latmap_stage_process_seconds"

CONVENTIONS: tuple[Convention, ...] = (
    Convention("Flower (Celery)", ("flower_task_runtime_seconds",), "s", work=("task",), part="process"),
    Convention("celery-exporter", ("celery_task_runtime", "celery_task_runtime_seconds"), "s", work=("name",),
               part="process"),
    Convention("Spring Boot / Micrometer", ("http_server_requests_seconds",), "s",
               service=("application", "service", "job"), work=("uri", "method"), part="process"),
    Convention("ASP.NET Core / OTel HTTP server", ("http_server_request_duration_seconds",), "s",
               service=("service_name", "service", "job"), work=("http_route",), part="process"),
    Convention("Go promhttp", ("http_request_duration_seconds",), "s", work=("handler",), part="process"),
    Convention("Envoy / Istio", ("istio_request_duration_milliseconds",), "ms",
               service=("destination_workload", "destination_service_name"), part="process",
               fixed=(("reporter", "destination"),)),
    Convention("Linkerd", ("response_latency_ms",), "ms", service=("deployment", "service", "job"), part="process",
               fixed=(("direction", "inbound"),)),
    Convention("OTel Collector spanmetrics",
               ("traces_span_metrics_duration", "traces_span_metrics_duration_milliseconds", "duration_milliseconds"),
               "ms",
               service=("service_name", "service"), work=("span_name",), part="process"),
    Convention("OTel Collector spanmetrics", ("traces_span_metrics_duration_seconds", "duration_seconds"), "s",
               service=("service_name", "service"), work=("span_name",), part="process"),
    Convention("Tempo metrics-generator spanmetrics", ("traces_spanmetrics_latency",), "s",
               service=("service", "service_name"), work=("span_name",), part="process"),
    Convention("OTel Collector / Tempo servicegraph", (SERVICE_GRAPH, "traces_service_graph_request_client_seconds"),
               "s", service=("server",), part="process", role="edge"),
    Convention("latmap live stream", (LIVE_WAIT,), "s", service=("stage",), part="wait"),
    Convention("latmap live stream", (LIVE_PROCESS,), "s", service=("stage",), part="process"),
)
_BY_NAME = {n: c for c in CONVENTIONS for n in c.names}

#: Labels that tell a family's units of work apart when no convention names them.
WORK_LABELS = ("task", "handler", "route", "http_route", "uri", "method", "queue", "topic", "operation",
               "span_name", "endpoint", "grpc_method", "rpc_method")
#: Label values that are the exporter's own scrape endpoint, not the app's work.
SCRAPE_PATHS = ("/metrics", "/actuator/prometheus", "/prometheus", "/-/healthy", "/-/ready")
#: Name prefixes of infrastructure series: Prometheus itself, the Go and process collectors,
#: the client libraries' scrape handler, scrape bookkeeping.
INFRA_PREFIXES = ("prometheus_", "go_", "process_", "promhttp_", "scrape_", "net_conntrack_", "otelcol_",
                  "tempo_", "loki_", "grafana_", "alertmanager_")


def convention(name: str) -> Convention | None:
    """The known exporter convention of a histogram family, ``None`` when latmap knows none."""
    return _BY_NAME.get(name)


def left_out(name: str, unit: str = "") -> str | None:
    """Why a histogram family is never a stage (one short phrase), ``None`` when it may be one."""
    if name in (LIVE_WAIT, LIVE_PROCESS):
        return None
    if name == "latmap_lead_time_seconds":
        return "latmap's own lead time: the end to end, never a stage (use it as `end_to_end:`)"
    if name.startswith("latmap_"):
        return "latmap's own series"
    if name.startswith(INFRA_PREFIXES):
        return "infrastructure (Prometheus, Go runtime, process, scrape handler)"
    if "_exporter_" in name or name.startswith("exporter_") or "_scrape_" in name or name.endswith("_scrape"):
        return "the exporter's own scrape series"
    if name.endswith("_bytes") or "_size" in name or unit.lower() in ("bytes", "byte", "by"):
        return "a size, not a time"
    return None
