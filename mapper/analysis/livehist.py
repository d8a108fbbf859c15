"""Cumulative bucket counts of live values, per series, with a bounded set of label values.

:class:`LiveHistograms` takes the arrays a :class:`~mapper.analysis.live.JoinStore` flush emits
and adds them to classic histogram series (counts per upper bound ``le``, the sum, the count),
vectorised: one ``searchsorted`` and ``bincount`` per series and flush, never a Python call per
value. Each bucket keeps its latest value's trace id as the exemplar.

Each series also keeps a native (sparse, exponential) histogram of the same values:
schema :data:`NATIVE_SCHEMA` (3), so bucket ``k`` is ``(2^((k-1)/8), 2^(k/8)]`` and each
bucket spans a factor ``2^(1/8)`` = 1.0905: a quantile read from it is known within 9.05%
(its bucket's bounds), at any scale and with no layout to choose. The bucket index is the one
Prometheus and client_golang compute (``frexp`` of the value and a search among the
``2^schema`` sub-bounds, so powers of two land exactly on a bound), vectorised; values whose
magnitude is at most :data:`ZERO_THRESHOLD` go to the zero bucket, negative values (waits
under clock skew) to the negative buckets.

Label values are bounded per label name: the first ``max_label_values`` distinct values of a
label are kept as they come, later new values become :data:`OTHER` and are counted in
:attr:`LiveHistograms.cut` (label -> values cut), so a span attribute with a value per user
cannot create a series per user.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: The value a label takes once its distinct values reach the limit.
OTHER = "__other__"
#: Native histogram schema: buckets grow by 2^(2^-3) = 1.0905 (9.05% wide, 4.4% either side of the middle).
NATIVE_SCHEMA = 3
#: Values with a magnitude at or below this go to the native zero bucket (client_golang's default).
ZERO_THRESHOLD = 2.0**-128
#: Upper bounds (seconds) every live histogram has; objectives' thresholds are added to them.
DEFAULT_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                  30.0, 60.0, 120.0, 300.0)


def bucket_bounds(extra: Sequence[float] = (), base: Sequence[float] = DEFAULT_BOUNDS) -> tuple[float, ...]:
    """``base`` plus ``extra`` (objective thresholds: so a bucket boundary sits on each
    objective and its verdict is exact), sorted, positive and finite, each once."""
    return tuple(sorted({float(b) for b in (*base, *extra) if 0 < b < float("inf")}))


def native_index(values: np.ndarray, schema: int = NATIVE_SCHEMA) -> np.ndarray:
    """Native bucket index of each positive value (schema > 0): bucket ``k`` is
    ``(2^((k-1)/2^schema), 2^(k/2^schema)]``, computed as Prometheus does (exact at bounds)."""
    frac, exp = np.frexp(np.asarray(values, dtype=np.float64))
    sub = 2.0 ** (np.arange(2**schema) / 2**schema - 1.0)  # the bounds within [0.5, 1)
    return np.searchsorted(sub, frac, side="left") + (exp.astype(np.int64) - 1) * 2**schema


@dataclass
class NativeBuckets:
    """Dense counts of the native buckets ``first .. first + len(counts) - 1`` (grown as needed)."""

    first: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def add(self, index: np.ndarray) -> None:
        if index.size == 0:
            return
        lo, hi = int(index.min()), int(index.max())
        if self.counts.size == 0:
            self.first = lo
            self.counts = np.zeros(hi - lo + 1, np.int64)
        elif lo < self.first or hi >= self.first + self.counts.size:
            new_first = min(lo, self.first)
            grown = np.zeros(max(hi, self.first + self.counts.size - 1) - new_first + 1, np.int64)
            grown[self.first - new_first:self.first - new_first + self.counts.size] = self.counts
            self.first, self.counts = new_first, grown
        self.counts += np.bincount(index - self.first, minlength=self.counts.size)

    def copy(self) -> NativeBuckets:
        return NativeBuckets(self.first, self.counts.copy())


@dataclass
class Native:
    """A series' native histogram: zero bucket, positive and negative buckets."""

    zero: int = 0
    positive: NativeBuckets = field(default_factory=NativeBuckets)
    negative: NativeBuckets = field(default_factory=NativeBuckets)

    def add(self, seconds: np.ndarray, schema: int = NATIVE_SCHEMA) -> None:
        mag = np.abs(seconds)
        zero = mag <= ZERO_THRESHOLD
        self.zero += int(zero.sum())
        self.positive.add(native_index(seconds[(seconds > 0) & ~zero], schema))
        self.negative.add(native_index(-seconds[(seconds < 0) & ~zero], schema))

    def copy(self) -> Native:
        return Native(self.zero, self.positive.copy(), self.negative.copy())


@dataclass(frozen=True)
class Exemplar:
    trace_id: str
    value: float
    timestamp: float


@dataclass
class Series:
    """One histogram series: ``counts[i]`` values at or below ``bounds[i]`` and above the
    previous bound (the last entry: above every bound), their sum, each bucket's exemplar."""

    bounds: tuple[float, ...]
    counts: np.ndarray
    total: float
    exemplars: list[Exemplar | None]
    native: Native = field(default_factory=Native)

    def cumulative(self) -> np.ndarray:
        return np.cumsum(self.counts)


class LiveHistograms:
    """Histogram series keyed by (metric, label pairs); thread-safe."""

    def __init__(self, max_label_values: int = 100) -> None:
        if max_label_values < 1:
            raise ValueError("max_label_values must be >= 1")
        self.max_label_values = max_label_values
        self.cut: Counter[str] = Counter()
        self._allowed: dict[str, set[str]] = {}
        self._series: dict[tuple[str, tuple[tuple[str, str], ...]], Series] = {}
        self._lock = threading.Lock()

    def _bounded(self, label: str, values: np.ndarray) -> np.ndarray:
        """``values`` as strings ("" for None), new values past the limit as :data:`OTHER`."""
        codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=False)
        allowed = self._allowed.setdefault(label, set())
        names = []
        cut = 0
        for u in uniques:
            text = "" if u is None else str(u)
            if text in allowed or text == "":
                names.append(text)
            elif len(allowed) < self.max_label_values:
                allowed.add(text)
                names.append(text)
            else:
                names.append(OTHER)
                cut += int(np.sum(codes == len(names) - 1))
        if cut:
            self.cut[label] += cut
        return np.asarray(names, dtype=object)[codes] if len(names) else np.array([], dtype=object)

    def observe(self, metric: str, bounds: tuple[float, ...], fixed: Mapping[str, str],
                labels: Mapping[str, np.ndarray], seconds: np.ndarray, trace_ids: np.ndarray,
                timestamp: float) -> None:
        """Add ``seconds`` to the series of ``metric`` with labels ``fixed`` plus, per value,
        ``labels`` (name -> value per value, bounded as the class says)."""
        seconds = np.asarray(seconds, dtype=np.float64)
        if seconds.size == 0:
            return
        with self._lock:
            names = sorted(labels)
            texts = [self._bounded(n, labels[n]) for n in names]
            if texts:
                key = pd.MultiIndex.from_arrays(texts) if len(texts) > 1 else pd.Index(texts[0])
                group, uniq = pd.factorize(key)
            else:
                group, uniq = np.zeros(seconds.size, dtype=np.int64), [()]
            base = tuple(sorted(fixed.items()))
            for g, values in enumerate(uniq):
                vals = values if isinstance(values, tuple) else (values,)
                pairs = tuple(sorted(base + tuple(zip(names, vals, strict=True))))
                rows = np.flatnonzero(group == g) if texts else slice(None)
                self._add(metric, pairs, bounds, seconds[rows], np.asarray(trace_ids)[rows], timestamp)

    def _add(self, metric: str, pairs: tuple[tuple[str, str], ...], bounds: tuple[float, ...],
             seconds: np.ndarray, trace_ids: np.ndarray, timestamp: float) -> None:
        s = self._series.get((metric, pairs))
        if s is None:
            s = self._series[(metric, pairs)] = Series(bounds, np.zeros(len(bounds) + 1, np.int64), 0.0,
                                                       [None] * (len(bounds) + 1))
        at = np.searchsorted(np.asarray(s.bounds), seconds, side="left")  # value <= bound: that bucket
        s.counts += np.bincount(at, minlength=len(s.bounds) + 1)
        s.total += float(seconds.sum())
        s.native.add(seconds)
        last = seconds.size - 1 - np.unique(at[::-1], return_index=True)[1]
        for i in last:
            s.exemplars[at[i]] = Exemplar(str(trace_ids[i]), float(seconds[i]), timestamp)

    def series(self) -> Iterator[tuple[str, Mapping[str, str], Series]]:
        """Every series: (metric, labels, a copy of its state)."""
        with self._lock:
            items = [(m, dict(p), Series(s.bounds, s.counts.copy(), s.total, list(s.exemplars),
                                         s.native.copy()))
                     for (m, p), s in self._series.items()]
        yield from items
