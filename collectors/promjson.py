"""Decoding Prometheus HTTP API answers (``/api/v1/*``) into typed values, without I/O.

Works on what Prometheus, Thanos, Mimir and VictoriaMetrics send: the ``{"status",
"data": {"resultType", "result"}, "warnings"}`` envelope, float samples as strings
(``"NaN"``, ``"+Inf"``), and native histograms under ``histogram``/``histograms`` with
buckets ``[boundary_rule, lower, upper, count]``. Anything else is a SourceError naming
the URL and the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mapper.core.distribution import HistogramDistribution
from mapper.core.errors import SourceError
from mapper.core.redact import remote_text


@dataclass(frozen=True)
class NativeHistogram:
    """A native histogram sample: count, sum and its non-empty buckets.

    Buckets are ``(rule, lower, upper, count)``; rule 0: (lower, upper], 1: [lower, upper),
    2: (lower, upper), 3: [lower, upper] (the zero bucket).
    """

    count: float
    sum: float
    buckets: tuple[tuple[int, float, float, float], ...]
    #: Where it was read (URL, field and series), for the errors about it.
    origin: str = ""

    @property
    def negative_count(self) -> float:
        """Observations in buckets wholly below zero (the zero bucket straddles it and is not
        counted): none can be a latency."""
        return float(sum(b[3] for b in self.buckets if b[1] < 0 and b[2] <= 0))

    def distribution(self, scale: float = 1.0, negative: Literal["refuse", "allow"] = "refuse"
                     ) -> HistogramDistribution:
        """The histogram as a distribution, in seconds (``scale`` converts the unit).

        Raises SourceError (``negative-observations``) when buckets below zero hold
        observations: a latency cannot be negative, so no percentile of it is honest.
        ``negative="allow"`` reads any real values (as Prometheus's ``histogram_quantile``)."""
        below = self.negative_count
        if below > 0 and negative == "refuse":
            raise SourceError(
                f"{self.origin or 'native histogram'}: negative-observations: {below:.0f} of {self.count:.0f} "
                "observations are below zero; a latency cannot be negative (a clock stepped back, or this is "
                "not a latency), so no percentile is made from it")
        bs = sorted(self.buckets, key=lambda b: (b[2], b[1]))
        lower = np.array([b[1] for b in bs], dtype=float)
        upper = np.array([b[2] for b in bs], dtype=float)
        if lower.size:
            # The zero bucket [-w, w] holds no negative observations when only positive
            # buckets are populated beside it (and no positive ones when only negative ones
            # are), as Prometheus assumes; alone, it stays symmetric around zero.
            zero = (lower < 0) & (upper > 0)
            pos, neg = np.any(lower[~zero] >= 0), np.any(upper[~zero] <= 0)
            if pos and not neg:
                lower = np.where(zero, 0.0, lower)
            elif neg and not pos:
                upper = np.where(zero, 0.0, upper)
            # A first custom bucket (-Inf, b] with b > 0 starts at 0, like a classic histogram.
            if lower[0] == -np.inf and upper[0] > 0:
                lower[0] = 0.0
        lower, upper = lower * scale, upper * scale
        counts = np.array([max(0.0, b[3]) for b in bs], dtype=float)
        return HistogramDistribution(lower, upper, counts, sum=self.sum * scale)


@dataclass(frozen=True)
class Sample:
    """One series' value at one time: a float or a native histogram."""

    labels: Mapping[str, str]
    timestamp: float
    value: float | None = None
    histogram: NativeHistogram | None = None


@dataclass(frozen=True)
class SeriesValues:
    """One series over time (a range query's matrix row)."""

    labels: Mapping[str, str]
    timestamps: np.ndarray
    values: np.ndarray
    histograms: tuple[tuple[float, NativeHistogram], ...] = ()


@dataclass(frozen=True)
class QueryResult:
    result_type: str
    samples: tuple[Sample, ...] = ()
    series: tuple[SeriesValues, ...] = ()
    scalar: float | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)


def parse_float(text: Any, where: str) -> float:
    """A Prometheus sample value (a JSON string, sometimes a number) as a float."""
    if isinstance(text, bool):
        raise SourceError(f"{where}: expected a number, got {text!r}")
    if isinstance(text, int | float):
        return float(text)
    if isinstance(text, str):
        try:
            return float(text)  # accepts "NaN", "+Inf", "-Inf", "1e-3"
        except ValueError:
            pass
    raise SourceError(f"{where}: expected a number, got {remote_text(repr(text), 40)}")


def _list(value: Any, where: str) -> list[Any]:
    """An optional JSON list (missing or null: empty); anything else is the server's mistake."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise SourceError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _pair(item: Any, where: str) -> tuple[float, Any]:
    if not isinstance(item, list) or len(item) != 2:
        raise SourceError(f"{where}: expected [timestamp, value], got {remote_text(item, 60)}")
    ts = parse_float(item[0], where)
    if not math.isfinite(ts):
        raise SourceError(f"{where}: timestamp {remote_text(repr(item[0]), 40)} is not a time")
    return ts, item[1]


def _increasing(times: list[float], where: str, labels: Mapping[str, str]) -> None:
    """Prometheus answers a series' samples once each, oldest first; latmap's exact counts
    read them in that order, so a repeat or a step back is a broken answer, not data."""
    for i in range(1, len(times)):
        if times[i] <= times[i - 1]:
            raise SourceError(f"{where}[{i}]: timestamp {times[i]:.3f} does not follow {times[i - 1]:.3f} "
                              f"(series {remote_text(labels, 160)}): samples repeat or are out of order")


def _unique(labels: list[Mapping[str, str]], where: str) -> None:
    """Prometheus never answers one label set twice (it fails the query instead)."""
    seen: set[tuple[tuple[str, str], ...]] = set()
    for i, m in enumerate(labels):
        key = tuple(sorted(m.items()))
        if key in seen:
            raise SourceError(f"{where}[{i}]: series {remote_text(m, 160)} appears twice in one answer")
        seen.add(key)


def parse_native(obj: Any, where: str) -> NativeHistogram:
    if not isinstance(obj, dict):
        raise SourceError(f"{where}: expected a native histogram object")
    count = parse_float(obj.get("count", "0"), f"{where}.count")
    total = parse_float(obj.get("sum", "0"), f"{where}.sum")
    buckets = []
    for i, b in enumerate(_list(obj.get("buckets"), f"{where}.buckets")):
        w = f"{where}.buckets[{i}]"
        if not isinstance(b, list) or len(b) != 4:
            raise SourceError(f"{w}: expected [rule, lower, upper, count]")
        rule_f = parse_float(b[0], w)
        lo, hi, c = (parse_float(x, w) for x in b[1:])
        if rule_f not in (0, 1, 2, 3) or math.isnan(lo) or math.isnan(hi) or hi < lo or c < 0 or math.isnan(c):
            raise SourceError(f"{w}: invalid bucket {remote_text(b, 120)}")
        buckets.append((int(rule_f), lo, hi, c))
    return NativeHistogram(count, total, tuple(buckets), where)


def _labels(item: dict[str, Any], where: str) -> dict[str, str]:
    metric = item.get("metric", {})
    if not isinstance(metric, dict) or not all(isinstance(v, str) for v in metric.values()):
        raise SourceError(f"{where}.metric: expected a map of label names to strings")
    q = metric.get("quantile")
    if q is not None:
        # The data model reserves ``quantile`` for a summary's quantile, a float; a series
        # whose label is no number cannot be read as what it claims to be.
        try:
            float(q)
        except ValueError:
            raise SourceError(f"{where}.metric: quantile={remote_text(repr(q), 40)} is not a number "
                              f"(series {remote_text(metric, 160)})") from None
    return dict(metric)


def decode_envelope(body: Any, url: str) -> dict[str, Any]:
    """The ``data`` of a successful answer; an error answer raises with Prometheus's text."""
    if not isinstance(body, dict) or "status" not in body:
        raise SourceError(f"{url}: not a Prometheus API answer (no 'status' field)")
    if body["status"] != "success":
        kind = remote_text(body.get("errorType", "error"), 40)
        raise SourceError(f"{url}: Prometheus {kind}: {remote_text(body.get('error', 'no error message'))}")
    if "data" not in body:
        raise SourceError(f"{url}: answer has no 'data' field")
    return body


def decode_query(body: Any, url: str) -> QueryResult:
    """Decode a ``/api/v1/query`` or ``/api/v1/query_range`` answer."""
    env = decode_envelope(body, url)
    data = env["data"]
    warnings = tuple(remote_text(w, 500) for w in _list(env.get("warnings"), f"{url}: warnings"))
    if not isinstance(data, dict) or "resultType" not in data or "result" not in data:
        raise SourceError(f"{url}: data: expected resultType and result")
    rtype, result = data["resultType"], data["result"]
    where = f"{url}: data.result"
    if rtype == "scalar":
        ts, v = _pair(result, where)
        return QueryResult("scalar", scalar=parse_float(v, where), warnings=warnings)
    if rtype == "string":
        return QueryResult("string", warnings=warnings)
    if not isinstance(result, list):
        raise SourceError(f"{where}: expected a list for {rtype}")
    if rtype == "vector":
        samples = []
        for i, item in enumerate(result):
            w = f"{where}[{i}]"
            if not isinstance(item, dict):
                raise SourceError(f"{w}: expected an object")
            labels = _labels(item, w)
            if "histogram" in item:
                ts, h = _pair(item["histogram"], f"{w}.histogram")
                named = f"{w}.histogram" + (f" (series {remote_text(labels, 160)})" if labels else "")
                samples.append(Sample(labels, ts, histogram=parse_native(h, named)))
            elif "value" in item:
                ts, v = _pair(item["value"], f"{w}.value")
                samples.append(Sample(labels, ts, value=parse_float(v, f"{w}.value")))
            else:
                raise SourceError(f"{w}: sample has neither value nor histogram")
        _unique([x.labels for x in samples], where)
        return QueryResult("vector", samples=tuple(samples), warnings=warnings)
    if rtype == "matrix":
        series = []
        for i, item in enumerate(result):
            w = f"{where}[{i}]"
            if not isinstance(item, dict):
                raise SourceError(f"{w}: expected an object")
            labels = _labels(item, w)
            pairs = [_pair(p, f"{w}.values") for p in _list(item.get("values"), f"{w}.values")]
            _increasing([p[0] for p in pairs], f"{w}.values", labels)
            times = np.array([p[0] for p in pairs], dtype=float)
            vs = np.array([parse_float(p[1], f"{w}.values") for p in pairs], dtype=float)
            named = f"{w}.histograms" + (f" (series {remote_text(labels, 160)})" if labels else "")
            hs = tuple(
                (t, parse_native(h, named))
                for t, h in (_pair(p, f"{w}.histograms") for p in _list(item.get("histograms"), f"{w}.histograms"))
            )
            _increasing([t for t, _ in hs], f"{w}.histograms", labels)
            series.append(SeriesValues(labels, times, vs, hs))
        _unique([x.labels for x in series], where)
        return QueryResult("matrix", series=tuple(series), warnings=warnings)
    raise SourceError(f"{url}: data.resultType: unknown {remote_text(repr(rtype), 60)}")


def decode_list(body: Any, url: str) -> list[Any]:
    """Decode ``/api/v1/series``, ``/labels``, ``/label/x/values`` (a list in ``data``)."""
    data = decode_envelope(body, url)["data"]
    if not isinstance(data, list):
        raise SourceError(f"{url}: data: expected a list")
    return data


def decode_metadata(body: Any, url: str) -> dict[str, list[dict[str, str]]]:
    """Decode ``/api/v1/metadata``: metric name -> list of {type, help, unit}."""
    data = decode_envelope(body, url)["data"]
    if not isinstance(data, dict):
        raise SourceError(f"{url}: data: expected a map of metric names")
    for name, entries in data.items():
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise SourceError(f"{url}: data.{remote_text(name, 80)}: expected a list of {{type, help, unit}}")
    return data
