"""The ``traces`` source: spans from latmap's spool or from OTLP files, for one window.

A spool directory (written by ``latmap serve``) is read through its Parquet partitions and
write-ahead segments; anything else is read as OTLP files (JSON lines from the Collector's
``file`` exporter, OTLP JSON documents, protobuf). Spans are kept when they start inside the
window; duplicates (retried exports) are dropped and counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collectors.spans import SpanBatch
from mapper.errors import SourceError
from mapper.model import Window
from mapper.spec import SourceSpec


@dataclass(frozen=True)
class LoadedSpans:
    batch: SpanBatch
    set_aside: dict[str, int]  # reason -> spans not used
    origin: str
    notes: tuple[str, ...] = ()  # what else the reader has to say (a span limit reached ...)


def is_spool(path: Path) -> bool:
    """A spool holds write-ahead segments or hive partitions (``date=...``)."""
    from collectors import spool

    return path.is_dir() and bool(spool.looks_like_spool(path))


def load_spans(source: SourceSpec, window: Window, services: Sequence[str] = ()) -> LoadedSpans:
    """The source's spans that start inside ``window``, deduplicated.

    ``services`` narrows what a remote source (Datadog APM) is asked for; local files and the
    spool are read whole.
    """
    from collectors.otlp_codec import read_trace_files

    if source.kind == "datadog":
        from collectors.datadog import load_datadog_spans

        return load_datadog_spans(source, window, services)

    if not source.path:
        raise SourceError(f"{source.place}: traces source {source.name!r} has no path")
    path = Path(source.path)
    if not path.exists():
        raise SourceError(f"{source.place}: {path}: no such file or directory")
    start_ns, end_ns = int(window.start * 1e9), int(window.end * 1e9)
    set_aside: Counter[str] = Counter()
    spool = is_spool(path)
    if spool:
        from collectors.spool import scan_spool

        read = scan_spool(path, start_ns=start_ns, end_ns=end_ns)
        batch = read.batch
        if read.torn_records:
            set_aside["damaged spool records (torn by a crash)"] += read.torn_records
        origin = f"spool {path}"
    else:
        parts = []
        for decoded in read_trace_files(path):
            parts.append(decoded.batch)
            set_aside.update(decoded.rejected)
        batch = SpanBatch.concat(parts)
        origin = f"OTLP files {path}"
    # the spool's reader has deduplicated already
    return LoadedSpans(in_window(batch, window, set_aside, deduplicate=not spool), dict(set_aside), origin)


def in_window(batch: SpanBatch, window: Window, set_aside: Counter[str], deduplicate: bool = True) -> SpanBatch:
    """The spans that start inside ``window``, without duplicates (retried exports, pages
    that overlap), which are counted in ``set_aside``."""
    from collectors.otlp_codec import dedupe

    start_ns, end_ns = int(window.start * 1e9), int(window.end * 1e9)
    inside = (batch.start_ns > start_ns) & (batch.start_ns <= end_ns)
    if not inside.all():  # a copy of a million rows costs memory; skip it when nothing changes
        batch = batch.take(np.flatnonzero(inside))
    if deduplicate:
        batch, dups = dedupe(batch)
        if dups:
            set_aside["duplicate span"] += dups
    return batch
