"""Traces at any scale: a spool's window analysed partition by partition, locally or on Dask.

The steps, each a task of :mod:`mapper.app.partition_tasks` (module-level, arguments
picklable: a Dask worker runs it as the local engine does); this module schedules them and
merges what they return:

1. **ids** (:func:`ids_of_file`): per spool file, the rows in the window and the trace keys
   its span links join; the client groups linked traces (:func:`~mapper.analysis.partition.linked_groups`).
2. **spill** (:func:`spill_file`): per spool file, its rows written to one Parquet file per
   partition under the scratch directory (each task writes its own files: no file has two
   writers). Every item lands whole in one partition.
3. **pass 1** (:func:`pass_one`): per partition, today's array kernel; its samples are kept
   in the scratch directory and fine bin counts come back.
4. **pass 2** (:func:`pass_two`): per partition, only the values in the bins that hold the
   order statistics the report reads; the client merges them into exact percentiles
   (:mod:`mapper.analysis.merge`).
5. **pass 4** (:func:`pass_four`, when the map asks for examples): per partition, its
   candidate example items for the global thresholds (the merged percentiles' intervals)
   over the window's global time range; the client merges them
   (:func:`~mapper.analysis.examples.merge`): the examples of the in-memory path.

Memory: one spool file (steps 1, 2) or one partition (3, 4) at a time per worker, plus the
linked trace keys and the merged bin counts on the client; the window's length does not
show. A window whose spans fit ``engine.memory_budget`` is analysed whole, as before.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from collectors.spool.reader import QUARANTINE_DIR, WAL_DIR, SpoolFiles, spool_files
from mapper.analysis.attribution import MEDIAN_BAND, TAILS, item_parts
from mapper.analysis.budgets import hop_quantile
from mapper.analysis.evidence import OnePathMeans, PathMeansSource
from mapper.analysis.examples import Examples, Threshold, merge
from mapper.analysis.examples import Key as ExampleKey
from mapper.analysis.explain import Explanation
from mapper.analysis.explain.merge import Target, add_counts, explain_counts
from mapper.analysis.merge import (
    MergedSamples,
    Summary,
    bins_for_ranks,
    merge_summaries,
    merged_samples,
    ranks_needed,
    values_in,
)
from mapper.analysis.partition import (
    PARTS_LEAD,
    PartVectors,
    linked_groups,
    mean_parts,
    sum_parts,
    tail_sets,
)
from mapper.analysis.segments import (
    PEAK_CONFIDENCE,
    PEAK_PERCENTILE,
    MergedSegment,
    SamplePlan,
    Slot,
)
from mapper.analysis.traces import StageMatch, TraceTable
from mapper.analysis.whatif import change_key
from mapper.app.dask_client import connect
from mapper.app.partition_tasks import (
    PARTITION_TASKS,
    FileIds,
    Key,
    ids_of_file,
    pass_five,
    pass_four,
    pass_one,
    pass_three,
    pass_two,
    replay_pass_one,
    replay_pass_two,
    segment_pass_one,
    segment_pass_two,
    spill_files,
)
from mapper.core.errors import SourceError
from mapper.core.spec import StreamSpec
from mapper.core.spec.engine import BYTES_PER_SPAN, EngineSpec
from mapper.core.spec.extra import Change

log = logging.getLogger(__name__)

#: Percentiles every merged distribution can answer beside the spec's own and its
#: objectives': what the renderers, the bottleneck and the attribution read.
STANDARD_QS = (0.5, 0.9, 0.95, 0.99, 0.999, 0.9999, *TAILS, *MEDIAN_BAND)
#: Spill tasks on Dask at most (each writes one file per partition).
SPILL_TASKS = 16
#: Fewest bytes a span takes in a write-ahead segment (Arrow IPC columns: 8 uint64 and 2
#: int64 alone are 80), for an upper bound of the spans a segment holds.
SEGMENT_BYTES_PER_SPAN = 40
@dataclass(frozen=True)
class Merged:
    """What the partitioned analysis gives the pipeline."""

    distributions: Mapping[Key, MergedSamples]  # (stage, process|wait|total) and LEAD
    parts: PartVectors  # the summed counts (vectors empty)
    partitions: int
    spans: int
    torn: int
    damaged: tuple[str, ...]
    quarantined: tuple[str, ...]
    #: The tail attribution's merged means: with a single path :class:`~mapper.analysis.evidence.OnePathMeans`;
    #: with several, every stage from traces, :class:`PathMeans` (the means of a path, on demand).
    part_means: PathMeansSource | None = None
    #: With a :class:`SamplePlan`: each planned traced part's segments, merged exactly.
    segments: Mapping[Key, MergedSegment] | None = None
    #: ``(path, whatif.change_key(changes))`` -> the lead time after them, replayed per item
    #: (:class:`Replays`: computed when asked; empty: no replay).
    replays: Mapping[Any, MergedSamples] = field(default_factory=dict)
    #: The example items, merged from every partition's proposals (pass 4), when asked for.
    examples: Examples | None = None
    #: The attributes explanations, from every partition's counts added (pass 5), when asked for.
    explained: tuple[Explanation, ...] | None = None

    @property
    def unread(self) -> tuple[str, ...]:
        """The spool files not read, damaged: segments found damaged, then those quarantined."""
        return (*self.damaged, *(f"{WAL_DIR}/{QUARANTINE_DIR}/{n}" for n in self.quarantined))


@dataclass(frozen=True)
class ExampleRequest:
    """Examples asked of a partitioned analysis: up to ``count`` per key, with the
    thresholds ``thresholds`` makes of the merged distributions (what
    :func:`~mapper.analysis.latency.analyse` would make of them: the caller knows the
    metric results and the measured lead time that may replace them)."""

    count: int
    thresholds: Callable[[Merged], Mapping[ExampleKey, Threshold]]


def _wants(request: ExampleRequest | None) -> bool:
    return request is not None and request.count > 0


# --- orchestration -------------------------------------------------------------------


Mapper = Callable[[Callable[..., Any], Sequence[tuple[Any, ...]]], list[Any]]


def _local_map(fn: Callable[..., Any], args: Sequence[tuple[Any, ...]]) -> list[Any]:
    return [fn(*a) for a in args]


def _dask_map(client: Any) -> Mapper:
    def run(fn: Callable[..., Any], args: Sequence[tuple[Any, ...]]) -> list[Any]:
        if not args:
            return []
        columns = [list(c) for c in zip(*args, strict=True)]
        for c in columns:  # one large array for every task (the trace-to-item map): sent once
            if isinstance(c[0], np.ndarray) and c[0].nbytes > 1 << 20 and all(x is c[0] for x in c):
                shared = client.scatter(c[0], broadcast=True, hash=False)
                c[:] = [shared] * len(c)
        futures = client.map(fn, *columns, pure=False)
        out = []
        for a, f in zip(args, futures, strict=True):
            try:
                out.append(f.result())
            except SourceError:
                raise  # names its file or partition already
            except Exception as err:  # a worker killed (KilledWorker), a task that failed on it
                what = (f"partition {a[1]}" if fn in (pass_one, pass_two, pass_three, pass_four, *PARTITION_TASKS)
                        else f"files {a[0]}")
                raise SourceError(f"engine dask: {fn.__name__} of {what} failed: {type(err).__name__}: "
                                  f"{str(err)[:300]}") from err
        return out
    return run


def needed_qs(spec: StreamSpec) -> tuple[float, ...]:
    """Every percentile the map reads of a merged distribution: the spec's, its objectives',
    the per-hop percentiles budgets split them into, and :data:`STANDARD_QS`."""
    qs = {*spec.percentiles, *STANDARD_QS}
    for o in spec.objectives:
        qs |= {o.q, *(hop_quantile(o.q, k) for k in range(1, len(spec.stages) + 2))}
    return tuple(sorted(qs))


def analyse_partitioned(path: str, start_ns: int, end_ns: int, engine: EngineSpec,
                        matches: Sequence[StageMatch], upstream: Mapping[str, str | None],
                        qs: Sequence[float], client: Any = None,
                        item_path: Sequence[str] | None = None, segments: SamplePlan | None = None,
                        replay: bool = False, examples: ExampleRequest | None = None,
                        explain: Callable[[Merged], Sequence[Target]] | None = None) -> Merged | None:
    """The merged analysis of a spool's spans that start in ``(start_ns, end_ns]``, or None
    when they fit ``engine.memory_budget`` (at :data:`BYTES_PER_SPAN`): analyse them whole.
    With ``segments``: the traced parts' segments too (:func:`merge_segments`); with an
    ``item_path`` or ``replay`` (every stage from traces): the what-if trace replay of any
    changes of any path, on demand (:class:`Replays`); with ``examples``, a fourth pass gives
    ``Merged.examples``; with ``explain`` (the targets and thresholds to explain, of the merged
    distributions), a fifth gives ``Merged.explained``."""
    files = spool_files(path, start_ns + 1, end_ns)
    own_client = None
    if engine.kind == "dask" and client is None:
        client = own_client = connect(engine)
    run = _dask_map(client) if engine.kind == "dask" else _local_map
    try:
        return _run(files, start_ns + 1, end_ns, engine, matches, upstream, qs, run, item_path, segments, replay,
                    examples, explain)
    finally:
        if own_client is not None:
            own_client.close()


def most_spans(files: SpoolFiles) -> int:
    """An upper bound of the spans the files hold, from Parquet footers and segment sizes
    (no data read): a window under the budget by this bound needs no ids pass."""
    rows = 0
    for name in files.parquet:
        try:
            rows += pq.read_metadata(name).num_rows
        except (OSError, pa.ArrowInvalid):
            return 2**62  # unreadable here: let the ids pass say which
    for name in files.segments:
        try:
            rows += Path(name).stat().st_size // SEGMENT_BYTES_PER_SPAN + 1
        except OSError:
            continue  # compacted meanwhile: its Parquet file is listed (or the ids pass says so)
    return rows


def _run(files: SpoolFiles, lo: int, hi: int, engine: EngineSpec, matches: Sequence[StageMatch],
         upstream: Mapping[str, str | None], qs: Sequence[float], run: Mapper,
         item_path: Sequence[str] | None = None, plan: SamplePlan | None = None,
         replay_all: bool = False, examples: ExampleRequest | None = None,
         explain: Callable[[Merged], Sequence[Target]] | None = None) -> Merged | None:
    if engine.memory_budget >= 0 and most_spans(files) * BYTES_PER_SPAN <= engine.memory_budget:
        return None
    ids: list[FileIds] = run(ids_of_file, [(f, lo, hi) for f in files.files])
    spans = sum(i.rows for i in ids)
    if spans * BYTES_PER_SPAN <= engine.memory_budget:
        return None
    n_parts = max(1, math.ceil(spans / engine.spans_per_partition))
    src, dst = _take_pairs(ids)
    linked, group = linked_groups(src, dst)
    del src, dst
    base = engine.scratch
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="latmap-partitions-", dir=base)
    try:
        # Spill tasks over groups of files: one spill file per partition and task (many small
        # files per partition would cost an open each when the partition is read).
        names = files.files
        per_task = max(1, len(names) if run is _local_map else math.ceil(len(names) / SPILL_TASKS))
        groups = [names[i:i + per_task] for i in range(0, len(names), per_task)]
        rows = min(500_000, max(engine.spans_per_partition // 2, 10_000))
        run(spill_files, [(g, i, lo, hi, linked, group, n_parts, scratch, rows) for i, g in enumerate(groups)])
        del linked, group
        replay = replay_all or bool(item_path)
        keep_frame = replay_all and not item_path  # several paths: the attribution's path comes after the merge
        window = ((lo - 1) / 1e9, hi / 1e9)  # the flow's window: spans that start in (lo - 1, hi]
        first = run(pass_one, [(scratch, p, matches, upstream, item_path, replay, keep_frame, _wants(examples),
                                window) for p in range(n_parts)])
        keys = sorted({k for _, s in first for k in s})
        merged = {k: merge_summaries(s[k] for _, s in first if k in s) for k in keys}
        ranks = {k: ranks_needed(m.n, qs) for k, m in merged.items()}
        wanted = {k: bins_for_ranks(merged[k], ranks[k]) for k in keys}
        second = run(pass_two, [(scratch, p, wanted) for p in range(n_parts)])
        dists = {k: merged_samples(merged[k], ranks[k], [s[k] for s in second if k in s]) for k in keys}
        one = _part_means(dists.get(PARTS_LEAD), scratch, n_parts, run)
        means: PathMeansSource | None = OnePathMeans(one) if one is not None else None
        segments = merge_segments(scratch, n_parts, run, plan) if plan is not None else None
        replays = keep_replays(scratch, [p for p, (_, sm) in enumerate(first) if sm], [m.stage for m in matches],
                               qs, base) if replay else {}
        if keep_frame and means is None:
            means = keep_frames(scratch, [p for p, (_, sm) in enumerate(first) if sm], base)
        partial = Merged(dists, sum_parts([pv for pv, _ in first], n_parts), n_parts, spans, 0, (), (), means)
        chosen = _examples(examples, partial, [pv.starts for pv, _ in first], scratch, matches, upstream, run)
        targets = list(explain(partial)) if explain is not None else []
        counts = add_counts(run(pass_five, [(scratch, p, matches, upstream, targets) for p in range(n_parts)]),
                            len(targets)) if targets else []
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Merged(dists, sum_parts([pv for pv, _ in first], n_parts), n_parts, spans,
                  sum(i.torn for i in ids), tuple(Path(i.name).name for i in ids if i.damaged), files.quarantined,
                  means, segments, replays, chosen,
                  tuple(map(explain_counts, targets, counts)) if explain is not None else None)


def _examples(request: ExampleRequest | None, merged: Merged, starts: Sequence[tuple[float, float] | None],
              scratch: str, matches: Sequence[StageMatch], upstream: Mapping[str, str | None],
              run: Mapper) -> Examples | None:
    """Pass 4: the examples, from the thresholds of the merged distributions and the first
    to last start over every partition (as ``examples.choose`` slices one whole table)."""
    if request is None or request.count <= 0:
        return None
    ranges = [s for s in starts if s is not None]
    thresholds = dict(request.thresholds(merged))
    if not ranges or not thresholds:
        return Examples(request.count, {})
    window = (min(r[0] for r in ranges), max(r[1] for r in ranges))
    proposals = run(pass_four, [(scratch, p, matches, upstream, thresholds, window, request.count)
                                for p in range(merged.partitions)])
    return merge(proposals, thresholds, request.count)


def _part_means(lead: MergedSamples | None, scratch: str, n_parts: int,
                run: Mapper) -> dict[str, tuple[pd.Series, int]] | None:
    """Pass 3: the mean lead and parts of the median-band items and of each tail's items,
    with the band's and tails' thresholds exact (merged order statistics of the lead)."""
    if lead is None or not lead.n:
        return None
    sets = tail_sets(lead)
    return mean_parts(run(pass_three, [(scratch, p, sets) for p in range(n_parts)]), sets)


def _take_pairs(ids: list[FileIds]) -> tuple[np.ndarray, np.ndarray]:
    """Every file's link pairs in two arrays, each file's freed as it is copied (the pairs
    are the client's largest memory: ~8 bytes per link between traces)."""
    total = sum(i.src.size for i in ids)
    src, dst = np.empty(total, np.uint32), np.empty(total, np.uint32)
    at = 0
    for k, i in enumerate(ids):
        src[at:at + i.src.size], dst[at:at + i.src.size] = i.src, i.dst
        at += i.src.size
        ids[k] = FileIds(i.name, i.rows, i.src[:0].copy(), i.dst[:0].copy(), i.torn, i.damaged)
    return src, dst


def merge_replays(scratch: str, n_parts: int, run: Mapper, futures: Sequence[Sequence[Change]], stages: Sequence[str],
                  path: Sequence[str], qs: Sequence[float]) -> dict[Any, MergedSamples]:
    """The what-if trace replay merged exactly: each partition replays its complete items
    under each set of changes (the in-memory replay's arithmetic, item by item); the
    replayed lead times merge as the distributions do (bin counts, then the needed values)."""
    futures = [tuple(c) for c in futures]
    first = run(replay_pass_one, [(scratch, p, stages, path, futures) for p in range(n_parts)])
    out = {}
    merged = [merge_summaries(f[i] for f in first if f) for i in range(len(futures))]
    ranks = [sorted({*ranks_needed(m.n, qs), *([m.n] if m.n else [])}) for m in merged]  # the largest: budgets
    wanted = [bins_for_ranks(m, r) for m, r in zip(merged, ranks, strict=True)]
    second = run(replay_pass_two, [(scratch, p, stages, path, futures, wanted) for p in range(n_parts)])
    for i, changes in enumerate(futures):
        out[change_key(changes)] = merged_samples(merged[i], ranks[i], [s[i] for s in second if s])
    return out


def merge_segments(scratch: str, n_parts: int, run: Mapper, plan: SamplePlan) -> dict[Key, MergedSegment]:
    """Two more passes over pass 1's samples: per planned part and segment slot, the same
    two-pass merge as the distributions (bin counts, then the values of the bins holding
    the ranks the segments read), so every segment's percentiles and intervals are exact."""
    first = run(segment_pass_one, [(scratch, p, plan) for p in range(n_parts)])
    keys = {k for s in first for k in s}
    merged = {k: merge_summaries(s[k] for s in first if k in s) for k in keys}
    ranks = {k: sorted({*ranks_needed(m.n, plan.qs), *ranks_needed(m.n, (PEAK_PERCENTILE,), PEAK_CONFIDENCE)})
             for k, m in merged.items()}
    wanted = {k: bins_for_ranks(merged[k], ranks[k]) for k in keys}
    second = run(segment_pass_two, [(scratch, p, plan, wanted) for p in range(n_parts)])
    slots: dict[Key, dict[Slot, MergedSamples]] = {k: {} for k in plan.keys}
    for k in keys:
        slots.setdefault(k[0], {})[k[1]] = merged_samples(merged[k], ranks[k], [s[k] for s in second if k in s])
    empty = merged_samples(merge_summaries([]), [], [])
    return {k: MergedSegment.of(slots[k], plan, empty) for k in plan.keys}


class Replays(Mapping[Any, MergedSamples]):
    """The what-if trace replay of a partitioned analysis, on demand: ``(path,
    whatif.change_key(changes))`` -> the merged lead time after those changes of the path's
    hops (:func:`merge_replays` over the complete
    items' lead and hops each partition kept, one partition in memory at a time). The kept
    files are removed when this object is dropped, or at exit."""

    def __init__(self, root: str, n_parts: int, stages: Sequence[str], qs: Sequence[float]) -> None:
        self.root, self.n_parts, self.stages, self.qs = root, n_parts, tuple(stages), tuple(qs)
        self._done: dict[Any, MergedSamples] = {}
        self._cleanup = weakref.finalize(self, shutil.rmtree, root, True)

    def __getitem__(self, key: Any) -> MergedSamples:
        if key not in self._done:
            path, spec = key
            changes = [Change(hop, kind, value, other) for hop, kind, value, other in spec]
            if any(s not in self.stages for s in path) or any(
                    c.hop not in path or (c.kind == "parallel" and c.other not in path) for c in changes):
                raise KeyError(key)
            self._done[key] = merge_replays(self.root, self.n_parts, _local_map, [changes], self.stages, path,
                                            self.qs)[change_key(changes)]
        return self._done[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._done)

    def __len__(self) -> int:
        return len(self._done)

    def __bool__(self) -> bool:  # any change can be replayed, before the first is asked for
        return True


def keep_replays(scratch: str, parts: Sequence[int], stages: Sequence[str], qs: Sequence[float],
                 base: str | None) -> Mapping[Any, MergedSamples]:
    """Move the partitions' replay files out of the scratch directory (removed after the
    analysis) into one kept for :class:`Replays`; empty when this process cannot read every
    one (a Dask scratch the client does not share): the what-if falls back to convolution."""
    src = [Path(scratch) / f"p={p}" / "replay.npy" for p in parts]
    if not src or not all(f.exists() for f in src):
        return {}
    keep = tempfile.mkdtemp(prefix="latmap-replay-", dir=base)
    for p, f in zip(parts, src, strict=True):
        (Path(keep) / f"p={p}").mkdir()
        shutil.move(str(f), Path(keep) / f"p={p}" / "replay.npy")
    return Replays(keep, max(parts) + 1, stages, qs)


class PathMeans:
    """The tail attribution's merged means for a path chosen after the merge (a stream of
    several paths, every stage from traces), on demand: per partition
    ``attribution.item_parts`` of the kept rows for the path, its items' lead merged in two
    passes for the median band's and tails' thresholds, then pass 3's sums. Removed when
    dropped, or at exit."""

    def __init__(self, root: str, parts: Sequence[int]) -> None:
        self.root, self.parts = root, list(parts)
        self._done: dict[tuple[str, ...], dict[str, tuple[pd.Series, int]] | None] = {}
        self._cleanup = weakref.finalize(self, shutil.rmtree, root, True)

    def of_path(self, path: Sequence[str]) -> dict[str, tuple[pd.Series, int]] | None:
        key = tuple(path)
        if key not in self._done:
            work = tempfile.mkdtemp(prefix="path-", dir=self.root)
            try:
                self._done[key] = self._means(key, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        return self._done[key]

    def _means(self, path: tuple[str, ...], work: str) -> dict[str, tuple[pd.Series, int]] | None:
        summaries, leads = [], []
        for p in self.parts:
            f = Path(self.root) / f"p={p}" / "frame.parquet"
            try:
                frame = pd.read_parquet(f)
            except (OSError, ValueError, pa.ArrowInvalid) as err:
                raise SourceError(f"partition {p} ({f}): the tail attribution's rows cannot be read: {err}") from err
            items = item_parts(TraceTable(frame, path, 0, np.array([]), 0), path)
            if items is None:
                continue
            d = Path(work) / f"p={p}"
            d.mkdir()
            np.save(d / "items.npy", items.to_numpy(dtype=np.float64))
            (d / "items.json").write_text(json.dumps(list(items.columns)))
            summaries.append(Summary.of(items["lead"].to_numpy(dtype=np.float64)))
            leads.append(d / "items.npy")
        merged = merge_summaries(summaries)
        ranks = ranks_needed(merged.n, STANDARD_QS)
        wanted = bins_for_ranks(merged, ranks)
        pulled = [values_in(np.load(f)[:, 0], wanted) for f in leads]  # "lead" is item_parts' first column
        lead = merged_samples(merged, ranks, pulled)
        return _part_means(lead, work, max(self.parts, default=-1) + 1, _local_map)


def keep_frames(scratch: str, parts: Sequence[int], base: str | None) -> PathMeans | None:
    """Move the partitions' kept rows out of the scratch directory for :class:`PathMeans`;
    None when this process cannot read every one (a Dask scratch it does not share)."""
    src = [Path(scratch) / f"p={p}" / "frame.parquet" for p in parts]
    if not src or not all(f.exists() for f in src):
        return None
    keep = tempfile.mkdtemp(prefix="latmap-frames-", dir=base)
    for p, f in zip(parts, src, strict=True):
        (Path(keep) / f"p={p}").mkdir()
        shutil.move(str(f), Path(keep) / f"p={p}" / "frame.parquet")
    return PathMeans(keep, parts)
