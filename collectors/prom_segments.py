"""Bucket counts for segments (hour of day, day of week, label values, event windows).

Segments never average quantiles: every query here returns *bucket counts*, which
:mod:`mapper.analysis.segments` sums per segment before it takes a quantile.

* :func:`hourly_buckets`: one ``query_range`` of ``sum by (le) (increase(x_bucket[1h]))``
  stepped by 1h on whole hours, so the point at ``T`` holds exactly the observations of the
  hour ``(T-1h, T]`` and consecutive points partition the window.
* :func:`label_buckets`: one instant query of ``sum by (le, label) (increase(x_bucket[window]))``.

Classic histograms only; a native histogram gives no rows (the caller reports no data).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from collectors import promql
from collectors.base import parse_le
from collectors.prometheus import MAX_POINTS, PrometheusClient
from mapper.core.durations import prom_duration
from mapper.core.errors import SourceError
from mapper.core.model import HOUR, HourBuckets, Window
from mapper.core.spec import Measurement


def _increase_by(m: Measurement, by: Sequence[str], seconds: float) -> str:
    if m.kind != "histogram":
        raise SourceError(f"{m.place}: segments need a histogram measurement, not a {m.kind}")
    labels = ", ".join(["le", *by])
    rng = prom_duration(seconds)
    return f"sum by ({labels}) (increase({promql.selector(m.name + '_bucket', m.selector)}[{rng}]))"


def hour_range(window: Window) -> tuple[float, float]:
    """The first and last whole-hour evaluation times whose hour ``(T-1h, T]`` lies in the window."""
    first = math.ceil((window.start + HOUR) / HOUR) * HOUR
    last = math.floor(window.end / HOUR) * HOUR
    return float(first), float(last)


def hourly_buckets(client: PrometheusClient, m: Measurement, window: Window,
                   by: Sequence[str] = ()) -> list[HourBuckets]:
    """Per whole hour of the window (and per value of the ``by`` labels): cumulative bucket
    counts, bounds in seconds. Hours cut by the window's edges are left out.

    ``HourBuckets.start`` is the hour's start; it covers ``(start, start + 1h]``.
    """
    first, last = hour_range(window)
    if last < first:
        return []
    if (last - first) / HOUR > MAX_POINTS - 1:
        raise SourceError(f"{m.place}: a {prom_duration(window.seconds)} window has more than "
                          f"{MAX_POINTS - 1} hours; shorten it for hourly segments")
    where = f"{m.name} ({m.place})"
    result = client.query_range(_increase_by(m, by, HOUR), first, last, HOUR)
    rows: dict[tuple[float, tuple[tuple[str, str], ...]], dict[float, float]] = {}
    for s in result.series:
        if "le" not in s.labels:
            continue
        le = parse_le(s.labels["le"], where) * m.scale
        key_labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        for t, v in zip(s.timestamps, s.values, strict=True):
            if math.isfinite(v):
                rows.setdefault((float(t) - HOUR, key_labels), {})[le] = float(v)
    return [HourBuckets(start, dict(labels), buckets)
            for (start, labels), buckets in sorted(rows.items())]


def label_buckets(client: PrometheusClient, m: Measurement, window: Window,
                  label: str) -> dict[str, dict[float, float]]:
    """Per value of ``label``: the window's cumulative bucket counts (bounds in seconds).

    Empty when no series of the measurement carries ``label`` (the caller says so with a
    ``segment-label-missing`` check). Series without the label, beside ones with it, are
    counted under the value ``""``.
    """
    where = f"{m.name} ({m.place})"
    result = client.query(_increase_by(m, (label,), window.seconds), window.end)
    out: dict[str, dict[float, float]] = {}
    for s in result.samples:
        if "le" not in s.labels or s.value is None or not math.isfinite(s.value):
            continue
        le = parse_le(s.labels["le"], where) * m.scale
        value = s.labels.get(label, "")
        out.setdefault(value, {})[le] = out.get(value, {}).get(le, 0.0) + s.value
    if set(out) <= {""}:
        return {}
    return out
