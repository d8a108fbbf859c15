"""Traces at any scale: a spool's window analysed partition by partition, locally or on Dask.

The steps, each a function a Dask task can run (module-level, arguments picklable):

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
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from collectors.spool.payload import SCHEMA
from collectors.spool.reader import SpoolError, SpoolFiles, iter_spool_file, spool_files, table_to_batch
from mapper.analysis.attribution import MEDIAN_BAND, TAILS, item_parts
from mapper.analysis.budgets import hop_quantile
from mapper.analysis.examples import Example, Examples, Threshold, merge, propose
from mapper.analysis.examples import Key as ExampleKey
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
    group_key,
    linked_groups,
    partition_of,
    partition_vectors,
    set_sums,
)
from mapper.analysis.segments import (
    PEAK_CONFIDENCE,
    PEAK_PERCENTILE,
    MergedSegment,
    SamplePlan,
    Slot,
    sample_slots,
)
from mapper.analysis.traces import ItemTraces, StageMatch, TraceTable, build_trace_table
from mapper.analysis.whatif import change_key, replayed
from mapper.core.distribution import percentile_label
from mapper.core.errors import SourceError, UsageError
from mapper.core.model import Check
from mapper.core.spans import dedupe
from mapper.core.spec import StreamSpec
from mapper.core.spec.engine import BYTES_PER_SPAN, EngineSpec
from mapper.core.spec.extra import Change

log = logging.getLogger(__name__)

#: Percentiles every merged distribution can answer beside the spec's own and its
#: objectives': what the renderers, the bottleneck and the attribution read.
STANDARD_QS = (0.5, 0.9, 0.95, 0.99, 0.999, 0.9999, *TAILS, *MEDIAN_BAND)
_ID_COLUMNS = ["trace_lo", "links", "link_trace_lo"]
#: Spill tasks on Dask at most (each writes one file per partition).
SPILL_TASKS = 16
#: Fewest bytes a span takes in a write-ahead segment (Arrow IPC columns: 8 uint64 and 2
#: int64 alone are 80), for an upper bound of the spans a segment holds.
SEGMENT_BYTES_PER_SPAN = 40
#: A partition's trace table, kept by pass 1 for pass 4 when the map asks for examples.
TABLE_FILE = "table.npz"

Key = tuple[str, str]


@dataclass(frozen=True)
class FileIds:
    name: str
    rows: int
    src: np.ndarray
    dst: np.ndarray
    torn: int = 0
    damaged: bool = False


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
    #: With a single path: the tail attribution's merged means (``TraceTable.part_means``);
    #: with several, every stage from traces: :class:`PathMeans` (the means of a path, on demand).
    part_means: Mapping[str, tuple[pd.Series, int]] | Callable[..., Any] | None = None
    #: With a :class:`SamplePlan`: each planned traced part's segments, merged exactly.
    segments: Mapping[Key, MergedSegment] | None = None
    #: ``(path, whatif.change_key(changes))`` -> the lead time after them, replayed per item
    #: (:class:`Replays`: computed when asked; empty: no replay).
    replays: Mapping[Any, MergedSamples] = field(default_factory=dict)
    #: The example items, merged from every partition's proposals (pass 4), when asked for.
    examples: Examples | None = None


@dataclass(frozen=True)
class ExampleRequest:
    """Examples asked of a partitioned analysis: up to ``count`` per key, with the
    thresholds ``thresholds`` makes of the merged distributions (what
    :func:`~mapper.analysis.latency.analyse` would make of them: the caller knows the
    metric results and the measured lead time that may replace them)."""

    count: int
    thresholds: Callable[[Merged], Mapping[ExampleKey, Threshold]]


# --- the tasks -----------------------------------------------------------------------


def ids_of_file(name: str, lo: int, hi: int) -> FileIds:
    """Rows of one spool file in the window, and (linking trace, linked trace) key pairs."""
    srcs, dsts, n, torn = [], [], 0, 0
    try:
        for table, bad in iter_spool_file(name, lo, hi, columns=_ID_COLUMNS):
            s, d = _link_pairs(table)
            srcs.append(s)
            dsts.append(d)
            n += table.num_rows
            torn += bad
    except SpoolError as err:
        log.warning("%s; skipped", err)
        return FileIds(name, 0, np.array([], np.uint32), np.array([], np.uint32), damaged=True)
    except FileNotFoundError:
        raise SourceError(f"{name}: compacted while the map read the spool; run the map again") from None
    src, dst = np.concatenate(srcs or [np.array([], np.uint32)]), np.concatenate(dsts or [np.array([], np.uint32)])
    if src.size:
        pair = np.unique((src.astype(np.uint64) << np.uint64(32)) | dst.astype(np.uint64))
        src, dst = (pair >> np.uint64(32)).astype(np.uint32), (pair & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    return FileIds(name, n, src, dst, torn)


def _link_pairs(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(linking trace, linked trace) group keys of a piece's cross-trace links."""
    trace = table.column("trace_lo").to_numpy()
    col = table.column("links").combine_chunks()
    rows = pc.list_parent_indices(col).to_numpy().astype(np.int64) if table.num_rows else np.array([], np.int64)
    dst = col.flatten().field("trace_lo").to_numpy(zero_copy_only=False).astype(np.uint64)
    legacy = col.is_null().to_numpy(zero_copy_only=False) & (table.column("link_trace_lo").to_numpy() != 0)
    old = np.flatnonzero(legacy)
    src = np.concatenate([trace[rows], trace[old]]).astype(np.uint64)
    dst = np.concatenate([dst, table.column("link_trace_lo").to_numpy()[old]]).astype(np.uint64)
    cross = (src != dst) & (dst != 0)
    return group_key(src[cross]), group_key(dst[cross])


def spill_files(names: Sequence[str], index: int, lo: int, hi: int, linked: np.ndarray, group: np.ndarray,
                n_parts: int, scratch: str) -> np.ndarray:
    """Write some spool files' window rows into ``scratch/p=K/fINDEX.parquet`` by partition
    (one file per partition and task, whatever the number of spool files); returns the rows
    written per partition."""
    total = np.zeros(n_parts, np.int64)
    writers: dict[int, pq.ParquetWriter] = {}
    try:
        for name in names:
            total += _spill_one(name, lo, hi, linked, group, n_parts, scratch, index, writers)
    finally:
        for w in writers.values():
            w.close()
    return total


def _spill_one(name: str, lo: int, hi: int, linked: np.ndarray, group: np.ndarray, n_parts: int, scratch: str,
               index: int, writers: dict[int, Any]) -> np.ndarray:
    total = np.zeros(n_parts, np.int64)
    try:
        for table, _ in iter_spool_file(name, lo, hi):
            part = partition_of(table.column("trace_lo").to_numpy(), linked, group, n_parts)
            order = np.argsort(part, kind="stable")
            counts = np.bincount(part, minlength=n_parts)
            table = table.take(pa.array(order))
            at = 0
            for p in np.flatnonzero(counts).tolist():
                if p not in writers:
                    d = Path(scratch) / f"p={p}"
                    d.mkdir(parents=True, exist_ok=True)
                    writers[p] = pq.ParquetWriter(d / f"f{index}.parquet", SCHEMA)
                writers[p].write_table(table.slice(at, int(counts[p])))
                at += int(counts[p])
            total += counts
    except SpoolError:
        return np.zeros(n_parts, np.int64)  # counted as damaged by ids_of_file
    except FileNotFoundError:
        raise SourceError(f"{name}: compacted while the map read the spool; run the map again") from None
    return total


def _partition_batch(scratch: str, p: int) -> Any:
    d = Path(scratch) / f"p={p}"
    files = sorted(str(f) for f in d.glob("f*.parquet")) if d.is_dir() else []
    if not files:
        return None
    try:
        table = pa.concat_tables([pq.read_table(f, schema=SCHEMA) for f in files])
    except (pa.ArrowInvalid, OSError) as err:
        raise SourceError(f"partition {p} ({d}): cannot be read: {err}") from err
    return dedupe(table_to_batch(table))[0]


def pass_one(scratch: str, p: int, matches: Sequence[StageMatch], upstream: Mapping[str, str | None],
             path: Sequence[str] | None = None, replay: bool = False,
             keep_frame: bool = False, keep_table: bool = False) -> tuple[PartVectors, dict[Key, Summary]]:
    """Partition ``p``'s analysis: its counts (vectors dropped) and its samples' bin counts;
    the samples are kept in the partition's directory for :func:`pass_two` (and with
    ``keep_table`` its trace table, for :func:`pass_four`)."""
    batch = _partition_batch(scratch, p)
    if batch is None:
        return PartVectors({}), {}
    try:
        pv = partition_vectors(batch, matches, upstream, path,
                               on_table=partial(_save_table, Path(scratch) / f"p={p}") if keep_table else None,
                               replay=replay, frame=keep_frame)
    except Exception as err:  # a partition that fails names itself; the run fails
        raise SourceError(f"partition {p}: analysis failed: {type(err).__name__}: {err}") from err
    keys = sorted(pv.vectors)
    d = Path(scratch) / f"p={p}"
    np.save(d / "vectors.npy", np.concatenate([pv.vectors[k] for k in keys]))
    (d / "vectors.json").write_text(json.dumps([[*k, int(pv.vectors[k].size)] for k in keys]))
    _save_times(d, pv, keys)
    if pv.replay is not None:
        np.save(d / "replay.npy", pv.replay)
    if pv.frame is not None:
        pv.frame.to_parquet(d / "frame.parquet")
    if pv.items is not None:
        np.save(d / "items.npy", pv.items.to_numpy(dtype=np.float64))
        (d / "items.json").write_text(json.dumps(list(pv.items.columns)))
    summaries = {k: Summary.of(v) for k, v in pv.vectors.items()}
    return PartVectors({}, pv.traces, pv.spans_used, pv.link_edges, pv.stage_rows, pv.negative_waits,
                       pv.min_wait, pv.skewed_links, pv.checks, starts=pv.starts), summaries


def pass_two(scratch: str, p: int, wanted: Mapping[Key, np.ndarray]) -> dict[Key, tuple[np.ndarray, np.ndarray]]:
    """Partition ``p``'s distinct values (and their counts) in the ``wanted`` bins, per sample vector."""
    d = Path(scratch) / f"p={p}"
    if not (d / "vectors.json").exists():
        return {}
    values = np.load(d / "vectors.npy")
    out, at = {}, 0
    for stage, part, size in json.loads((d / "vectors.json").read_text()):
        k = (stage, part)
        if k in wanted:
            out[k] = values_in(values[at:at + size], wanted[k])
        at += size
    return out


def pass_three(scratch: str, p: int, thresholds: Mapping[str, tuple[float, float]]
               ) -> tuple[list[str], dict[str, tuple[int, np.ndarray]]]:
    """Partition ``p``'s item counts and column sums per set of items (by lead time)."""
    d = Path(scratch) / f"p={p}"
    if not (d / "items.json").exists():
        return [], {}
    columns = json.loads((d / "items.json").read_text())
    return columns, set_sums(pd.DataFrame(np.load(d / "items.npy"), columns=columns), thresholds)


def pass_four(scratch: str, p: int, matches: Sequence[StageMatch], upstream: Mapping[str, str | None],
              thresholds: Mapping[ExampleKey, Threshold], window: tuple[float, float],
              k: int) -> dict[ExampleKey, list[Example]]:
    """Partition ``p``'s candidate examples (:func:`~mapper.analysis.examples.propose`) for
    the global ``thresholds`` and the window's global time range ``window``: the partition's
    trace table as pass 1 kept it (else built again from its spilled rows: the same table)."""
    kept = Path(scratch) / f"p={p}" / TABLE_FILE
    try:
        if kept.exists():
            table = _load_table(kept)
        else:
            batch = _partition_batch(scratch, p)
            if batch is None:
                return {}
            table = build_trace_table(batch, matches, upstream)
        return propose(table, thresholds, window, k)
    except Exception as err:  # a partition that fails names itself; the run fails
        raise SourceError(f"partition {p}: examples failed: {type(err).__name__}: {err}") from err


#: The frame columns examples read (``examples.propose``), kept by :func:`_save_table`.
_TABLE_COLUMNS = ("trace", "start", "process", "wait", "primary")


def _save_table(d: Path, table: TraceTable) -> None:
    """Keep what :func:`~mapper.analysis.examples.propose` reads of a partition's trace
    table in its directory for :func:`pass_four`, as plain arrays (no pickle: the scratch
    directory may be shared with the workers)."""
    d.mkdir(parents=True, exist_ok=True)
    f = table.frame
    arrays = {c: f[c].to_numpy() for c in _TABLE_COLUMNS}
    arrays["stage"] = pd.Categorical(f["stage"], categories=table.stages).codes
    arrays["lead"], arrays["lead_traces"] = table.lead, table.lead_traces
    arrays["traces"] = np.array([table.traces, table.spans_used])
    arrays["stages"] = np.array(table.stages, dtype=str)
    if table.ids is not None:
        arrays["ids_unit"], arrays["ids_hi"], arrays["ids_lo"] = table.ids.unit, table.ids.hi, table.ids.lo
        if table.ids.row is not None:
            arrays["ids_row"] = table.ids.row
    with (d / TABLE_FILE).open("wb") as out:
        np.savez(out, **arrays)


def _load_table(path: Path) -> TraceTable:
    """The table :func:`_save_table` kept (its frame only the columns examples read)."""
    with np.load(path, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    stages = tuple(str(s) for s in a["stages"])
    frame = pd.DataFrame({c: a[c] for c in _TABLE_COLUMNS})
    frame.insert(1, "stage", pd.Categorical.from_codes(a["stage"], categories=stages))
    ids = (ItemTraces(a["ids_unit"], a.get("ids_row"), a["ids_hi"], a["ids_lo"]) if "ids_unit" in a else None)
    return TraceTable(frame, stages, int(a["traces"][0]), a["lead"], int(a["traces"][1]), a["lead_traces"], ids=ids)


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


def connect(engine: EngineSpec, timeout: float = 10.0) -> Any:
    """A Dask client on ``engine.scheduler``; an unreachable or mismatched scheduler is a
    UsageError (one line, exit 2)."""
    try:
        from distributed import Client
    except ImportError as err:
        raise UsageError("engine dask: install latmap[dask] (dask[dataframe] and distributed)") from err
    try:
        client = Client(engine.scheduler, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as err:
        raise UsageError(f"engine dask: scheduler {engine.scheduler} unreachable: {err}") from err
    try:
        client.get_versions(check=True)
    except ValueError as err:  # distributed raises on a version mismatch of required packages
        client.close()
        raise UsageError(f"engine dask: {engine.scheduler}: {str(err).splitlines()[0]}") from err
    return client


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
                        replay: bool = False, examples: ExampleRequest | None = None) -> Merged | None:
    """The merged analysis of a spool's spans that start in ``(start_ns, end_ns]``, or None
    when they fit ``engine.memory_budget`` (at :data:`BYTES_PER_SPAN`): analyse them whole.
    With ``segments``: the traced parts' segments too (:func:`merge_segments`); with an
    ``item_path`` or ``replay`` (every stage from traces): the what-if trace replay of any
    changes of any path, on demand (:class:`Replays`); with ``examples``, a fourth pass gives
    ``Merged.examples``."""
    files = spool_files(path, start_ns + 1, end_ns)
    own_client = None
    if engine.kind == "dask" and client is None:
        client = own_client = connect(engine)
    run = _dask_map(client) if engine.kind == "dask" else _local_map
    try:
        return _run(files, start_ns + 1, end_ns, engine, matches, upstream, qs, run, item_path, segments, replay,
                    examples)
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
         replay_all: bool = False, examples: ExampleRequest | None = None) -> Merged | None:
    if engine.memory_budget >= 0 and most_spans(files) * BYTES_PER_SPAN <= engine.memory_budget:
        return None
    ids: list[FileIds] = run(ids_of_file, [(f, lo, hi) for f in files.files])
    spans = sum(i.rows for i in ids)
    if spans * BYTES_PER_SPAN <= engine.memory_budget:
        return None
    n_parts = max(1, math.ceil(spans / engine.partition_spans))
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
        per_task = len(names) if run is _local_map else max(1, math.ceil(len(names) / SPILL_TASKS))
        groups = [names[i:i + per_task] for i in range(0, len(names), per_task)]
        run(spill_files, [(g, i, lo, hi, linked, group, n_parts, scratch) for i, g in enumerate(groups)])
        del linked, group
        replay = replay_all or bool(item_path)
        keep_frame = replay_all and not item_path  # several paths: the attribution's path comes after the merge
        first = run(pass_one, [(scratch, p, matches, upstream, item_path, replay, keep_frame, _wants(examples))
                               for p in range(n_parts)])
        keys = sorted({k for _, s in first for k in s})
        merged = {k: merge_summaries(s[k] for _, s in first if k in s) for k in keys}
        ranks = {k: ranks_needed(m.n, qs) for k, m in merged.items()}
        wanted = {k: bins_for_ranks(merged[k], ranks[k]) for k in keys}
        second = run(pass_two, [(scratch, p, wanted) for p in range(n_parts)])
        dists = {k: merged_samples(merged[k], ranks[k], [s[k] for s in second if k in s]) for k in keys}
        means: Any = _part_means(dists.get(PARTS_LEAD), scratch, n_parts, run)
        segments = merge_segments(scratch, n_parts, run, plan) if plan is not None else None
        replays = keep_replays(scratch, [p for p, (_, sm) in enumerate(first) if sm], [m.stage for m in matches],
                               qs, base) if replay else {}
        if keep_frame and means is None:
            means = keep_frames(scratch, [p for p, (_, sm) in enumerate(first) if sm], base)
        chosen = _examples(examples, Merged(dists, _sum_parts([pv for pv, _ in first], n_parts), n_parts, spans,
                                            0, (), (), means),
                           [pv.starts for pv, _ in first], scratch, matches, upstream, run)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Merged(dists, _sum_parts([pv for pv, _ in first], n_parts), n_parts, spans,
                  sum(i.torn for i in ids), tuple(Path(i.name).name for i in ids if i.damaged), files.quarantined,
                  means, segments, replays, chosen)


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
    lo, hi = (lead.exact(q) for q in MEDIAN_BAND)
    sets = {"median": (lo, hi), **{percentile_label(q): (lead.exact(q), math.inf) for q in (*TAILS, 0.99)}}
    third = run(pass_three, [(scratch, p, sets) for p in range(n_parts)])
    columns = next((c for c, _ in third if c), None)
    if columns is None:
        return None
    out = {}
    for name in sets:
        n = sum(s[name][0] for _, s in third if name in s)
        total = sum((s[name][1] for _, s in third if name in s), np.zeros(len(columns)))
        out[name] = (pd.Series(total / n if n else np.full(len(columns), np.nan), index=columns), n)
    return out


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


def _sum_parts(parts: Sequence[PartVectors], n_parts: int) -> PartVectors:
    def add(field: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for pv in parts:
            for k, v in getattr(pv, field).items():
                out[k] = out.get(k, 0) + v
        return out

    low: dict[str, float] = {}
    for pv in parts:
        for k, v in pv.min_wait.items():
            low[k] = min(low.get(k, 0.0), v)
    checks = tuple(Check(c.level, c.code, f"partition {i + 1}/{n_parts}: {c.message}", c.stage, c.part)
                   for i, pv in enumerate(parts) for c in pv.checks)
    return PartVectors({}, sum(pv.traces for pv in parts), sum(pv.spans_used for pv in parts),
                       sum(pv.link_edges for pv in parts), add("stage_rows"), add("negative_waits"), low,
                       add("skewed_links"), checks)


# --- segments: the traced parts' samples by hour of day, weekday, hour and event ------


SegmentKey = tuple[Key, Slot]


def _save_times(d: Path, pv: PartVectors, keys: Sequence[Key]) -> None:
    """Each sample's time beside ``vectors.npy`` (same order), for the segment passes."""
    timed = [k for k in keys if k in pv.times]
    if timed:
        np.save(d / "times.npy", np.concatenate([pv.times[k] for k in timed]))
        (d / "times.json").write_text(json.dumps([[*k, int(pv.times[k].size)] for k in timed]))


def _timed_samples(scratch: str, p: int, keys: Sequence[Key]) -> dict[Key, tuple[np.ndarray, np.ndarray]]:
    """Partition ``p``'s (times, values) of each of ``keys`` (from pass 1's files)."""
    d = Path(scratch) / f"p={p}"
    if not (d / "times.json").exists():
        return {}

    def spans(name: str) -> dict[Key, slice]:
        out, at = {}, 0
        for stage, part, size in json.loads((d / name).read_text()):
            out[(stage, part)] = slice(at, at + size)
            at += size
        return out

    vs, ts = spans("vectors.json"), spans("times.json")
    values, times = np.load(d / "vectors.npy"), np.load(d / "times.npy")
    return {k: (times[ts[k]], values[vs[k]]) for k in keys if k in ts and k in vs}


def segment_pass_one(scratch: str, p: int, plan: SamplePlan) -> dict[SegmentKey, Summary]:
    """Partition ``p``'s bin counts per planned part and segment slot."""
    out = {}
    for k, (t, v) in _timed_samples(scratch, p, plan.keys).items():
        for slot, mask in sample_slots(t, plan.events):
            if mask.any():
                out[(k, slot)] = Summary.of(v[mask])
    return out


def segment_pass_two(scratch: str, p: int, plan: SamplePlan, wanted: Mapping[SegmentKey, np.ndarray]
                     ) -> dict[SegmentKey, tuple[np.ndarray, np.ndarray]]:
    """Partition ``p``'s distinct values (and counts) in the ``wanted`` bins, per part and slot."""
    out = {}
    for k, (t, v) in _timed_samples(scratch, p, plan.keys).items():
        for slot, mask in sample_slots(t, plan.events):
            if (k, slot) in wanted:
                out[(k, slot)] = values_in(v[mask], wanted[(k, slot)])
    return out


def replay_pass_one(scratch: str, p: int, stages: Sequence[str], path: Sequence[str],
                    futures: Sequence[Sequence[Change]]) -> list[Summary]:
    """Partition ``p``'s bin counts of the lead time after each set of changes of ``path``."""
    return [Summary.of(v) for v in _replayed(scratch, p, stages, path, futures)]


def replay_pass_two(scratch: str, p: int, stages: Sequence[str], path: Sequence[str],
                    futures: Sequence[Sequence[Change]], wanted: Sequence[np.ndarray]
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Partition ``p``'s distinct replayed lead times in the ``wanted`` bins, per set of changes."""
    return [values_in(v, w) for v, w in zip(_replayed(scratch, p, stages, path, futures), wanted, strict=False)]


def _replayed(scratch: str, p: int, stages: Sequence[str], path: Sequence[str],
              futures: Sequence[Sequence[Change]]) -> list[np.ndarray]:
    f = Path(scratch) / f"p={p}" / "replay.npy"
    if not f.exists():
        return []
    try:
        m = np.load(f)
    except (OSError, ValueError) as err:
        raise SourceError(f"partition {p} ({f}): the what-if replay's file cannot be read: {err}") from err
    hops = {s: m[:, list(stages).index(s) + 1] for s in path}  # in the path's order, as in memory
    return [replayed(m[:, 0], hops, changes) for changes in futures]


PARTITION_TASKS: tuple[Callable[..., Any], ...] = (segment_pass_one, segment_pass_two, replay_pass_one,
                                                   replay_pass_two)


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

    def __call__(self, path: Sequence[str]) -> dict[str, tuple[pd.Series, int]] | None:
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
