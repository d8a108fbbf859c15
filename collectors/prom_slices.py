"""A Prometheus histogram sliced by its labels, for ``latmap explain`` (:mod:`mapper.analysis.slices`).

Classic histograms: the exact increase of every ``_bucket`` series over the window
(:func:`collectors.promcount.exact_increases`, the very query the map sends for the whole
histogram, so a map's client answers it from memory), grouped by the label's value and added
by ``le`` per slice (:func:`collectors.classic.checked_histogram`: the same checks as the
map). Every label and its values come with those series, so finding the labels costs nothing.

Native histograms: the labels from ``/api/v1/series`` over the window; per label one
``sum by (label) (increase(x{sel}[window]))``, Prometheus adding the native buckets.

Counts per slice are added, never percentiles; series without the label (beside ones with
it) are the slice ``""``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from collectors import promql
from collectors.classic import checked_histogram
from collectors.promcount import exact_increases
from collectors.prometheus import PrometheusClient
from mapper.core.distribution import HistogramDistribution
from mapper.core.durations import prom_duration
from mapper.core.errors import SourceError
from mapper.core.model import Check, Window
from mapper.core.redact import remote_text
from mapper.core.spec import Measurement

#: Labels that never slice a histogram.
_NOT_LABELS = frozenset({"le", "__name__"})
#: A label name PromQL takes unquoted in ``by (...)``.
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _where(m: Measurement) -> str:
    return f"{m.name} ({m.place})"


def _histogram_only(m: Measurement) -> None:
    if m.kind != "histogram":
        raise SourceError(f"{m.place}: label slices need a histogram measurement, not a {m.kind}")


def _bucket_series(client: PrometheusClient, m: Measurement, window: Window) -> list[tuple[Mapping[str, str], float]]:
    sel = promql.selector(m.name + "_bucket", m.selector)
    inc = exact_increases(client.query, sel, window, _where(m))
    return [(s.labels, s.increase) for s in inc.series]


def _count_values(label_sets: Sequence[Mapping[str, str]]) -> dict[str, int]:
    values: dict[str, set[str]] = {}
    for labels in label_sets:
        for k, v in labels.items():
            if k not in _NOT_LABELS:
                values.setdefault(k, set()).add(v)
    n = len(label_sets)
    # a label missing on some series has the value "" there too
    return {k: len(vs) + (1 if sum(1 for x in label_sets if k in x) < n else 0) for k, vs in values.items()}


def slice_labels(client: PrometheusClient, m: Measurement, window: Window) -> dict[str, int]:
    """Each label of the histogram's series in the window, and how many values it takes."""
    _histogram_only(m)
    series = _bucket_series(client, m, window)
    if series:
        return _count_values([labels for labels, _ in series])
    found = client.series(promql.selector(m.name, m.selector), window.start, window.end)
    return _count_values([{k: str(v) for k, v in s.items()} for s in found if isinstance(s, dict)])


def label_histograms(client: PrometheusClient, m: Measurement, window: Window,
                     label: str) -> tuple[dict[str, HistogramDistribution], list[Check]]:
    """Per value of ``label``: the histogram of the window's observations (seconds), with the
    checks of what could not be counted. Empty when no series carries the label."""
    _histogram_only(m)
    where = _where(m)
    series = _bucket_series(client, m, window)
    if series:
        groups: dict[str, list[tuple[Mapping[str, str], float]]] = {}
        for labels, inc in series:
            groups.setdefault(labels.get(label, ""), []).append((labels, inc))
        if set(groups) <= {""}:
            return {}, []
        out: dict[str, HistogramDistribution] = {}
        checks: list[Check] = []
        for value, rows in sorted(groups.items()):
            dist, made = checked_histogram(rows, m.scale, f"{where} {label}={remote_text(value, 80)}")
            checks += made
            if dist is not None:
                out[value] = dist
        return out, checks
    return _native(client, m, window, label)


def _native(client: PrometheusClient, m: Measurement, window: Window,
            label: str) -> tuple[dict[str, HistogramDistribution], list[Check]]:
    if not _LABEL_NAME.fullmatch(label):
        return {}, [Check("warning", "slice-label-name", f"{_where(m)}: label {remote_text(repr(label), 80)} is no "
                          "plain PromQL label name; not sliced by it")]
    expr = (f"sum by ({label}) (increase({promql.selector(m.name, m.selector)}"
            f"[{prom_duration(window.seconds)}]))")
    result = client.query(expr, window.end)
    out: dict[str, HistogramDistribution] = {}
    checks: list[Check] = []
    for s in result.samples:
        if s.histogram is None:
            continue
        value = s.labels.get(label, "")
        try:
            out[value] = s.histogram.distribution(m.scale)
        except SourceError as err:  # negative observations: this slice has no honest percentile
            checks.append(Check("error", "negative-observations", f"{_where(m)} {label}={value}: {err}"))
    if set(out) <= {""}:
        return {}, checks
    return out, checks
