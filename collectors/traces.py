"""The ``traces`` source: spans from latmap's spool or from OTLP files, for one window.

A spool directory (written by ``latmap serve``) is read through its Parquet partitions and
write-ahead segments; anything else is read as OTLP files (JSON lines from the Collector's
``file`` exporter, OTLP JSON documents, protobuf). Spans are kept when they start inside the
window; duplicates (retried exports) are dropped and counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from collectors.base import SourceBase
from collectors.datadog import load_datadog_spans
from collectors.otlp.codec import DUPLICATE_SPAN
from collectors.otlp.files import read_trace_files
from collectors.spool.store import QUARANTINE_DIR, WAL_DIR, looks_like_spool, scan_spool
from mapper.core.errors import SourceError
from mapper.core.model import Window
from mapper.core.source import Give
from mapper.core.spans import LoadedSpans, SpanBatch, in_window
from mapper.core.spec import SourceSpec
from mapper.core.spec.engine import is_url


def is_spool(path: Path) -> bool:
    """A spool holds write-ahead segments or hive partitions (``date=...``)."""
    return path.is_dir() and bool(looks_like_spool(path))


def load_spans(source: SourceSpec, window: Window, services: Sequence[str] = (),
               attributes: bool = False) -> LoadedSpans:
    """The source's spans that start inside ``window``, deduplicated.

    ``services`` narrows what a remote source (Datadog APM) is asked for; local files and the
    spool are read whole. ``attributes``: keep every span and resource attribute
    (:attr:`SpanBatch.attributes`, what ``latmap explain`` compares); without, they are let
    go as each record is decoded.
    """
    if source.kind == "datadog":
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
        # (start, end], as in_window
        read = scan_spool(path, start_ns=start_ns + 1, end_ns=end_ns, with_attributes=attributes)
        batch = read.batch
        if read.torn_records:
            set_aside["damaged spool records (torn by a crash)"] += read.torn_records
        if read.duplicates:  # retried exports, or a segment compacted but not yet removed
            set_aside[DUPLICATE_SPAN] += read.duplicates
        origin = f"spool {path}"
        damaged = (*read.damaged_segments, *(f"{WAL_DIR}/{QUARANTINE_DIR}/{n}" for n in read.quarantined))
    else:
        parts = []
        for decoded in read_trace_files(path, with_attributes=attributes):
            parts.append(decoded.batch)
            set_aside.update(decoded.rejected)
        batch = SpanBatch.concat(parts)
        origin = f"OTLP files {path}"
        damaged = ()
    # the spool's reader has deduplicated already
    return LoadedSpans(in_window(batch, window, set_aside, deduplicate=not spool), dict(set_aside), origin,
                       damaged=damaged)


class TraceFiles(SourceBase):
    """The ``traces`` source as a :class:`~mapper.core.source.Source`: OTLP files or a spool,
    read whole for a window (``spans``); a spool, or one given by URL, can also be analysed
    partition by partition (``partitioned`` names it)."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        path = spec.path or ""
        self._partitioned = bool(path) and (is_url(path) or is_spool(Path(path)))
        self.gives: frozenset[Give] = frozenset({"spans", "partitions"} if self._partitioned else {"spans"})

    def spans(self, window: Window, services: Sequence[str] = (), attributes: bool = False) -> LoadedSpans:
        return load_spans(self.spec, window, services, attributes)

    @property
    def partitioned(self) -> str | None:
        return self.spec.path if self._partitioned else None
