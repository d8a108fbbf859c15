"""One source per source kind of the spec: the registry ``make_source`` picks from, the one
door through which the app reaches the collectors."""

from __future__ import annotations

from collections.abc import Sequence

from collectors.base import Collector
from collectors.datadog import DatadogCollector
from collectors.prom_source import PrometheusSource
from collectors.scrape import ScrapeCollector
from collectors.traces import TraceFiles
from mapper.core.errors import SpecError
from mapper.core.source import Source
from mapper.core.spec import SourceSpec


def make_source(spec: SourceSpec, percentiles: Sequence[float] = (0.5, 0.99, 0.9999)) -> Source:
    """The source for one map of a source of the spec (``percentiles``: what a back end that
    computes percentiles itself, Datadog, is asked for). A Prometheus source remembers its
    answers: build one per map."""
    if spec.kind == "datadog":
        return DatadogCollector(spec, percentiles)
    if spec.kind == "prometheus":
        return PrometheusSource(spec)
    if spec.kind == "scrape":
        return ScrapeCollector(spec)
    if spec.kind == "traces":
        return TraceFiles(spec)
    raise SpecError(f"{spec.place}: no collector for source kind {spec.kind!r}")


def make_collector(spec: SourceSpec, percentiles: Sequence[float] = (0.5, 0.99, 0.9999)) -> Collector:
    """The collector for a source of the spec: :func:`make_source` (every source collects)."""
    return make_source(spec, percentiles)
