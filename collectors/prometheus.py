"""The Prometheus source: any back end that speaks the Prometheus HTTP API.

Prometheus, Thanos, Mimir and VictoriaMetrics all answer ``/api/v1/query``,
``/api/v1/query_range``, ``/api/v1/series`` and ``/api/v1/metadata`` alike, so one client
serves them all.

How a window distribution is read, and why:

* classic histogram: the exact increase of every ``_bucket``, ``_count`` and ``_sum`` series
  over the window (:mod:`collectors.promcount`: whole counts, series born in the window
  counted from zero, resets handled), added by ``le`` across instances
  (:mod:`collectors.promhist`). That is the histogram of exactly the observations in the
  window; averaging per-step quantiles would not be.
* native histogram: ``sum(increase(x{sel}[window]))``, read from its bucket list.
* summary: the ``quantile`` series per series, never averaged, never merged across
  different label values (:mod:`collectors.promsummary`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from collectors import promql
from collectors.base import no_data, quantile_free_summary
from collectors.classic import checked_histogram
from collectors.http import HttpClient
from collectors.promcount import LOOKBACK, exact_increases
from collectors.promexemplars import decode_exemplars
from collectors.promhist import classic_histogram
from collectors.promjson import QueryResult, decode_list, decode_metadata, decode_query
from collectors.promsummary import SummarySeries, invalid_quantile, quantile_label, series_key, summary_result
from mapper.core.durations import prom_duration
from mapper.core.errors import SourceError
from mapper.core.model import Check, MeasurementResult, Window
from mapper.core.redact import remote_text
from mapper.core.spec import Measurement, SourceSpec

#: Prometheus refuses range queries of more than 11,000 points per series.
MAX_POINTS = 11_000


class PrometheusClient:
    """The HTTP API calls latmap makes, decoded. Errors carry the URL.

    With ``remember`` (one map's client: the map asks about one fixed window) each decoded
    answer is kept, so a question asked twice (two stages reading one histogram, the segments
    and the map reading one target's scrapes) is sent once; errors are not kept.
    """

    def __init__(self, spec: SourceSpec, backoff: float = 0.25, remember: bool = False) -> None:
        self.http = HttpClient(spec, backoff=backoff)
        self.answers: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] | None = {} if remember else None

    def _call(self, path: str, params: dict[str, Any], decode: Callable[[Any, str], Any]) -> Any:
        key = (path, tuple(sorted(params.items())))
        if self.answers is not None and key in self.answers:
            return self.answers[key]
        url = self.http.url(path)
        status, body = self.http.json("POST", path, data=params)
        if status >= 400 and not (isinstance(body, dict) and body.get("status") == "error"):
            raise SourceError(f"{url}: HTTP {status}")
        answer = decode(body, url)
        if self.answers is not None:
            self.answers[key] = answer
        return answer

    def query(self, expr: str, time: float) -> QueryResult:
        """Instant query at ``time`` (unix seconds)."""
        return self._call("/api/v1/query", {"query": expr, "time": f"{time:.3f}"}, decode_query)

    def query_range(self, expr: str, start: float, end: float, step: float) -> QueryResult:
        """Range query; ``step`` is widened so no series exceeds :data:`MAX_POINTS`."""
        step = max(step, (end - start) / (MAX_POINTS - 1), 0.001)
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:.3f}"}
        return self._call("/api/v1/query_range", params, decode_query)

    def query_exemplars(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        """The series with exemplars of ``expr`` in ``start``..``end`` (needs Prometheus's
        ``--enable-feature=exemplar-storage``; without it the answer is empty)."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}"}
        series: list[dict[str, Any]] = self._call("/api/v1/query_exemplars", params, decode_exemplars)
        return series

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

    def __init__(self, spec: SourceSpec, backoff: float = 0.25, remember: bool = False) -> None:
        self.spec = spec
        self.client = PrometheusClient(spec, backoff=backoff, remember=remember)

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
        if m.kind == "histogram":
            classic = classic_histogram(self.client.query, m, window, where)
            if classic is not None:
                dist, checks, expr = classic
                provenance = f"{self.spec.name} ({self.spec.url}): exact increase of {expr}"
                if dist is None:
                    return MeasurementResult(None, provenance, tuple(checks))
                if dist.count <= 0:
                    r = no_data(where, provenance)
                    return MeasurementResult(None, provenance, tuple(checks) + r.checks)
                checks += self._scrape_gaps(m, window, where)
                return MeasurementResult(dist, provenance, tuple(checks))
        if m.kind == "query":
            expr = promql.raw_query(m.name, window.seconds)
        else:
            expr = promql.bucket_increase(m.name, m.selector, window.seconds)
        provenance = f"{self.spec.name} ({self.spec.url}): {expr}"
        result = self.client.query(expr, window.end)
        checks = self._warnings(result, where)
        # Every sample that is no native histogram is a bucket to check (one without 'le' too:
        # checked_histogram refuses it with a check rather than dropping it unseen).
        labelled = [(s.labels, s.value) for s in result.samples if s.value is not None and s.histogram is None
                    and ("le" in s.labels or m.kind == "histogram")]
        buckets = [x for x in labelled if "le" in x[0]]
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
            if h.negative_count > 0:  # a latency cannot be negative: no percentile of it is honest
                return MeasurementResult(None, provenance, (*checks, Check(
                    "error", "negative-observations",
                    f"{where}: {h.negative_count:.0f} of {h.count:.0f} observations of the native histogram are "
                    "below zero; a latency cannot be negative (a clock stepped back, or this is not a latency), "
                    "so no percentile is shown")))
            return MeasurementResult(h.distribution(m.scale), provenance, tuple(checks))
        if not buckets:
            r = no_data(where, provenance)
            return MeasurementResult(None, provenance, tuple(checks) + r.checks)
        dist, made = checked_histogram(labelled, m.scale, where, None)
        checks += made
        if dist is None:
            return MeasurementResult(None, provenance, tuple(checks))
        if dist.count <= 0:
            r = no_data(where, provenance)
            return MeasurementResult(None, provenance, tuple(checks) + r.checks)
        return MeasurementResult(dist, provenance, tuple(checks))

    def _scrape_gaps(self, m: Measurement, window: Window, where: str) -> list[Check]:
        """A check per target whose scrapes failed in the window (``up == 0``) while the
        histogram's series existed: failures before its first sample (a target that did not
        exist yet) are not gaps in its data."""
        result = self.client.query(promql.failed_scrapes(m.name, m.selector, window.seconds), window.end)
        out = []
        for s in result.samples:
            ids = {k: v for k, v in s.labels.items() if k in ("job", "instance")}
            failed = self._failed_while_alive(m, window, ids)
            if failed <= 0:
                continue
            target = ", ".join(f"{k}={v}" for k, v in sorted(ids.items()))
            out.append(Check(
                "warning", "scrape-gap",
                f"{where}: {failed} failed scrape(s) of {target or 'its target'} in the window (up == 0); "
                "counts resume at the next scrape, but a restart during the gap loses its observations"))
        return out

    def _failed_while_alive(self, m: Measurement, window: Window, ids: dict[str, str]) -> int:
        """Failed scrapes of target ``ids`` in the window at or after the series' first sample
        (all of them when the series existed before the window): two raw-sample queries."""
        rng = prom_duration(window.seconds)
        up = self.client.query(f"{promql.selector('up', ids)}[{rng}]", window.end)
        series = self.client.query(
            f"{promql.selector(m.name + '_count', {**m.selector, **ids})}[{prom_duration(window.seconds + LOOKBACK)}]",
            window.end)
        firsts = [float(x.timestamps.min()) for x in series.series if x.timestamps.size]
        born = min(firsts) if firsts else math.inf
        since = -math.inf if born <= window.start else born
        return int(sum(int(np.sum((x.values == 0) & (x.timestamps >= since) & (x.timestamps > window.start)))
                       for x in up.series))

    def _summary(self, m: Measurement, window: Window) -> MeasurementResult:
        where = self._where(m)
        expr = promql.summary_quantiles(m.name, m.selector)
        provenance = f"{self.spec.name} ({self.spec.url}): {expr}"
        result = self.client.query(expr, window.end)
        checks = self._warnings(result, where)
        quantiles: dict[str, dict[float, float]] = {}
        labels: dict[str, dict[str, str]] = {}
        for s in result.samples:
            if s.value is None:
                continue
            key = series_key(s.labels)
            q = quantile_label(s.labels.get("quantile"))
            if q is None:
                checks.append(invalid_quantile(where, key, s.labels.get("quantile")))
                continue
            labels[key] = {k: v for k, v in s.labels.items() if k not in ("quantile", "__name__")}
            quantiles.setdefault(key, {})[q] = s.value * m.scale
        counts = exact_increases(self.client.query, promql.selector(m.name + "_count", m.selector), window, where)
        sums = exact_increases(self.client.query, promql.selector(m.name + "_sum", m.selector), window, where)
        checks += [*counts.checks, *sums.checks]
        count_of = {series_key(x.labels): x.increase for x in counts.series}
        sum_of = {series_key(x.labels): x.increase * m.scale for x in sums.series}
        if not quantiles:
            count = counts.total
            total = sums.total if sums.series else None
            r = (quantile_free_summary(where, provenance, count, total, m.scale) if count > 0
                 else no_data(where, provenance))
            return MeasurementResult(r.distribution, provenance, tuple(checks) + r.checks)
        series = [SummarySeries(labels[k], qs, count_of.get(k, 0.0), sum_of.get(k)) for k, qs in quantiles.items()]
        return summary_result(where, provenance, series, checks)

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
