"""The Prometheus source: any back end that speaks the Prometheus HTTP API.

Prometheus, Thanos, Mimir and VictoriaMetrics all answer ``/api/v1/query``,
``/api/v1/query_range``, ``/api/v1/series`` and ``/api/v1/metadata`` alike, so one client
serves them all.

How a window distribution is read, and why:

* classic histogram: ``sum by (le) (increase(x_bucket{sel}[window]))`` at the window's end.
  The increase of every bucket over the whole window is the histogram of exactly the
  observations in the window, across all instances; averaging per-step quantiles would not be.
* native histogram: ``sum(increase(x{sel}[window]))``, read from its bucket list.
* summary: the ``quantile`` series per instance, never averaged (a check says why).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from collectors import promql
from collectors.base import histogram_from_buckets, no_data, pick_labels, quantile_free_summary
from collectors.http import HttpClient
from collectors.promjson import QueryResult, decode_list, decode_metadata, decode_query
from mapper.core.distribution import SummaryDistribution
from mapper.core.errors import SourceError
from mapper.core.model import Check, MeasurementResult, Window
from mapper.core.redact import remote_text
from mapper.core.spec import Measurement, SourceSpec

#: Prometheus refuses range queries of more than 11,000 points per series.
MAX_POINTS = 11_000


class PrometheusClient:
    """The HTTP API calls latmap makes, decoded. Errors carry the URL."""

    def __init__(self, spec: SourceSpec, backoff: float = 0.25) -> None:
        self.http = HttpClient(spec, backoff=backoff)

    def _call(self, path: str, params: dict[str, Any], decode: Callable[[Any, str], Any]) -> Any:
        url = self.http.url(path)
        status, body = self.http.json("POST", path, data=params)
        if status >= 400 and not (isinstance(body, dict) and body.get("status") == "error"):
            raise SourceError(f"{url}: HTTP {status}")
        return decode(body, url)

    def query(self, expr: str, time: float) -> QueryResult:
        """Instant query at ``time`` (unix seconds)."""
        return self._call("/api/v1/query", {"query": expr, "time": f"{time:.3f}"}, decode_query)

    def query_range(self, expr: str, start: float, end: float, step: float) -> QueryResult:
        """Range query; ``step`` is widened so no series exceeds :data:`MAX_POINTS`."""
        step = max(step, (end - start) / (MAX_POINTS - 1), 0.001)
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:.3f}"}
        return self._call("/api/v1/query_range", params, decode_query)

    def series(self, match: str, start: float, end: float) -> list[dict[str, str]]:
        params = {"match[]": match, "start": f"{start:.3f}", "end": f"{end:.3f}"}
        return self._call("/api/v1/series", params, decode_list)

    def metadata(self) -> dict[str, list[dict[str, str]]]:
        url = self.http.url("/api/v1/metadata")
        _, body = self.http.json("GET", "/api/v1/metadata")
        return decode_metadata(body, url)


@dataclass(frozen=True)
class QuantileSeries:
    """A percentile over time (for plots): per-step quantiles, never to be averaged."""

    q: float
    timestamps: np.ndarray
    values: np.ndarray
    step: float


class PrometheusCollector:
    """Reads histograms and summaries from a Prometheus-compatible source."""

    def __init__(self, spec: SourceSpec, backoff: float = 0.25) -> None:
        self.spec = spec
        self.client = PrometheusClient(spec, backoff=backoff)

    def collect(self, measurement: Measurement, window: Window) -> MeasurementResult:
        if window.seconds <= 0:
            raise SourceError(f"{measurement.place}: empty window ({window.start} .. {window.end})")
        if measurement.kind == "summary":
            return self._summary(measurement, window)
        return self._histogram(measurement, window)

    def _where(self, m: Measurement) -> str:
        return f"{m.name if m.kind != 'query' else 'query'} ({m.place})"

    def _warnings(self, result: QueryResult, where: str) -> list[Check]:
        return [Check("warning", "source-warning", f"{where}: Prometheus warns: {remote_text(w, 500)}")
                for w in result.warnings]

    def _histogram(self, m: Measurement, window: Window) -> MeasurementResult:
        where = self._where(m)
        if m.kind == "query":
            expr = promql.raw_query(m.name, window.seconds)
        else:
            expr = promql.bucket_increase(m.name, m.selector, window.seconds)
        provenance = f"{self.spec.name} ({self.spec.url}): {expr}"
        result = self.client.query(expr, window.end)
        checks = self._warnings(result, where)
        buckets = [(s.labels["le"], s.value) for s in result.samples
                   if "le" in s.labels and s.value is not None]
        natives = [s.histogram for s in result.samples if s.histogram is not None]
        if m.kind == "query" and result.samples and not buckets and not natives:
            raise SourceError(f"{where}: the query returns no 'le' buckets and no native histogram")
        if not buckets and not natives and m.kind == "histogram":
            expr = promql.native_increase(m.name, m.selector, window.seconds)
            native = self.client.query(expr, window.end)
            checks += self._warnings(native, where)
            natives = [s.histogram for s in native.samples if s.histogram is not None]
            if natives:
                provenance = f"{self.spec.name} ({self.spec.url}): {expr}"
        if natives:
            h = natives[0]
            if h.count <= 0:
                return no_data(where, provenance)
            return MeasurementResult(h.distribution(m.scale), provenance, tuple(checks))
        if not buckets:
            r = no_data(where, provenance)
            return MeasurementResult(None, provenance, tuple(checks) + r.checks)
        total_sum = count = resets = None
        if m.kind == "histogram":
            aux = self.client.query(promql.histogram_aux(m.name, m.selector, window.seconds), window.end)
            parts = {s.labels.get(promql.PART_LABEL): s.value for s in aux.samples}
            total_sum, count, resets = parts.get("sum"), parts.get("count"), parts.get("resets")
        dist, made = histogram_from_buckets(buckets, m.scale, where, total_sum)
        checks += made
        if dist is None:
            return MeasurementResult(None, provenance, tuple(checks))
        if dist.count <= 0:
            r = no_data(where, provenance)
            return MeasurementResult(None, provenance, tuple(checks) + r.checks)
        if m.kind == "histogram":
            checks += self._scrape_gaps(m, window, where)
        if resets:
            checks.append(Check(
                "info", "counter-reset",
                f"{where}: {resets:.0f} counter reset(s) in the window (a restart); increase() "
                "compensates, but observations between the last scrape and the reset are lost",
            ))
        if count is not None and not math.isclose(count, dist.count, rel_tol=1e-3, abs_tol=1.0):
            checks.append(Check(
                "warning", "count-mismatch",
                f"{where}: _count increased by {count:.0f} but the +Inf bucket by "
                f"{dist.count:.0f}; the exporter is inconsistent",
            ))
        return MeasurementResult(dist, provenance, tuple(checks))

    def _scrape_gaps(self, m: Measurement, window: Window, where: str) -> list[Check]:
        """A check per target whose scrapes failed in the window (from ``up``)."""
        result = self.client.query(promql.failed_scrapes(m.name, m.selector, window.seconds), window.end)
        out = []
        for s in result.samples:
            target = ", ".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k in ("job", "instance"))
            out.append(Check(
                "warning", "scrape-gap",
                f"{where}: {s.value:.0f} failed scrape(s) of {target or 'its target'} in the window (up == 0); "
                "counts resume at the next scrape, but a restart during the gap loses its observations"))
        return out

    def _summary(self, m: Measurement, window: Window) -> MeasurementResult:
        where = self._where(m)
        expr = promql.summary_quantiles(m.name, m.selector)
        provenance = f"{self.spec.name} ({self.spec.url}): {expr}"
        result = self.client.query(expr, window.end)
        checks = self._warnings(result, where)
        instances: dict[str, dict[float, float]] = {}
        for s in result.samples:
            if s.value is None:
                continue
            key = pick_labels(s.labels, ("quantile", "__name__"))
            q = float(s.labels["quantile"])
            instances.setdefault(key, {})[q] = s.value * m.scale
        count_r = self.client.query(promql.summary_count(m.name, m.selector, window.seconds), window.end)
        count = sum(s.value or 0.0 for s in count_r.samples)
        if not instances:
            r = (quantile_free_summary(where, provenance, count, None, m.scale) if count > 0
                 else no_data(where, provenance))
            return MeasurementResult(r.distribution, provenance, tuple(checks) + r.checks)
        per = tuple(
            (key, SummaryDistribution(qs, count / len(instances), origin=f"summary {key}"))
            for key, qs in sorted(instances.items())
        )
        checks.append(Check(
            "info", "summary-window",
            f"{where}: summary quantiles cover each client's own sliding window at the window's "
            "end, not the whole window",
        ))
        if len(per) == 1:
            return MeasurementResult(per[0][1], provenance, tuple(checks), per)
        qs_all = sorted({q for _, d in per for q in d.quantiles})
        worst = {q: max(d.quantiles.get(q, -math.inf) for _, d in per) for q in qs_all}
        checks.append(Check(
            "warning", "summary-not-aggregatable",
            f"{where}: {len(per)} instances; summary quantiles cannot be aggregated, so the map "
            "shows the worst instance per quantile (use a histogram to get the true percentile)",
        ))
        dist = SummaryDistribution(worst, count, origin=f"worst of {len(per)} summary instances")
        return MeasurementResult(dist, provenance, tuple(checks), per)

    def quantile_series(self, m: Measurement, window: Window, q: float,
                        points: int = 240) -> QuantileSeries:
        """The q-quantile over the window, one point per step (for plots only).

        The step respects Prometheus's 11,000-point limit; each point is the quantile of the
        bucket rates over ``max(step, 1m)``, so every point is a true quantile of its own slice.
        """
        if m.kind != "histogram":
            raise SourceError(f"{m.place}: quantiles over time need a histogram measurement")
        step = max(window.seconds / max(points, 1), window.seconds / (MAX_POINTS - 1), 1.0)
        expr = promql.quantile_over_time(m.name, m.selector, q, max(step, 60.0))
        result = self.client.query_range(expr, window.start + step, window.end, step)
        if not result.series:
            return QuantileSeries(q, np.array([]), np.array([]), step)
        s = result.series[0]
        return QuantileSeries(q, s.timestamps, s.values * m.scale, step)
