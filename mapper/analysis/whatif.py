"""The future state (what-if): the end-to-end lead time after planned changes of hops.

A change scales a hop's durations, caps them, removes the hop, or runs it in parallel with
another stage (the two overlap: together they take the longer of the two). Two methods,
the same one that made the current end to end:

* **trace replay** (the map's lead time comes from traces): per complete trace, the lead
  time minus what the changes take off its hops. Exact for the traced items; the interval
  is the samples' order-statistic interval.
* **convolution** (metrics): each hop's distribution is modified and the hops are convolved,
  assuming independence. Every change is a non-decreasing function of the durations, so
  applying it to the lower-bound, point and upper-bound masses of :mod:`mapper.core.convolve`
  keeps the interval honest about the bucket resolution.

Pure functions over a :class:`~mapper.analysis.latency.LatencyMap`; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mapper.analysis.latency import LatencyMap
from mapper.core.convolve import VARIANTS, ConvolvedDistribution, compress, sum_masses
from mapper.core.distribution import Distribution, PointMasses, SampleDistribution
from mapper.core.errors import DataError, UsageError
from mapper.core.estimate import addable
from mapper.core.spec.extra import CHANGE_KINDS, Change, change_from

if TYPE_CHECKING:
    from mapper.analysis.traces import TraceTable

TRACE_REPLAY = "trace replay"
CONVOLUTION = "convolution, assuming independence"


@dataclass(frozen=True)
class FutureState:
    """The end to end now and after ``changes`` (applied in order), and how it was made.

    ``method`` is :data:`TRACE_REPLAY` or :data:`CONVOLUTION`.
    """

    current: Distribution
    future: Distribution
    changes: tuple[Change, ...]
    method: str


# --------------------------------------------------------------------------- input


def parse_change(text: str, stage_names: Iterable[str]) -> Change:
    """A change from ``HOP:scale=0.5``, ``HOP:cap=20ms``, ``HOP:remove``, ``HOP:parallel=OTHER``."""
    hop, sep, rest = text.partition(":")
    kind, eq, value = rest.partition("=")
    if not sep or kind not in CHANGE_KINDS or (kind == "remove") == bool(eq):
        raise UsageError(f"--change {text!r}: use HOP:scale=F, HOP:cap=DURATION, HOP:remove "
                         "or HOP:parallel=STAGE")
    return change_of(hop, stage_names, what=f"--change {text!r}",
                     **{kind: True if kind == "remove" else value})  # type: ignore[arg-type]


def change_of(hop: str, stage_names: Iterable[str], *, scale: str | float | None = None,
              cap: str | float | None = None, remove: bool = False, parallel: str | None = None,
              what: str = "") -> Change:
    """One change of ``hop`` from exactly one of the options (the CLI's ``--hop`` form).

    Errors are :class:`UsageError` lines starting with ``what`` (default ``--hop HOP``).
    """
    what = what or f"--hop {hop}"
    given: dict[str, Any] = {"hop": hop}
    if scale is not None:
        try:
            given["scale"] = float(scale)
        except ValueError:
            raise UsageError(f"{what}: scale must be a number, got {scale!r}") from None
    if cap is not None:
        given["cap"] = cap
    if remove:
        given["remove"] = True
    if parallel is not None:
        given["parallel"] = parallel
    made = change_from(given, set(stage_names))
    if isinstance(made, str):
        raise UsageError(f"{what}: {made}")
    return made


def _validate(lm: LatencyMap, changes: Sequence[Change]) -> None:
    if not changes:
        raise UsageError("no change given: name a hop and one of scale, cap, remove, parallel")
    on_path = set(lm.path)
    where = ", ".join(lm.path) or "none"
    for c in changes:
        at = f"{c.place}: " if c.place else ""
        if c.hop not in on_path:
            raise UsageError(f"{at}hop {c.hop!r} is not a stage on the end-to-end path ({where})")
        if c.kind not in CHANGE_KINDS:
            raise UsageError(f"{at}{c.hop}: unknown change {c.kind!r} (use {', '.join(CHANGE_KINDS)})")
        if c.kind == "scale" and (c.value is None or not math.isfinite(c.value) or c.value < 0):
            raise UsageError(f"{at}{c.hop}: scale must be a finite factor >= 0, got {c.value!r}")
        if c.kind == "cap" and (c.value is None or not math.isfinite(c.value) or c.value <= 0):
            raise UsageError(f"{at}{c.hop}: cap must be a duration > 0, got {c.value!r}")
        if c.kind == "parallel" and (c.other == c.hop or c.other not in on_path):
            raise UsageError(f"{at}{c.hop}: parallel must name another stage on the path ({where}), "
                             f"got {c.other!r}")
    removed = {c.hop for c in changes if c.kind == "remove" or (c.kind == "scale" and c.value == 0)}
    if removed >= on_path:
        raise UsageError("the changes remove every hop of the path; nothing would be left to measure")


# --------------------------------------------------------------------------- the future


def future_state(lm: LatencyMap, changes: Sequence[Change]) -> FutureState:
    """The end to end after ``changes``, by trace replay when the map's lead time comes from
    traces, else by convolution of the modified hop distributions.

    Raises :class:`UsageError` for a change the map cannot take (a hop not on the path, a
    negative scale, a cap <= 0, parallel with itself) and :class:`DataError` when there is no
    end to end to change.
    """
    changes = tuple(changes)
    _validate(lm, changes)
    if lm.end_to_end is None:
        raise DataError("no end-to-end lead time to change: a stage on the path has no data")
    items = lm.traces.items() if lm.traces is not None else None
    if lm.end_to_end_method == "traces" and items is not None:
        return FutureState(SampleDistribution(items.lead), _replay(items, lm.path, changes), changes, TRACE_REPLAY)
    merged = lm.traces.replay(lm.path, change_key(changes)) if lm.traces is not None else None
    if lm.end_to_end_method == "traces" and merged is not None:  # replayed partition by partition
        return FutureState(lm.end_to_end, merged, changes, TRACE_REPLAY)
    if lm.end_to_end_method == "measured":
        # the future comes from the stages: "now" must too, or the difference between the
        # measured and the computed lead time would read as the effect of the changes
        if lm.computed_end_to_end is None:
            raise DataError("the lead time was measured (the spec's end_to_end) but the stages give none "
                            "to change: a stage on the path has no data")
        return FutureState(lm.computed_end_to_end, _convolution(lm, changes), changes, CONVOLUTION)
    return FutureState(lm.end_to_end, _convolution(lm, changes), changes, CONVOLUTION)


def _replay(table: TraceTable, path: Sequence[str], changes: Sequence[Change]) -> SampleDistribution:
    """Per complete trace: lead - sum over changed hops of (old hop - new hop).

    Time the hops do not explain (overlap of synchronous calls, gaps) is kept as it was.
    """
    lead, hops = replay_hops(table, path)
    return SampleDistribution(replayed(lead, hops, changes))


def replay_hops(table: TraceTable, path: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The complete traces' lead times and each hop of ``path`` (wait + process), aligned:
    what :func:`replayed` changes (a partition's, too: merged, they give the same values)."""
    f = table.frame
    hop = f["wait"].fillna(0.0).to_numpy() + f["process"].to_numpy()
    wide = (f.assign(hop=hop).pivot(index="trace", columns="stage", values="hop")
            .reindex(columns=list(table.stages)).dropna())
    # ``lead`` holds the complete traces in ascending trace order, as the pivot's rows.
    if len(wide) != table.lead.size:
        raise DataError(f"trace table is inconsistent: {len(wide)} complete traces, "
                        f"{table.lead.size} lead times")
    return np.asarray(table.lead, dtype=float), {s: wide[s].to_numpy(dtype=float) for s in path}


def replayed(lead: np.ndarray, hops: Mapping[str, np.ndarray], changes: Sequence[Change]) -> np.ndarray:
    """Each trace's lead time after ``changes`` of its ``hops`` (in the path's order)."""
    hops = dict(hops)
    before = sum(hops.values())
    for c in changes:
        h = hops[c.hop]
        if c.kind == "scale":
            hops[c.hop] = h * float(c.value)  # type: ignore[arg-type]
        elif c.kind == "cap":
            hops[c.hop] = np.minimum(h, float(c.value))  # type: ignore[arg-type]
        elif c.kind == "remove":
            hops[c.hop] = np.zeros_like(h)
        else:
            other = str(c.other)
            hops[c.hop] = np.maximum(h, hops[other])
            hops[other] = np.zeros_like(h)
    return np.asarray(lead - (before - sum(hops.values())), dtype=float)


def change_key(changes: Sequence[Change]) -> tuple[tuple[str, str, float | None, str | None], ...]:
    """What makes changes the same replay (their place in the spec does not)."""
    return tuple((c.hop, c.kind, None if c.value is None else float(c.value), c.other) for c in changes)


@dataclass(frozen=True)
class _Part:
    """A hop as lower-bound, point and upper-bound masses (see :mod:`mapper.core.convolve`)."""

    masses: dict[str, PointMasses]
    count: float
    mean: float | None

    def mapped(self, fn: Any, mean: float | None) -> _Part:
        return _Part({v: PointMasses(fn(m.values), m.weights) for v, m in self.masses.items()},
                     self.count, mean)


def _part(name: str, d: Distribution) -> _Part:
    if d.count <= 0:
        raise DataError(f"{name}: no observations in the window; cannot recompute the end to end")
    if isinstance(d, ConvolvedDistribution):
        return _Part(dict(d.parts_masses), d.count, d.mean)
    if not addable(d):
        raise DataError(f"{name}: client-computed quantiles (a summary) cannot be added; "
                        "no what-if by convolution")
    masses = {}
    for v in VARIANTS:
        m = d.point_masses(v)
        masses[v] = compress(m.values, m.weights, v)
    return _Part(masses, d.count, d.mean)


def _max(a: _Part, b: _Part) -> _Part:
    """max(A, B) for independent A and B; max is monotone, so the bounds stay bounds."""
    masses = {}
    for v in VARIANTS:
        x, y = a.masses[v], b.masses[v]
        values = np.maximum(x.values[:, None], y.values[None, :]).ravel()
        weights = (x.weights[:, None] * y.weights[None, :]).ravel()
        keep = weights > 0
        masses[v] = compress(values[keep], weights[keep], v)
    return _Part(masses, min(a.count, b.count), None)


def _convolution(lm: LatencyMap, changes: Sequence[Change]) -> ConvolvedDistribution:
    """Modify the path's hop distributions and convolve them (``None``: a removed hop)."""
    parts: dict[str, _Part | None] = {
        s.stage.name: _part(s.stage.name, s.total) for s in lm.stages
        if s.stage.name in lm.path and s.total is not None}
    for c in changes:
        if c.hop not in parts or (c.kind == "parallel" and c.other not in parts):
            missing = c.hop if c.hop not in parts else c.other
            raise UsageError(f"{c.place + ': ' if c.place else ''}hop {missing!r} has no measurement to change")
        p = parts[c.hop]
        if c.kind == "remove" or (c.kind == "scale" and c.value == 0):
            # Scale 0 is removal exactly: adding a point at 0 would only cost resolution.
            parts[c.hop] = None
        elif p is None:
            if c.kind == "parallel":
                parts[c.hop], parts[str(c.other)] = parts[str(c.other)], None
        elif c.kind == "scale":
            f = float(c.value)  # type: ignore[arg-type]
            parts[c.hop] = p.mapped(lambda x, f=f: x * f, None if p.mean is None else p.mean * f)
        elif c.kind == "cap":
            cap = float(c.value)  # type: ignore[arg-type]
            below = bool(np.all(p.masses["high"].values <= cap))
            parts[c.hop] = p.mapped(lambda x, cap=cap: np.minimum(x, cap), p.mean if below else None)
        else:
            q = parts[str(c.other)]
            parts[c.hop], parts[str(c.other)] = (p if q is None else _max(p, q)), None
    left = [p for p in parts.values() if p is not None]
    if not left:
        raise UsageError("the changes remove every hop of the path; nothing would be left to measure")
    result = {}
    for v in VARIANTS:
        result[v] = sum_masses([p.masses[v] for p in left], v)
    means = [p.mean for p in left]
    mean = None if any(m is None for m in means) else float(sum(means))  # type: ignore[arg-type]
    return ConvolvedDistribution(result, min(p.count for p in left), mean,
                                 "what-if: convolution of the changed hop distributions, assuming independence",
                                 origin=str(getattr(lm.end_to_end, "origin", "metric histograms")))


# --------------------------------------------------------------------------- output


