"""Exact counts over a window: how many observations a counter gained, as an integer.

Prometheus's ``increase()`` extrapolates to the window's edges and ignores a series' first
sample, so ``n`` comes out fractional, moves with the window end on unchanged data, and
drops what a new target had counted by its first scrape. latmap instead reads, per series:

* its last value in the window ``(start, end]``;
* its value at the window's start: the last sample in ``(start - LOOKBACK, start]``; a series
  with none there was **born inside the window** and counts from zero (a counter starts at 0
  when its process does);
* its counter resets (``resets()`` over ``(start - LOOKBACK, end]``).

The increase is ``last - start`` per series, in one instant query per metric name (the same
samples ``increase()`` reads, so the same cost). Only when a series reset does latmap fetch
that family's raw samples over ``(start - LOOKBACK, end]`` (one more query, returning
``series x window / scrape interval`` points) and add the increments sample by sample, a drop
counting as a restart from zero. That raw pass also notices a series that disappears and
comes back more than once within the window (``series-churn``): each return counts from its
last value, but a restart hidden in a gap cannot be seen by anyone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from collectors.promjson import QueryResult
from mapper.core.durations import prom_duration
from mapper.core.model import Check, Window

#: How far before the window's start a sample still gives the start value (an hour: longer
#: than any scrape interval or short outage; a series silent for longer counts from zero).
LOOKBACK = 3600.0
#: A silence longer than this between two samples of a series is a disappearance.
GAP = 300.0
_PART = "latmap_count_part"


@dataclass(frozen=True)
class SeriesIncrease:
    """One series' exact increase over the window (labels without ``__name__``)."""

    labels: Mapping[str, str]
    increase: float
    born: bool = False


def increase_query(sel: str, window: float, lookback: float = LOOKBACK) -> str:
    """Per series: the last value minus the start value (0 for a series born in the window),
    and, under ``latmap_count_part="resets"``, the series that reset."""
    rng, lb = prom_duration(window), prom_duration(lookback)
    last = f"last_over_time({sel}[{rng}])"
    first = f"(last_over_time({sel}[{lb}] offset {rng}) or {last} * 0)"
    born = f"({last} unless last_over_time({sel}[{lb}] offset {rng}))"
    resets = f"(resets({sel}[{prom_duration(window + lookback)}]) > 0)"
    return " or ".join(f'label_replace({e}, "{_PART}", "{p}", "", "")'
                       for p, e in (("increase", f"{last} - {first}"), ("born", born), ("resets", resets)))


def raw_query(sel: str, window: float, lookback: float = LOOKBACK) -> str:
    return f"{sel}[{prom_duration(window + lookback)}]"


def _key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k not in ("__name__", _PART)))


def exact_from_samples(times: np.ndarray, values: np.ndarray, start: float) -> tuple[float, bool, int]:
    """A counter's increase over ``(start, end]`` from its raw samples: ``(increase, born,
    returns)``. A drop is a restart from zero; ``returns`` counts reappearances after a
    silence longer than :data:`GAP`."""
    before = times <= start
    inside = ~before
    base = float(values[before][-1]) if np.any(before) else None
    v = values[inside]
    if v.size == 0:
        return 0.0, False, 0
    prev = np.concatenate([[base if base is not None else 0.0], v[:-1]])
    inc = np.where(v >= prev, v - prev, v)
    t = times[inside]
    tprev = np.concatenate([[times[before][-1] if np.any(before) else -np.inf], t[:-1]])
    returns = int(np.sum((t - tprev > GAP) & np.isfinite(tprev)))
    return float(inc.sum()), base is None, returns


def decode_increases(result: QueryResult) -> tuple[dict[tuple[tuple[str, str], ...], SeriesIncrease],
                                                   set[tuple[tuple[str, str], ...]]]:
    """The per-series increases of :func:`increase_query`'s answer, and the series that reset."""
    born = {_key(s.labels) for s in result.samples if s.labels.get(_PART) == "born"}
    out = {}
    resets = set()
    for s in result.samples:
        k = _key(s.labels)
        part = s.labels.get(_PART)
        if part == "increase" and s.value is not None:
            out[k] = SeriesIncrease(dict(k), s.value, k in born)
        elif part == "resets":
            resets.add(k)
    return out, resets


def apply_raw(found: dict[tuple[tuple[str, str], ...], SeriesIncrease], resets: set[tuple[tuple[str, str], ...]],
              raw: QueryResult, window: Window, where: str) -> list[Check]:
    """Replace the increases of series that reset by their sample-by-sample sums; checks for
    resets and for series that came and went more than once."""
    checks: list[Check] = []
    for s in raw.series:
        k = _key(s.labels)
        if k not in resets:
            continue
        inc, born, returns = exact_from_samples(s.timestamps, s.values, window.start)
        found[k] = SeriesIncrease(dict(k), inc, born)
        if returns >= 2:
            checks.append(Check(
                "warning", "series-churn",
                f"{where}: {dict(k)} disappeared and came back {returns} times in the window; "
                "each return counts on from its last value, but a restart hidden in a gap is not seen"))
    return checks


@dataclass(frozen=True)
class Increases:
    """Every matching series' exact increase; ``resets``: how many series reset in the window."""

    series: tuple[SeriesIncrease, ...]
    resets: int
    checks: tuple[Check, ...]
    exprs: tuple[str, ...]

    @property
    def total(self) -> float:
        return float(sum(s.increase for s in self.series))

    @property
    def born(self) -> int:
        return sum(1 for s in self.series if s.born)


def exact_increases(query: Callable[[str, float], QueryResult], sel: str, window: Window, where: str,
                    raw: bool = False) -> Increases:
    """The exact increase of every series matching ``sel`` over ``window``; ``query`` is an
    instant query ``(expr, time) -> QueryResult``. ``raw=True`` reads the raw samples
    always (the ``_count`` series: few, and it is how churn is seen)."""
    expr = increase_query(sel, window.seconds)
    found, resets = decode_increases(query(expr, window.end))
    exprs = [expr]
    checks: list[Check] = []
    if resets or raw:
        rexpr = raw_query(sel, window.seconds)
        exprs.append(rexpr)
        checks = apply_raw(found, set(found) if raw else resets, query(rexpr, window.end), window, where)
    return Increases(tuple(found[k] for k in sorted(found)), len(resets), tuple(checks), tuple(exprs))
