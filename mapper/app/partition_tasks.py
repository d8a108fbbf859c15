"""The partitioned analysis's tasks: what runs per spool file (ids, spill) or per partition
(passes 1 to 4, the segment and what-if replay passes), each a module-level function whose
arguments pickle, so a Dask worker runs it as the local engine does. Each reads and writes
only its own files under the scratch directory; :mod:`mapper.app.engine` schedules them and
merges what they return.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from collectors.spool.payload import SCHEMA
from collectors.spool.reader import SpoolError, iter_spool_file, table_to_batch
from mapper.analysis.examples import Example, Threshold, propose
from mapper.analysis.examples import Key as ExampleKey
from mapper.analysis.explain.merge import Counts, Target, partition_counts
from mapper.analysis.merge import (
    Summary,
    values_in,
)
from mapper.analysis.partition import (
    PartVectors,
    group_key,
    partition_of,
    partition_vectors,
    set_sums,
)
from mapper.analysis.segments import (
    SamplePlan,
    Slot,
    sample_slots,
)
from mapper.analysis.traces import ItemTraces, StageMatch, TraceTable, build_trace_table
from mapper.analysis.whatif import replayed
from mapper.core.errors import SourceError
from mapper.core.spans import dedupe
from mapper.core.spec.extra import Change

log = logging.getLogger(__name__)

_ID_COLUMNS = ["trace_lo", "links", "link_trace_lo"]
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
                n_parts: int, scratch: str, batch_rows: int = 500_000) -> np.ndarray:
    """Write some spool files' window rows into ``scratch/p=K/fINDEX.parquet`` by partition
    (one file per partition and task, whatever the number of spool files); returns the rows
    written per partition. Files are read ``batch_rows`` rows at a time (a partition's size
    at most, so that spilling stays within the memory budget a partition does)."""
    total = np.zeros(n_parts, np.int64)
    writers: dict[int, pq.ParquetWriter] = {}
    try:
        for name in names:
            total += _spill_one(name, lo, hi, linked, group, n_parts, scratch, index, writers, batch_rows)
    finally:
        for w in writers.values():
            w.close()
    return total


def _spill_one(name: str, lo: int, hi: int, linked: np.ndarray, group: np.ndarray, n_parts: int, scratch: str,
               index: int, writers: dict[int, Any], batch_rows: int = 500_000) -> np.ndarray:
    total = np.zeros(n_parts, np.int64)
    try:
        for table, _ in iter_spool_file(name, lo, hi, batch_rows=batch_rows):
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


def _partition_batch(scratch: str, p: int) -> tuple[Any, int]:
    """Partition ``p``'s spans, repeated spans dropped, and how many were (None: no spans)."""
    d = Path(scratch) / f"p={p}"
    files = sorted(str(f) for f in d.glob("f*.parquet")) if d.is_dir() else []
    if not files:
        return None, 0
    try:
        table = pa.concat_tables([pq.read_table(f, schema=SCHEMA) for f in files])
    except (pa.ArrowInvalid, OSError) as err:
        raise SourceError(f"partition {p} ({d}): cannot be read: {err}") from err
    return dedupe(table_to_batch(table))


def pass_one(scratch: str, p: int, matches: Sequence[StageMatch], upstream: Mapping[str, str | None],
             path: Sequence[str] | None = None, replay: bool = False,
             keep_frame: bool = False, keep_table: bool = False,
             window: tuple[float, float] | None = None) -> tuple[PartVectors, dict[Key, Summary]]:
    """Partition ``p``'s analysis: its counts (vectors dropped; with ``window``, Unix
    seconds, the flow's sums) and its samples' bin counts; the samples are kept in the
    partition's directory for :func:`pass_two` (and with ``keep_table`` its trace table, for
    :func:`pass_four`)."""
    batch, duplicates = _partition_batch(scratch, p)
    if batch is None:
        return PartVectors({}), {}
    try:
        pv = partition_vectors(batch, matches, upstream, path,
                               on_table=partial(_save_table, Path(scratch) / f"p={p}") if keep_table else None,
                               replay=replay, frame=keep_frame, window=window)
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
                       pv.min_wait, pv.skewed_links, pv.checks, starts=pv.starts, duplicates=duplicates,
                       flow=pv.flow), summaries


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
            batch, _ = _partition_batch(scratch, p)
            if batch is None:
                return {}
            table = build_trace_table(batch, matches, upstream)
        return propose(table, thresholds, window, k)
    except Exception as err:  # a partition that fails names itself; the run fails
        raise SourceError(f"partition {p}: examples failed: {type(err).__name__}: {err}") from err


def pass_five(scratch: str, p: int, matches: Sequence[StageMatch], upstream: Mapping[str, str | None],
              targets: Sequence[Target]) -> list[Counts]:
    """Partition ``p``'s attribute counts of each explained target's tail and rest, against
    the global thresholds (:func:`~mapper.analysis.explain.merge.partition_counts`): its
    trace table built again from its spilled rows (the spans are what the counts read)."""
    try:
        batch, _ = _partition_batch(scratch, p)
        if batch is None:
            return [Counts(values={}) for _ in targets]
        return partition_counts(build_trace_table(batch, matches, upstream), targets)
    except Exception as err:  # a partition that fails names itself; the run fails
        raise SourceError(f"partition {p}: explanation counts failed: {type(err).__name__}: {err}") from err


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


