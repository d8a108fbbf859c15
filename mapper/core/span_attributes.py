"""Span and resource attributes of a :class:`~mapper.core.spans.SpanBatch`: every one of them,
sparse, dictionary-encoded, resources once each, parsed only when first asked for.

Kept apart from :mod:`mapper.core.spans` (which re-exports it) because its internals are the
memory-efficient form and a decoder's lazy one; the contract is :class:`SpanAttributes`'
methods: ``keys()``, ``column(key, scope, n)``, ``take_rows``, ``concat``, ``sparse()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: :attr:`SpanAttributes.scope` values: an attribute of the span, or of its resource.
SCOPE_SPAN, SCOPE_RESOURCE = 0, 1
SCOPE_NAMES = ("span", "resource")
#: Longest attribute value kept, in characters (longer ones are cut), and most attributes kept
#: per span and per resource (the rest are counted in :attr:`SpanAttributes.dropped`).
MAX_ATTRIBUTE_CHARS = 256
MAX_ATTRIBUTES = 64


@dataclass(frozen=True, eq=False)
class SparseAttributes:
    """Span attributes, parsed: one row per (span, attribute), ordered by ``row``; ``key`` and
    ``value`` are int32 codes into ``names`` and ``values`` (dictionary encoding: a million
    spans carry a few dozen keys and mostly repeated values). ``dropped``: per span, the
    attributes past :data:`MAX_ATTRIBUTES` left out."""

    row: np.ndarray
    key: np.ndarray
    value: np.ndarray
    names: np.ndarray
    values: np.ndarray
    dropped: np.ndarray

    @classmethod
    def empty(cls, n: int) -> SparseAttributes:
        return cls(np.array([], np.int64), np.array([], np.int32), np.array([], np.int32),
                   np.array([], object), np.array([], object), np.zeros(n, np.int32))


#: Parses raw span attributes (``raw[i]``: the bytes or text a decoder kept for span i, None:
#: none) into :class:`SparseAttributes`; given by the decoder that kept them (core cannot parse).
RawParser = Callable[[np.ndarray], SparseAttributes]


class SpanAttributes:
    """Every attribute of a batch's spans and of their resources (sparse: most spans carry few
    of all the keys there are). What ``latmap explain`` compares the slow items with the rest
    on; never in a report unless asked (values may be PII).

    A value is text whatever the wire format: a number as its shortest repr, a bool as
    ``true``/``false``, bytes as base64, an array or map as compact JSON; values longer than
    :data:`MAX_ATTRIBUTE_CHARS` are cut, and at most :data:`MAX_ATTRIBUTES` are kept per span
    and per resource (:attr:`dropped` counts the rest).

    Memory: resource attributes are held once per resource (``resource``: each span's index
    into ``resources``, -1 where unknown), span attributes dictionary-encoded
    (:class:`SparseAttributes`). A decoder may hand over the span attributes *raw* (the bytes
    it received, one object per span, and the ``parse`` that reads them): they are parsed on
    first use, so ingest, which only stores them, never pays for parsing.
    """

    __slots__ = ("_n", "_parse", "_raw", "_sparse", "resource", "resource_dropped", "resources")

    def __init__(self, n: int, *, resource: np.ndarray | None = None, resources: Sequence[Mapping[str, str]] = (),
                 sparse: SparseAttributes | None = None, raw: np.ndarray | None = None,
                 parse: RawParser | None = None, resource_dropped: Sequence[int] | np.ndarray | None = None) -> None:
        self._n = int(n)
        self.resource = (np.full(n, -1, np.int32) if resource is None else np.asarray(resource, dtype=np.int32))
        self.resources: tuple[Mapping[str, str], ...] = tuple(resources)
        self.resource_dropped = np.zeros(len(self.resources), np.int32) if resource_dropped is None else np.asarray(
            resource_dropped, np.int32).reshape(len(self.resources))
        if self.resource.shape != (n,):
            raise ValueError(f"resource index has shape {self.resource.shape}, expected ({n},)")
        if raw is not None and (parse is None or len(raw) != n):
            raise ValueError("raw attributes need a parser and one entry per span")
        self._raw, self._parse = raw, parse
        self._sparse = sparse if sparse is not None or raw is not None else SparseAttributes.empty(n)

    @property
    def n(self) -> int:
        """The spans of the batch these are the attributes of."""
        return self._n

    @property
    def raw(self) -> np.ndarray | None:
        """The span attributes as the decoder kept them (None once parsed or when built parsed)."""
        return self._raw if self._sparse is None else None

    @property
    def parser(self) -> RawParser | None:
        return self._parse

    @property
    def span(self) -> SparseAttributes:
        """The span attributes, parsed (now, if they were raw)."""
        if self._sparse is None:
            assert self._parse is not None
            assert self._raw is not None
            self._sparse = self._parse(self._raw)
            self._raw = None
        return self._sparse

    @property
    def dropped(self) -> np.ndarray:
        """Per span, the span and resource attributes left out past :data:`MAX_ATTRIBUTES`."""
        extra = np.array([*self.resource_dropped.tolist(), 0], dtype=np.int32)
        return self.span.dropped + extra[self.resource]

    def __len__(self) -> int:
        """(span, attribute) pairs, resource attributes counted once per span."""
        sizes = np.array([len(r) for r in self.resources] + [0], dtype=np.int64)
        return int(self.span.row.size + sizes[self.resource].sum())

    @classmethod
    def empty(cls, n: int = 0) -> SpanAttributes:
        return cls(n)

    @classmethod
    def from_sparse(cls, row: np.ndarray, scope: np.ndarray, key: np.ndarray, value: np.ndarray,
                    n: int) -> SpanAttributes:
        """From one row per (span, scope, key, value) (what :meth:`sparse` gives back)."""
        row, scope = np.asarray(row, np.int64), np.asarray(scope, np.int8)
        key, value = np.asarray(key, object), np.asarray(value, object)
        res = scope == SCOPE_RESOURCE
        per_span: list[dict[str, str]] = [{} for _ in range(n)]
        for r, k, v in zip(row[res].tolist(), key[res].tolist(), value[res].tolist(), strict=True):
            per_span[r][k] = v
        distinct: dict[tuple[tuple[str, str], ...], int] = {}
        index = np.array([distinct.setdefault(tuple(sorted(d.items())), len(distinct)) for d in per_span],
                         dtype=np.int32).reshape(n)
        resources = [dict(items) for items in distinct]
        sp = ~res
        return cls(n, resource=index, resources=resources, sparse=encode_sparse(row[sp], key[sp], value[sp], n))

    def keys(self) -> list[tuple[str, str]]:
        """Every ``(scope name, key)`` present, sorted."""
        sp = self.span
        pairs = {("span", str(k)) for k in sp.names[np.unique(sp.key)].tolist()}
        used = np.unique(self.resource[self.resource >= 0])
        pairs |= {("resource", k) for i in used.tolist() for k in self.resources[i]}
        return sorted(pairs)

    def column(self, key: str, scope: str, n: int | None = None) -> np.ndarray:
        """The values of ``key`` (in ``scope``: ``span`` or ``resource``) for the batch's spans:
        an object array, None where a span lacks it (the last value if repeated)."""
        n = self._n if n is None else n
        out = np.full(n, None, dtype=object)
        if scope == "resource":
            values = np.array([r.get(key) for r in self.resources] + [None],
                              dtype=object)
            out[:] = values[self.resource]
            return out
        sp = self.span
        codes = np.flatnonzero(sp.names == key)
        if codes.size:
            hit = np.isin(sp.key, codes)
            out[sp.row[hit]] = sp.values[sp.value[hit]]
        return out

    def sparse(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One row per (span, attribute): row, scope, key, value (object arrays of text)."""
        sp = self.span
        rows, scopes = [sp.row], [np.zeros(sp.row.size, np.int8)]
        keys, values = [sp.names[sp.key]], [sp.values[sp.value]]
        for i, res in enumerate(self.resources):
            items = res
            at = np.flatnonzero(self.resource == i)
            if not items or not at.size:
                continue
            rows.append(np.repeat(at, len(items)))
            scopes.append(np.full(at.size * len(items), SCOPE_RESOURCE, np.int8))
            keys.append(np.tile(np.array(list(items), dtype=object), at.size))
            values.append(np.tile(np.array(list(items.values()), dtype=object), at.size))
        row = np.concatenate(rows)
        order = np.argsort(row, kind="stable")
        return (row[order], np.concatenate(scopes)[order], np.concatenate(keys).astype(object)[order],
                np.concatenate(values).astype(object)[order])

    def take_rows(self, index: np.ndarray, n: int | None = None) -> SpanAttributes:
        """The attributes of the batch rows ``index`` (integer or boolean), renumbered."""
        idx = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index, dtype=np.int64)
        resource = self.resource[idx]
        if self._sparse is None:
            assert self._raw is not None
            return SpanAttributes(idx.size, resource=resource, resources=self.resources, raw=self._raw[idx],
                                  parse=self._parse, resource_dropped=self.resource_dropped)
        sp = self._sparse
        starts = np.searchsorted(sp.row, np.arange(self._n + 1))
        per = (starts[1:] - starts[:-1])[idx]
        new_row = np.repeat(np.arange(idx.size), per)
        first = np.repeat(starts[:-1][idx], per)
        at = first + np.arange(new_row.size) - np.repeat(np.cumsum(per) - per, per)
        taken = SparseAttributes(new_row, sp.key[at], sp.value[at], sp.names, sp.values, sp.dropped[idx])
        return SpanAttributes(idx.size, resource=resource, resources=self.resources, sparse=taken,
                              resource_dropped=self.resource_dropped)

    @staticmethod
    def concat(parts: Sequence[SpanAttributes | None], sizes: Sequence[int]) -> SpanAttributes:
        """The attributes of concatenated batches of ``sizes`` rows (None: not read: unknown)."""
        n = int(sum(sizes))
        resources: list[Mapping[str, str]] = []
        dropped: list[int] = []
        index = []
        for a, size in zip(parts, sizes, strict=True):
            if a is None:
                index.append(np.full(size, -1, np.int32))
                continue
            index.append(np.where(a.resource >= 0, a.resource + len(resources), -1).astype(np.int32))
            resources += a.resources
            dropped += a.resource_dropped.tolist()
        resource = np.concatenate(index) if index else np.array([], np.int32)
        parsers = {a.parser for a in parts if a is not None and a.raw is not None}
        if len(parsers) == 1 and all(a is None or a.raw is not None for a in parts):
            raw = np.concatenate([a.raw if a is not None and a.raw is not None else np.full(size, None, object)
                                  for a, size in zip(parts, sizes, strict=True)]) if parts else np.array([], object)
            return SpanAttributes(n, resource=resource, resources=resources, raw=raw, parse=parsers.pop(),
                                  resource_dropped=dropped)
        return SpanAttributes(n, resource=resource, resources=resources, resource_dropped=dropped,
                              sparse=_concat_sparse([None if a is None else a.span for a in parts], sizes))


def encode_sparse(row: np.ndarray, key: np.ndarray, value: np.ndarray, n: int,
                  dropped: np.ndarray | None = None) -> SparseAttributes:
    """Dictionary-encode one row per (span, key, value) of text."""
    names, key_codes = np.unique(np.asarray(key, dtype=object).astype(str), return_inverse=True) if len(key) else (
        np.array([], object), np.array([], np.int64))
    values, value_codes = np.unique(np.asarray(value, dtype=object).astype(str), return_inverse=True) if len(
        value) else (np.array([], object), np.array([], np.int64))
    row = np.asarray(row, np.int64)
    order = np.argsort(row, kind="stable")
    return SparseAttributes(row[order], key_codes.astype(np.int32)[order], value_codes.astype(np.int32)[order],
                            names.astype(object), values.astype(object),
                            np.zeros(n, np.int32) if dropped is None else np.asarray(dropped, np.int32))


def _concat_sparse(parts: Sequence[SparseAttributes | None], sizes: Sequence[int]) -> SparseAttributes:
    """Concatenated sparse attributes, the dictionaries merged (each distinct key and value once)."""
    names: dict[str, int] = {}
    values: dict[str, int] = {}
    rows, keys, vals, dropped = [], [], [], []
    offset = 0
    for sp, size in zip(parts, sizes, strict=True):
        if sp is None:
            dropped.append(np.zeros(size, np.int32))
            offset += size
            continue
        kmap = np.array([names.setdefault(k, len(names)) for k in sp.names.tolist()], np.int32)
        vmap = np.array([values.setdefault(v, len(values)) for v in sp.values.tolist()], np.int32)
        rows.append(sp.row + offset)
        keys.append(kmap[sp.key] if kmap.size else sp.key)
        vals.append(vmap[sp.value] if vmap.size else sp.value)
        dropped.append(sp.dropped)
        offset += size

    def cat(arrays: list[np.ndarray], dt: Any) -> np.ndarray:
        return np.concatenate(arrays).astype(dt) if arrays else np.array([], dt)

    return SparseAttributes(cat(rows, np.int64), cat(keys, np.int32), cat(vals, np.int32),
                            np.array(list(names), dtype=object).reshape(-1),
                            np.array(list(values), dtype=object).reshape(-1), cat(dropped, np.int32))
