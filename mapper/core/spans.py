"""Spans as columns: the one in-memory form of trace data, whatever it was read from.

OTLP is decoded once, at ingest, into a :class:`SpanBatch` of numpy arrays; everything after
that (hops, per-trace lead time, percentiles) is array operations, never a Python loop per
span. The same columns are what the spool's Parquet files hold (see :data:`PARQUET_SCHEMA`).

Ids: a trace id is 16 bytes, kept as two big-endian uint64 halves (``trace_hi``,
``trace_lo``) so that sorting and grouping are numeric; span ids are one uint64; 0 means
"none" (no parent, no link).

Sampling: ``sampling_th`` is the OpenTelemetry probability-sampling rejection threshold of the
span's trace (the ``th`` of ``ot=`` in its W3C ``tracestate``: 56 bits, so an int64 holds it),
or one of :data:`TH_UNKNOWN` (no ``th``: sampling unknown, the item counts 1) and
:data:`TH_NOT_SAMPLED` (the span's W3C ``sampled`` flag is explicitly clear). ``tail_policy`` is
the Collector's tail-sampling ``tailsampling.policy`` (an instrumentation-scope attribute), or
None. Both are :data:`SAMPLING_COLUMNS`: spools written before them lack them, and a missing
value means "unknown sampling", never "not sampled" (:mod:`mapper.analysis.sampling` weighs).

Links: a span has any number of links (a batch consumer links to every message it took).
The ``link_*`` columns keep the *first* one (the spool's original schema); every link is in
:attr:`SpanBatch.links`, one row per link (:class:`SpanLinks`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from mapper.core.span_attributes import (  # noqa: F401 - the contract's home is here too
    MAX_ATTRIBUTE_CHARS,
    MAX_ATTRIBUTES,
    SCOPE_NAMES,
    SCOPE_RESOURCE,
    SCOPE_SPAN,
    SpanAttributes,
    SparseAttributes,
)

#: OTLP SpanKind values.
KIND_UNSPECIFIED, KIND_INTERNAL, KIND_SERVER, KIND_CLIENT, KIND_PRODUCER, KIND_CONSUMER = range(6)

#: Span attributes copied into columns (others are not kept: matching needs only these).
ATTRIBUTE_COLUMNS: dict[str, str] = {
    "messaging.destination.name": "destination",
    "messaging.system": "messaging_system",
    "peer.service": "peer_service",
    "db.system": "db_system",
}

_COLUMNS: dict[str, Any] = {
    "trace_hi": np.uint64,
    "trace_lo": np.uint64,
    "span_id": np.uint64,
    "parent_id": np.uint64,
    "link_trace_hi": np.uint64,
    "link_trace_lo": np.uint64,
    "link_span_id": np.uint64,
    "start_ns": np.int64,
    "end_ns": np.int64,
    "kind": np.int8,
    "status": np.int8,
    "service": object,
    "name": object,
    "destination": object,
    "messaging_system": object,
    "peer_service": object,
    "db_system": object,
    "sampling_th": np.int64,
    "tail_policy": object,
    "instance": object,
    "exceptions": np.int16,
}

#: ``sampling_th`` when the span carries no ``th`` (or an invalid one): unknown, weight 1.
TH_UNKNOWN = -1
#: ``sampling_th`` when the span's W3C trace flags say "not sampled" (recorded and exported anyway).
TH_NOT_SAMPLED = -2
#: ``exceptions`` when the span's events were not read (a spool written before they were).
EXCEPTIONS_UNKNOWN = -1
#: Columns that spools written before them lack, with the value that means "unknown":
#: the sampling columns; ``instance`` (the resource's ``service.instance.id``: one worker of a
#: stage, what utilisation counts) and ``exceptions`` (the span's events named ``exception``).
OPTIONAL_COLUMNS: dict[str, Any] = {"sampling_th": TH_UNKNOWN, "tail_policy": None, "instance": None,
                                    "exceptions": EXCEPTIONS_UNKNOWN}
#: The sampling columns among them.
SAMPLING_COLUMNS: dict[str, Any] = {k: OPTIONAL_COLUMNS[k] for k in ("sampling_th", "tail_policy")}


@dataclass(frozen=True, eq=False)
class SpanLinks:
    """Every link of a batch's spans, one row per link, ordered by ``row``.

    ``row`` is the linking span's row in its :class:`SpanBatch`; ``trace_hi``, ``trace_lo``,
    ``span_id`` name the linked span. A link whose id was malformed on the wire is kept with
    zeros (so it can be counted, never silently lost); a real link is never all zeros.
    """

    row: np.ndarray
    trace_hi: np.ndarray
    trace_lo: np.ndarray
    span_id: np.ndarray

    def __post_init__(self) -> None:
        row = np.asarray(self.row, dtype=np.int64)
        order = np.argsort(row, kind="stable") if row.size and np.any(row[1:] < row[:-1]) else None
        for name, dt in (("row", np.int64), ("trace_hi", np.uint64), ("trace_lo", np.uint64), ("span_id", np.uint64)):
            col = np.asarray(getattr(self, name), dtype=dt)
            if col.shape != row.shape:
                raise ValueError(f"link column {name} has shape {col.shape}, expected {row.shape}")
            object.__setattr__(self, name, col if order is None else col[order])

    def __len__(self) -> int:
        return int(self.row.size)

    @classmethod
    def empty(cls) -> SpanLinks:
        return cls(*(np.array([], dtype=dt) for dt in (np.int64, np.uint64, np.uint64, np.uint64)))

    @classmethod
    def first_of(cls, link_trace_hi: np.ndarray, link_trace_lo: np.ndarray, link_span_id: np.ndarray) -> SpanLinks:
        """The links the ``link_*`` columns name (first links only: spools of the old schema)."""
        rows = np.flatnonzero(np.asarray(link_span_id) != 0)
        return cls(rows, np.asarray(link_trace_hi)[rows], np.asarray(link_trace_lo)[rows],
                   np.asarray(link_span_id)[rows])

    def counts(self, n: int) -> np.ndarray:
        """Links per span of a batch of ``n`` rows."""
        return np.bincount(self.row, minlength=n)

    def take_rows(self, index: np.ndarray, n: int) -> SpanLinks:
        """The links of the batch rows ``index`` (integer or boolean, of a batch of ``n``),
        renumbered to the new rows. A row taken twice keeps its links once per copy."""
        idx = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index, dtype=np.int64)
        if self.row.size == 0:
            return SpanLinks.empty()
        starts = np.searchsorted(self.row, np.arange(n + 1))
        per = (starts[1:] - starts[:-1])[idx]
        if not per.any():
            return SpanLinks.empty()
        new_row = np.repeat(np.arange(idx.size), per)
        # positions of the taken rows' links: each row's first link + 0..count-1
        first = np.repeat(starts[:-1][idx], per)
        offset = np.arange(new_row.size) - np.repeat(np.cumsum(per) - per, per)
        at = first + offset
        return SpanLinks(new_row, self.trace_hi[at], self.trace_lo[at], self.span_id[at])

@dataclass(frozen=True, eq=False)
class SpanBatch:
    """Equal-length columns, one row per span. String columns hold ``str`` or ``None``.

    ``link_*`` is the span's first link (async hand-over when there is no parent);
    ``links`` holds every link (None when built: derived from the ``link_*`` columns).
    """

    trace_hi: np.ndarray
    trace_lo: np.ndarray
    span_id: np.ndarray
    parent_id: np.ndarray
    link_trace_hi: np.ndarray
    link_trace_lo: np.ndarray
    link_span_id: np.ndarray
    start_ns: np.ndarray
    end_ns: np.ndarray
    kind: np.ndarray
    status: np.ndarray
    service: np.ndarray
    name: np.ndarray
    destination: np.ndarray
    messaging_system: np.ndarray
    peer_service: np.ndarray
    db_system: np.ndarray
    # None when built: unknown for every span (set to an array in __post_init__)
    sampling_th: np.ndarray = None  # type: ignore[assignment]
    tail_policy: np.ndarray = None  # type: ignore[assignment]
    instance: np.ndarray = None  # type: ignore[assignment]
    exceptions: np.ndarray = None  # type: ignore[assignment]
    links: SpanLinks | None = None
    #: Every span and resource attribute as read (None: not read; see :class:`SpanAttributes`).
    attributes: SpanAttributes | None = None

    def __post_init__(self) -> None:
        n = len(self.trace_hi)
        for f in fields(self):
            if f.name in ("links", "attributes"):
                continue
            value = getattr(self, f.name)
            if value is None:  # an optional column not given: unknown for every span
                value = np.full(n, OPTIONAL_COLUMNS[f.name], dtype=_COLUMNS[f.name])
            col = np.asarray(value, dtype=_COLUMNS[f.name])
            if col.shape != (n,):
                raise ValueError(f"column {f.name} has shape {col.shape}, expected ({n},)")
            object.__setattr__(self, f.name, col)
        if self.links is None:
            object.__setattr__(self, "links", SpanLinks.first_of(self.link_trace_hi, self.link_trace_lo,
                                                                 self.link_span_id))
        elif self.links.row.size and (self.links.row[-1] >= n or self.links.row[0] < 0):
            raise ValueError(f"links name rows outside the batch of {n} spans")
        if self.attributes is not None and self.attributes.n != n:
            raise ValueError(f"attributes of {self.attributes.n} spans for a batch of {n}")

    @property
    def all_links(self) -> SpanLinks:
        """Every link (never None after construction)."""
        assert self.links is not None  # set in __post_init__
        return self.links

    def __len__(self) -> int:
        return int(self.trace_hi.size)

    @classmethod
    def empty(cls) -> SpanBatch:
        empty: dict[str, Any] = {name: np.array([], dtype=dt) for name, dt in _COLUMNS.items()}
        return cls(**empty)

    @classmethod
    def from_columns(cls, columns: dict[str, Any], links: SpanLinks | None = None,
                     attributes: SpanAttributes | None = None) -> SpanBatch:
        """Build from a mapping of column name to sequence; missing string columns are None.
        ``links``: every link (default: the ``link_*`` columns' first links)."""
        n = len(columns["trace_hi"])
        full = {}
        for name, dt in _COLUMNS.items():
            if name in columns:
                full[name] = np.asarray(columns[name], dtype=dt)
            elif name in OPTIONAL_COLUMNS:
                full[name] = np.full(n, OPTIONAL_COLUMNS[name], dtype=dt)
            elif dt is object:
                full[name] = np.full(n, None, dtype=object)
            else:
                full[name] = np.zeros(n, dtype=dt)
        return cls(**full, links=links, attributes=attributes)

    def columns(self) -> dict[str, np.ndarray]:
        """The equal-length span columns (``links`` is not one: see :attr:`all_links`)."""
        return {name: getattr(self, name) for name in _COLUMNS}

    def take(self, index: np.ndarray) -> SpanBatch:
        """The rows at ``index`` (an integer or boolean array), with their links."""
        attrs = None if self.attributes is None else self.attributes.take_rows(index, len(self))
        return SpanBatch(**{k: v[index] for k, v in self.columns().items()},
                         links=self.all_links.take_rows(index, len(self)), attributes=attrs)

    @staticmethod
    def concat(batches: list[SpanBatch]) -> SpanBatch:
        if not batches:
            return SpanBatch.empty()
        offsets = np.cumsum([0] + [len(b) for b in batches])
        links = SpanLinks(*(np.concatenate([getattr(b.all_links, name) + (off if name == "row" else 0)
                                            for b, off in zip(batches, offsets, strict=False)])
                            for name in ("row", "trace_hi", "trace_lo", "span_id")))
        attrs = (SpanAttributes.concat([b.attributes for b in batches], [len(b) for b in batches])
                 if any(b.attributes is not None for b in batches) else None)
        return SpanBatch(**{name: np.concatenate([getattr(b, name) for b in batches])
                            for name in _COLUMNS}, links=links, attributes=attrs)


def split_trace_id(raw: bytes) -> tuple[int, int]:
    """A 16-byte trace id as (hi, lo) unsigned 64-bit integers (big-endian)."""
    return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:16], "big")


def span_id_int(raw: bytes) -> int:
    """An 8-byte span id as an unsigned 64-bit integer (big-endian); b"" is 0 (none)."""
    return int.from_bytes(raw, "big") if raw else 0


def trace_id_hex(hi: int, lo: int) -> str:
    return f"{int(hi):016x}{int(lo):016x}"


#: The spool columns holding :attr:`SpanBatch.attributes` (absent or null in spools written
#: before them: attributes unknown): each span's attributes as the decoder kept them (OTLP
#: protobuf span bytes, or JSON text), and its resource's attributes as a JSON
#: ``[{key: text}, left out]``, dictionary-encoded (one entry per resource, not per span).
ATTRIBUTES_RAW, ATTRIBUTES_JSON, RESOURCE_ATTRIBUTES = "attributes_raw", "attributes_json", "resource_attributes"
ATTRIBUTE_FIELDS = (ATTRIBUTES_RAW, ATTRIBUTES_JSON, RESOURCE_ATTRIBUTES)


def parquet_schema(attributes: bool = False) -> Any:
    """The spool's Parquet schema: one row per span, the columns of :class:`SpanBatch`;
    ``attributes``: with :data:`ATTRIBUTE_FIELDS` (what is written; readers skip them unless asked)."""
    import pyarrow as pa

    types = {np.uint64: pa.uint64(), np.int64: pa.int64(), np.int16: pa.int16(), np.int8: pa.int8(),
             object: pa.string()}
    extra = [(ATTRIBUTES_RAW, pa.binary()), (ATTRIBUTES_JSON, pa.string()),
             (RESOURCE_ATTRIBUTES, pa.dictionary(pa.int32(), pa.string()))] if attributes else []
    return pa.schema([*((name, types[dt]) for name, dt in _COLUMNS.items()), (LINKS_COLUMN, links_type()),
                      *extra])


def first_rows(hi: np.ndarray, lo: np.ndarray, span: np.ndarray) -> np.ndarray | None:
    """Indices (ascending) of the first row of each (hi, lo, span) key; None if all are unique."""
    n = hi.size
    if n < 2:
        return None
    ordered = np.sort(span)
    if not (ordered[1:] == ordered[:-1]).any():
        return None  # span ids alone are distinct (the usual case: one sort, no lexsort)
    order = np.lexsort((span, lo, hi))  # stable: within a key, rows stay in input order
    h, lo_, s = hi[order], lo[order], span[order]
    first = np.ones(n, dtype=bool)
    first[1:] = (h[1:] != h[:-1]) | (lo_[1:] != lo_[:-1]) | (s[1:] != s[:-1])
    if first.all():
        return None
    return np.sort(order[first])


#: The reason a repeated span (a retried export) is set aside, in every spans-set-aside count.
DUPLICATE_SPAN = "duplicate span"


def dedupe(batch: SpanBatch) -> tuple[SpanBatch, int]:
    """``batch`` without repeated (trace id, span id) rows, and how many were removed.

    The first copy of a span is kept and the order of the rows is kept. Use it across batches
    (``dedupe(SpanBatch.concat(...))``) when retried exports may land in different requests.
    """
    keep = first_rows(batch.trace_hi, batch.trace_lo, batch.span_id)
    if keep is None:
        return batch, 0
    return batch.take(keep), len(batch) - int(keep.size)


@dataclass(frozen=True)
class LoadedSpans:
    batch: SpanBatch
    set_aside: dict[str, int]  # reason -> spans not used
    origin: str
    notes: tuple[str, ...] = ()  # what else the reader has to say (a span limit reached ...)
    damaged: tuple[str, ...] = ()  # files skipped whole, unreadable (a damaged spool segment)


def in_window(batch: SpanBatch, window: Any, set_aside: Counter[str], deduplicate: bool = True) -> SpanBatch:
    """The spans that start inside ``window``, without duplicates (retried exports, pages
    that overlap), which are counted in ``set_aside``."""
    start_ns, end_ns = int(window.start * 1e9), int(window.end * 1e9)
    inside = (batch.start_ns > start_ns) & (batch.start_ns <= end_ns)
    if not inside.all():  # a copy of a million rows costs memory; skip it when nothing changes
        batch = batch.take(np.flatnonzero(inside))
    if deduplicate:
        batch, dups = dedupe(batch)
        if dups:
            set_aside["duplicate span"] += dups
    return batch


#: The spool column holding every link of a span (absent or null in spools of the old schema).
LINKS_COLUMN = "links"


def links_type() -> Any:
    """``list<struct<trace_hi: uint64, trace_lo: uint64, span_id: uint64>>``: a span's links."""
    import pyarrow as pa

    return pa.list_(pa.struct([("trace_hi", pa.uint64()), ("trace_lo", pa.uint64()), ("span_id", pa.uint64())]))
