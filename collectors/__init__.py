"""Collectors: the sources latmap reads, one module per source kind, each implementing the
small :class:`~collectors.base.Collector` protocol; ``sources.make_collector`` picks one for a
source of the spec. Imports the core model only (:mod:`mapper.core`).

Prometheus and PromQL-compatible back ends (``prometheus``, ``promql``, ``promjson``,
``prom_segments``), a ``/metrics`` endpoint (``scrape``), Datadog (``datadog``,
``datadog_api``, ``datadog_spans``), spans from the spool or OTLP files (``traces``, ``otlp``),
and the receiver with its spool (``spool``). Names load on first use.
"""

from typing import TYPE_CHECKING

from mapper.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from collectors.base import Collector
    from collectors.datadog import DatadogCollector
    from collectors.prometheus import PrometheusCollector
    from collectors.scrape import ScrapeCollector
    from collectors.sources import make_collector, make_source

__all__ = ["Collector", "DatadogCollector", "PrometheusCollector", "ScrapeCollector", "make_collector", "make_source"]

__getattr__ = lazy_getattr(__name__, ("otlp", "spool"), {
    "Collector": "collectors.base",
    "DatadogCollector": "collectors.datadog",
    "PrometheusCollector": "collectors.prometheus",
    "ScrapeCollector": "collectors.scrape",
    "make_collector": "collectors.sources",
    "make_source": "collectors.sources",
})
