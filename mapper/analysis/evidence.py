"""The trace side of a map as one type, whatever its route: :class:`TraceEvidence`.

Two implementations, no mode flag:

* :class:`~mapper.analysis.traces.TraceTable`, in memory: one row per item and stage;
  every per-item figure (the tail attribution, the what-if replay, examples, segments) is
  computed from its rows (:meth:`TraceEvidence.items` gives them).
* :class:`MergedTraces`, merged from partitions (:mod:`mapper.app.engine` schedules them):
  no rows, only the summed counts; what per-item figures the merge made exactly it answers
  (:meth:`TraceEvidence.path_means`, :meth:`TraceEvidence.replay`), the rest is
  approximated from the merged distributions by the callers (and a check says so).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from mapper.analysis.traces import TraceTable
from mapper.core.distribution import Distribution

#: The tail attribution's per-item means: ``"median"`` (the items of the median band) and a
#: percentile label (``"p99"``: the items at or above it) -> (mean lead and parts, as
#: ``attribution.item_parts`` names them; the number of items).
PartMeans = Mapping[str, tuple[pd.Series, int]]


class TraceEvidence(Protocol):
    """What a map knows from traces: the traced stages, the items counted, and the per-item
    figures the route can give."""

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages measured from traces, in flow order."""
        ...

    @property
    def traces(self) -> int:
        """Items (traces, or traces joined by span links) that touch any stage."""
        ...

    @property
    def spans_used(self) -> int:
        ...

    @property
    def link_edges(self) -> int:
        """Span links between traces followed (0: every item is one trace)."""
        ...

    @property
    def can_replay(self) -> bool:
        """A what-if can be replayed item by item (rows in memory, or the merged replay kept)."""
        ...

    def completeness(self, stage: str) -> float:
        """Share of items in which ``stage`` appears."""
        ...

    def items(self) -> TraceTable | None:
        """The per-item rows, or None (merged from partitions)."""
        ...

    def path_means(self, path: Sequence[str]) -> PartMeans | None:
        """The tail attribution's means of ``path`` as merged from partitions (None: in
        memory, computed from the rows, or not merged)."""
        ...

    def replay(self, path: Sequence[str], changes: Hashable) -> Distribution | None:
        """The lead time of ``path`` after ``changes`` (``whatif.change_key``) as replayed
        partition by partition (None: in memory, replayed from the rows, or not kept)."""
        ...


class PathMeansSource(Protocol):
    """The tail attribution's merged means, per path (computed when asked)."""

    def of_path(self, path: Sequence[str]) -> PartMeans | None:
        ...


@dataclass(frozen=True)
class OnePathMeans:
    """The merged means of a stream of one path: the same for the only path there is."""

    means: PartMeans

    def of_path(self, path: Sequence[str]) -> PartMeans | None:
        return self.means


@dataclass(frozen=True)
class MergedTraces:
    """The trace side merged from partitions: counts summed, no rows. ``means``: the tail
    attribution's merged means (None: not merged, approximated from the distributions);
    ``replays``: ``(path, change key)`` -> the lead time replayed partition by partition
    (empty: not kept; what-ifs are convolutions)."""

    stages: tuple[str, ...]
    traces: int
    spans_used: int
    link_edges: int
    stage_rows: Mapping[str, int]
    means: PathMeansSource | None = None
    replays: Mapping[Hashable, Distribution] = field(default_factory=dict)

    @property
    def can_replay(self) -> bool:
        return bool(self.replays)

    def completeness(self, stage: str) -> float:
        return self.stage_rows.get(stage, 0) / self.traces if self.traces else 0.0

    def items(self) -> TraceTable | None:
        return None

    def path_means(self, path: Sequence[str]) -> PartMeans | None:
        return self.means.of_path(path) if self.means is not None else None

    def replay(self, path: Sequence[str], changes: Hashable) -> Distribution | None:
        return self.replays.get((tuple(path), changes))
