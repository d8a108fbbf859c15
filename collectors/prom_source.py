"""Prometheus as a :class:`~mapper.core.source.Source`: the collector's histograms and
summaries, the segments' hourly and per-label bucket counts (:mod:`collectors.prom_segments`),
the stages' flow counters and gauges (:mod:`collectors.prom_flow`) and the histograms'
exemplars (:mod:`collectors.promexemplars`), all through one client that remembers its
answers for the map, so a map sends no identical request twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from collectors import prom_slices
from collectors.base import SourceBase
from collectors.prom_flow import counter_increase, gauge_range
from collectors.prom_segments import hourly_buckets, label_buckets
from collectors.prometheus import PrometheusCollector
from collectors.promexemplars import exemplar_query, parse_exemplars
from mapper.core.distribution import HistogramDistribution
from mapper.core.flowread import CounterRead, GaugeRead
from mapper.core.model import Check, HourBuckets, Window
from mapper.core.source import ExemplarPoint, Give
from mapper.core.spec import Measurement, SourceSpec
from mapper.core.spec.flow import FlowMetric


class PrometheusSource(PrometheusCollector, SourceBase):
    """Everything one map reads from one Prometheus-compatible source."""

    gives: frozenset[Give] = frozenset({"histograms", "summaries", "hourly", "labels", "slices",
                                            "exemplars", "flow"})

    def __init__(self, spec: SourceSpec, backoff: float = 0.25) -> None:
        super().__init__(spec, backoff=backoff, remember=True)

    def hourly_buckets(self, measurement: Measurement, window: Window) -> list[HourBuckets]:
        return hourly_buckets(self.client, measurement, window)

    def label_buckets(self, measurement: Measurement, window: Window, label: str) -> dict[str, dict[float, float]]:
        return label_buckets(self.client, measurement, window, label)

    def slice_labels(self, measurement: Measurement, window: Window) -> dict[str, int]:
        return prom_slices.slice_labels(self.client, measurement, window)

    def label_histograms(self, measurement: Measurement, window: Window,
                         label: str) -> tuple[dict[str, HistogramDistribution], list[Check]]:
        return prom_slices.label_histograms(self.client, measurement, window, label)
    def counter_increase(self, metric: FlowMetric, window: Window) -> CounterRead:
        return counter_increase(self.client, self.spec, metric, window)

    def gauge_range(self, metric: FlowMetric, window: Window) -> GaugeRead:
        return gauge_range(self.client, self.spec, metric, window)

    def exemplars(self, measurement: Measurement, window: Window, trace_labels: Sequence[str],
                  where: str) -> tuple[list[ExemplarPoint], list[Check]]:
        series = self.client.query_exemplars(exemplar_query(measurement), window.start, window.end)
        points, checks = parse_exemplars(series, measurement, window, trace_labels, where)
        return [(p.trace_id, p.value, p.timestamp) for p in points], checks
