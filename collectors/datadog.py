"""The Datadog source: distribution and histogram metrics per stage, APM spans for traces.

**Distributions** are stored by Datadog as DDSketches, so Datadog can compute a percentile
over the whole window itself: latmap asks the scalar API (``/api/v2/query/scalar``,
aggregator ``percentile``) for each percentile, plus the exact count, sum, min and max, and
passes the answers through as a :class:`~mapper.core.distribution.SketchDistribution` whose
interval is DDSketch's relative accuracy. A percentile Datadog does not serve (percentiles
not enabled on the metric, or one it refuses) is "not available", never interpolated. The
series over the window (for the charts) come from the timeseries API at one-hour rollups,
split into requests of at most ``max_points`` points; every hour is its own sketch answer.

When Datadog refuses the whole window in one query, the window is split into days: counts
and sums add up, min and max are exact, and each percentile is given only as the range of
the days' percentiles (a quantile of a union lies between its parts'): never an average.

**Histograms** (Datadog's agent-side type) have ``.median``/``.95percentile``/``.max``
computed by each agent per host and per flush interval. Those cannot be combined into the
window's percentile; latmap reads each host's smallest and largest (rollups of ``min`` and
``max``, never the default ``avg``) and reports the range they bound, per host and overall.

**APM spans** come from the span search API, page by page, into the same
:class:`~mapper.core.spans.SpanBatch` as OTLP, so the hop logic is shared.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from collectors.base import SourceBase
from collectors.datadog_api import DatadogClient, Notify, QueryRejected, ScalarColumn, Unit
from collectors.datadog_spans import page_cursor, spans_from_events
from mapper.core.distribution import HostAggregateDistribution, SketchDistribution, percentile_label
from mapper.core.errors import SourceError
from mapper.core.model import Check, MeasurementResult, Window
from mapper.core.source import Give
from mapper.core.spans import LoadedSpans, SpanBatch, in_window
from mapper.core.spec import Measurement, SourceSpec

#: Percentiles Datadog serves for every distribution with percentiles enabled; latmap asks
#: for them besides the spec's, so a convolution has more of the shape to work with.
STANDARD_PERCENTILES = (0.5, 0.75, 0.9, 0.95, 0.99)
#: Points per series per timeseries request.
MAX_POINTS = 1500
#: The series' rollup: one point per hour, like the Prometheus hourly series.
SERIES_INTERVAL = 3600
#: Chunk length when Datadog refuses the whole window in one scalar query.
CHUNK = 86400


def percentile_aggregator(q: float) -> str | None:
    """``p99``, ``p99.99`` ... as Datadog writes them (two decimals at most), or None."""
    pct = round(q * 100, 6)
    if not 0 < pct < 100 or abs(pct * 100 - round(pct * 100)) > 1e-6:
        return None
    return percentile_label(q)


def host_suffix(q: float) -> str | None:
    """The agent's name for a histogram percentile: ``median``, ``95percentile`` ..."""
    if math.isclose(q, 0.5):
        return "median"
    pct = q * 100
    return f"{round(pct)}percentile" if abs(pct - round(pct)) < 1e-9 and 0 < pct < 100 else None


@dataclass(frozen=True)
class _Scale:
    factor: float
    checks: tuple[Check, ...]
    problem: str | None = None


class DatadogCollector(SourceBase):
    """Reads distribution and histogram metrics, and APM spans, from one Datadog site."""

    gives: frozenset[Give] = frozenset({"histograms", "spans"})

    def __init__(self, spec: SourceSpec, percentiles: Sequence[float] = (0.5, 0.99, 0.9999),
                 notify: Notify | None = None, max_points: int = MAX_POINTS) -> None:
        self.spec = spec
        self.client = DatadogClient(spec, notify)
        self.percentiles = tuple(sorted({*percentiles, *STANDARD_PERCENTILES}))
        #: A histogram's agent sends .95percentile by default; others only when configured.
        self.host_percentiles = tuple(sorted({*percentiles, 0.95}))
        self.max_points = max_points

    def collect(self, measurement: Measurement, window: Window) -> MeasurementResult:
        if measurement.kind == "distribution":
            return self._distribution(measurement, window)
        if measurement.kind == "histogram":
            return self._host_histogram(measurement, window)
        raise SourceError(f"{measurement.place}: a Datadog source reads distribution or histogram, "
                          f"not {measurement.kind}")

    def spans(self, window: Window, services: Sequence[str] = (), attributes: bool = False) -> LoadedSpans:
        # Datadog's spans carry their tags as columns only: ``attributes`` is not given here.
        return load_datadog_spans(self.spec, window, services, client=self.client)

    # ------------------------------------------------------------------ distributions

    @property
    def _where(self) -> str:
        return self.client.url("/api/v2/query/scalar")

    def _origin(self) -> str:
        return f"Datadog DDSketch ({self.client.site})"

    def _distribution(self, m: Measurement, window: Window) -> MeasurementResult:
        scope = f"{m.name}{{{m.filter}}}"
        a = self.spec.datadog.relative_accuracy  # type: ignore[union-attr]
        provenance = (f"{self.spec.name} (Datadog {self.client.site}): distribution "
                      f"pXX/count/sum/min/max:{scope} over the window, computed by Datadog (DDSketch, "
                      f"relative accuracy {a:.2%})")
        where = f"{self.spec.name}: {scope}"
        start_ms, end_ms = int(window.start * 1000), int(window.end * 1000)
        checks: list[Check] = []
        try:
            stats, served, refused = self._window_stats(scope, start_ms, end_ms)
            bounds: dict[float, tuple[float, float]] = {}
        except QueryRejected as err:
            if window.seconds <= CHUNK:
                raise
            stats, bounds, refused = self._chunked(scope, window)
            served = {}
            checks.append(Check("warning", "datadog-chunked", (
                f"{where}: Datadog refused the whole window in one query ({_said(err)}); read day by day: "
                "counts add up, min/max are exact, percentiles are only bounded by the days' percentiles")))
        scale = self._scale(m, [c.unit for c in (*stats.values(), *served.values()) if c.unit], where)
        checks += scale.checks
        if scale.problem:
            return MeasurementResult(None, provenance, (*checks, Check("error", "unit-mismatch", scale.problem)))
        f = scale.factor
        count = _first(stats.get("count"))
        if not count:
            return MeasurementResult(None, provenance, (*checks, Check(
                "warning", "no-data", f"{where}: Datadog has no points in the window")))
        total, low, high = (_first(stats.get(k)) for k in ("sum", "min", "max"))
        quantiles = {q: v * f for q, c in served.items() if (v := _first(c)) is not None}
        unavailable = dict(refused)
        for q, c in served.items():
            if _first(c) is None and q not in unavailable:
                unavailable[q] = (f"Datadog has no {percentile_label(q)} for {scope} (percentiles not "
                                  "enabled on this distribution? enable them in Metrics Summary)")
        dist = SketchDistribution(
            quantiles, count, None if total is None else total * f, None if low is None else low * f,
            None if high is None else high * f, a, self._origin(),
            {q: (lo * f, hi * f) for q, (lo, hi) in bounds.items()}, unavailable)
        series, more = self._series(scope, window, f, a, where)
        return MeasurementResult(dist, provenance, (*checks, *more), series=series)

    def _window_stats(self, scope: str, start_ms: int, end_ms: int
                      ) -> tuple[dict[str, ScalarColumn], dict[float, ScalarColumn], dict[float, str]]:
        """Count, sum, min, max and every percentile over the window, one scalar call when
        Datadog takes them together, else one per percentile to tell which it refuses."""
        stats_q = [("count", f"count:{scope}", "sum"), ("sum", f"sum:{scope}", "sum"),
                   ("min", f"min:{scope}", "min"), ("max", f"max:{scope}", "max")]
        pq = [(q, agg) for q in self.percentiles if (agg := percentile_aggregator(q))]
        refused = {q: f"Datadog serves percentiles with two decimals at most, not {percentile_label(q)}"
                   for q in self.percentiles if percentile_aggregator(q) is None}
        named = [(f"q{i}", f"{agg}:{scope}", "percentile") for i, (_, agg) in enumerate(pq)]
        try:
            cols = _by_name(self.client.scalar(stats_q + named, start_ms, end_ms), stats_q + named, self._where)
            return ({k: cols[k] for k, _, _ in stats_q if k in cols},
                    {q: cols[f"q{i}"] for i, (q, _) in enumerate(pq) if f"q{i}" in cols}, refused)
        except QueryRejected:
            pass  # find out which query it is: the stats alone, then each percentile
        stats_cols = _by_name(self.client.scalar(stats_q, start_ms, end_ms), stats_q, self._where)
        served: dict[float, ScalarColumn] = {}
        for i, (q, _) in enumerate(pq):
            try:
                got = _by_name(self.client.scalar([named[i]], start_ms, end_ms), [named[i]], self._where)
                if named[i][0] in got:
                    served[q] = got[named[i][0]]
            except QueryRejected as err:
                refused[q] = f"Datadog refused {named[i][1]}: {_said(err)}"
        return stats_cols, served, refused

    def _chunked(self, scope: str, window: Window
                 ) -> tuple[dict[str, ScalarColumn], dict[float, tuple[float, float]], dict[float, str]]:
        """The window day by day: additive stats added, extremes kept, percentiles bounded."""
        count = total = 0.0
        has_sum = True
        lows: list[float] = []
        highs: list[float] = []
        per_q: dict[float, list[float]] = {}
        gaps: set[float] = set()
        refused: dict[float, str] = {}
        unit: Unit | None = None
        t = window.start
        while t < window.end:
            end = min(window.end, t + CHUNK)
            stats, served, refused_here = self._window_stats(scope, int(t * 1000), int(end * 1000))
            refused.update(refused_here)
            unit = unit or next((c.unit for c in (*stats.values(), *served.values()) if c.unit), None)
            n = _first(stats.get("count")) or 0.0
            if n > 0:
                count += n
                s = _first(stats.get("sum"))
                has_sum = has_sum and s is not None
                total += s or 0.0
                for key, into in (("min", lows), ("max", highs)):
                    if (v := _first(stats.get(key))) is not None:
                        into.append(v)
                for q in self.percentiles:
                    if (v := _first(served.get(q))) is not None:
                        per_q.setdefault(q, []).append(v)
                    else:  # a day without this percentile: the days' range bounds nothing
                        gaps.add(q)
            t = end
        for q in gaps:
            per_q.pop(q, None)
            refused.setdefault(q, f"Datadog did not serve {percentile_label(q)} for every day of the window")
        stats_out = {"count": ScalarColumn("count", (count,), None)}
        if has_sum:
            stats_out["sum"] = ScalarColumn("sum", (total,), unit)
        if lows:
            stats_out["min"] = ScalarColumn("min", (min(lows),), unit)
        if highs:
            stats_out["max"] = ScalarColumn("max", (max(highs),), unit)
        return stats_out, {q: (min(v), max(v)) for q, v in per_q.items()}, refused

    def _scale(self, m: Measurement, units: list[Unit], where: str) -> _Scale:
        """Seconds per unit of the values: Datadog's unit when it knows one (checked against
        the spec's ``unit:``), else the spec's."""
        unit = units[0] if units else None
        if unit is None:
            if m.unit_given:
                return _Scale(m.scale, ())
            return _Scale(m.scale, (Check("info", "unit-assumed", (
                f"{where}: Datadog knows no unit for {m.name}; assumed seconds (set unit: in the spec, "
                f"{m.place})")),))
        if unit.family != "time":
            return _Scale(1.0, (), f"{where}: Datadog says {m.name} is in {unit.name} ({unit.family}), "
                                   f"not a time; is it the right metric? ({m.place})")
        if m.unit_given and not math.isclose(unit.scale_factor, m.scale, rel_tol=1e-9):
            return _Scale(1.0, (), f"{where}: mismatched units: the spec says unit: {m.unit} ({m.place}) but "
                                   f"Datadog says {m.name} is in {unit.name}s; fix or remove unit:")
        return _Scale(unit.scale_factor, ())

    def _series(self, scope: str, window: Window, f: float, a: float, where: str
                ) -> tuple[tuple[np.ndarray, tuple[SketchDistribution, ...]] | None, list[Check]]:
        """The window hour by hour (for the charts): count and percentiles per hour, each
        hour Datadog's own sketch answer. A refused series leaves the map as it is."""
        pq = [(q, agg) for q in self.percentiles if (agg := percentile_aggregator(q))]
        queries = [("count", f"count:{scope}.rollup(sum, {SERIES_INTERVAL})")] + [
            (f"q{i}", f"{agg}:{scope}.rollup({SERIES_INTERVAL})") for i, (_, agg) in enumerate(pq)]
        step = SERIES_INTERVAL * self.max_points
        starts: list[float] = []
        rows: dict[str, list[float | None]] = {n: [] for n, _ in queries}
        nulls = total = 0
        t = float(math.floor(window.start / SERIES_INTERVAL) * SERIES_INTERVAL)
        try:
            while t < window.end:
                end = min(window.end, t + step)
                got = self.client.timeseries(queries, int(t * 1000), int(end * 1000), SERIES_INTERVAL * 1000)
                by_query = {got.query_index[i]: row for i, row in enumerate(got.values)}
                for j, stamp in enumerate(got.times):
                    if starts and stamp / 1000 <= starts[-1]:
                        continue  # a point on the boundary of two requests comes once
                    starts.append(stamp / 1000)
                    for k, (name, _) in enumerate(queries):
                        row = by_query.get(k)
                        value = row[j] if row is not None else None
                        total += 1
                        nulls += value is None
                        rows[name].append(value)
                t = end
        except QueryRejected as err:
            return None, [Check("warning", "datadog-series-refused",
                                f"{where}: no hourly series (Datadog refused it: {_said(err)})")]
        checks = []
        if nulls:
            checks.append(Check("info", "datadog-null-points", (
                f"{where}: {nulls:,} of {total:,} hourly points are null (no data in those hours); "
                "charted as gaps, not zeros")))
        if not starts:
            return None, checks
        dists = tuple(SketchDistribution(
            {q: v * f for i, (q, _) in enumerate(pq) if (v := rows[f"q{i}"][j]) is not None},
            rows["count"][j] or 0.0, relative_accuracy=a, origin=self._origin())
            for j in range(len(starts)))
        return (np.array(starts, dtype=float), dists), checks

    # ------------------------------------------------------------------ histograms

    def _host_histogram(self, m: Measurement, window: Window) -> MeasurementResult:
        tags = m.filter
        where = f"{self.spec.name}: {m.name}{{{tags}}}"
        start, end = int(window.start), int(window.end)
        rollup = max(10, math.ceil(window.seconds / self.max_points))
        provenance = (f"{self.spec.name} (Datadog {self.client.site}): histogram {m.name}.<median|NNpercentile|"
                      f"max|count>{{{tags}}} by host, rollups of min/max over {rollup}s: agent-side per-host "
                      "aggregates, not combinable")
        counts = {s.scope: sum(v for _, v in s.points if v is not None) for s in self.client.query_v1(
            f"sum:{m.name}.count{{{tags}}} by {{host}}.as_count().rollup(sum, {rollup})", start, end)}
        total = sum(counts.values())
        if total <= 0:
            return MeasurementResult(None, provenance, (Check("warning", "no-data",
                                                              f"{where}: Datadog has no points in the window"),))
        unit_seen: list[Unit] = []
        per_host: dict[str, dict[float, tuple[float, float]]] = {}
        missing = []
        for q in self.host_percentiles:
            suffix = host_suffix(q)
            if suffix is None:
                continue
            ext: dict[str, dict[str, float]] = {}
            for agg in ("min", "max"):
                for s in self.client.query_v1(
                        f"{agg}:{m.name}.{suffix}{{{tags}}} by {{host}}.rollup({agg}, {rollup})", start, end):
                    vals = [v for _, v in s.points if v is not None]
                    if s.unit:
                        unit_seen.append(s.unit)
                    if vals:
                        ext.setdefault(s.scope, {})[agg] = (min if agg == "min" else max)(vals)
            if not ext:
                missing.append(f"{m.name}.{suffix}")
            for host, e in ext.items():
                if "min" in e and "max" in e:
                    per_host.setdefault(host, {})[q] = (e["min"], e["max"])
        maxima = [v for s in self.client.query_v1(f"max:{m.name}.max{{{tags}}}.rollup(max, {rollup})", start, end)
                  for _, v in s.points if v is not None]
        scale = self._scale(m, unit_seen, where)
        if scale.problem:
            return MeasurementResult(None, provenance, (*scale.checks, Check("error", "unit-mismatch", scale.problem)))
        f = scale.factor
        overall: dict[float, tuple[float, float]] = {}
        for bounds in per_host.values():
            for q, (lo, hi) in bounds.items():
                have = overall.get(q)
                overall[q] = (lo, hi) if have is None else (min(have[0], lo), max(have[1], hi))
        origin = "Datadog histogram (agent-side, per host and flush interval)"
        dist = HostAggregateDistribution({q: (lo * f, hi * f) for q, (lo, hi) in overall.items()}, total,
                                         max(maxima) * f if maxima else None, origin)
        instances = tuple((host, HostAggregateDistribution(
            {q: (lo * f, hi * f) for q, (lo, hi) in b.items()}, counts.get(host, 0.0), None, origin))
            for host, b in sorted(per_host.items()))
        checks = [*scale.checks, Check("warning", "histogram-per-host", (
            f"{where}: a Datadog histogram's percentiles are computed by each agent per host and flush "
            "interval and cannot be combined; latmap shows the range they bound. Submit it as a "
            "distribution for the window's percentiles"))]
        if missing:
            checks.append(Check("info", "histogram-percentile-missing", (
                f"{where}: no {', '.join(missing)} in Datadog (the agent sends only the percentiles in "
                "its histogram_percentiles setting)")))
        return MeasurementResult(dist, provenance, tuple(checks), per_instance=instances)


# ---------------------------------------------------------------------- APM spans


def load_datadog_spans(source: SourceSpec, window: Window, services: Sequence[str],
                       notify: Notify | None = None, client: DatadogClient | None = None) -> LoadedSpans:
    """The spans of ``services`` that start inside ``window``, page by page from the span
    search API, up to the source's ``max_spans``."""

    client = client or DatadogClient(source, notify)
    options = source.datadog
    assert options is not None
    names = " OR ".join(_quote(s) for s in sorted(set(services)))
    query = f"service:({names})" if services else "*"
    if options.spans_query:
        query = f"{query} {options.spans_query}"
    where = client.url("/api/v2/spans/events/search")
    start_ms, end_ms = int(window.start * 1000), int(window.end * 1000)
    batches: list[SpanBatch] = []
    set_aside: Counter[str] = Counter()
    cursor: str | None = None
    read = pages = 0
    truncated = False
    while True:
        body = client.search_spans(query, start_ms, end_ms, cursor, limit=min(1000, options.max_spans - read))
        pages += 1
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise SourceError(f"{where} page {pages}: answer has no data list (not a span search response)")
        data = body["data"]
        batch, rejected = spans_from_events(data, f"{where} page {pages}")
        batches.append(batch)
        set_aside.update(rejected)
        read += len(data)
        cursor = page_cursor(body)
        if pages % 10 == 0:
            (client.notify)(f"Datadog spans: {read:,} read in {pages} pages")
        if not cursor or not data:
            break
        if read >= options.max_spans:
            truncated = True
            break
    spans = in_window(SpanBatch.concat(batches), window, set_aside)
    notes: tuple[str, ...] = ()
    if truncated:
        notes = (f"Datadog {client.site}: stopped at max_spans {options.max_spans:,} ({pages} pages); "
                 "traces cut by the limit show as incomplete. Raise max_spans or map a shorter window",)
    return LoadedSpans(spans, dict(set_aside), f"Datadog APM {client.site} ({query})", notes)


def _quote(service: str) -> str:
    return service if all(c.isalnum() or c in "-_./" for c in service) else '"' + service.replace('"', '\\"') + '"'


# ---------------------------------------------------------------------- helpers


def _first(col: ScalarColumn | None) -> float | None:
    """A column's one value (queries without ``by``), None when Datadog has no data."""
    if col is None or not col.values:
        return None
    return col.values[0]


def _by_name(cols: list[ScalarColumn], asked: Sequence[tuple[str, str, str]],
             where: str = "/api/v2/query/scalar") -> dict[str, ScalarColumn]:
    """Columns by query name; by position when Datadog named them otherwise (formulas)."""
    names = {n for n, _, _ in asked}
    if all(c.name in names for c in cols):
        return {c.name: c for c in cols}
    if len(cols) == len(asked):
        return {n: c for (n, _, _), c in zip(asked, cols, strict=True)}
    raise SourceError(f"{where}: Datadog answered {len(cols)} columns for {len(asked)} queries "
                      f"({', '.join(c.name for c in cols)[:200]})")


def _said(err: Exception) -> str:
    text = str(err)
    marker = "rejected the query: "
    return text.split(marker, 1)[1] if marker in text else text


__all__ = ["DatadogCollector", "load_datadog_spans"]
