"""Each item's value of every attribute, grouped into a few values that can be tested.

An item's value of an attribute at a stage is the value on the **first span** (the earliest)
of the item at that stage: the span whose start the stage's wait ends at. Sources, per span:
the span and resource attributes (:class:`~mapper.core.spans.SpanAttributes`, when the
decoder kept them) and the fields latmap keeps as columns (span name, status, kind,
exceptions, ``service.instance.id``, the messaging and peer columns: the same keys as the
attributes they were read from, so a key read twice is used once).

Grouping (so that an explanation never has thousands of rows): at most ``max_values``
values per attribute, the others as ``(other)``; numbers with more distinct values than
that cut into quantile bins (NaN and infinities as ``(not finite)``, text in a mostly
numeric attribute as ``(not a number)``); items without the attribute as ``(missing)``.
Left out, and said so: attributes of one value (``constant``), of a value per item
(``unique``: ids), of more distinct values than half their items (``high-cardinality``:
user ids), on fewer than ``min_items`` items (``rare``), and keys that look like personal
data (``pii``: e-mail, user, password, token, ip ...) unless asked for.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd

from mapper.analysis.explain.model import MISSING, NOT_A_NUMBER, NOT_FINITE, OTHER
from mapper.analysis.items import expand_ranges
from mapper.core.spans import ATTRIBUTE_COLUMNS, SpanBatch

#: Key words (a key's parts split at ``.``, ``_``, ``-``) that mark a key as personal data.
PII_WORDS = frozenset({"email", "mail", "user", "username", "userid", "enduser", "password", "passwd", "pwd",
                       "secret", "token", "apikey", "auth", "authorization", "cookie", "session", "ip", "phone",
                       "ssn", "card", "iban", "ipaddress", "ipaddr", "remoteaddr", "forwarded"})
_SPLIT = re.compile(r"[._\-/ ]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_STATUS = np.array(["unset", "ok", "error"], dtype=object)
_KIND = np.array(["unspecified", "internal", "server", "client", "producer", "consumer"], dtype=object)
#: Share of an attribute's items whose values must be numbers for it to be binned as one.
NUMERIC_SHARE = 0.9


@dataclass(frozen=True)
class Options:
    """How an explanation groups and tests: ``max_values`` per attribute, ``bins`` for
    numbers, ``min_items`` carrying an attribute, ``include_pii``, the false discovery rate
    ``alpha``, ``max_findings`` listed and ``examples`` per finding."""

    max_values: int = 20
    bins: int = 5
    min_items: int = 5
    include_pii: bool = False
    alpha: float = 0.05
    max_findings: int = 20
    examples: int = 3


@dataclass(frozen=True)
class Raw:
    """One attribute as read: per item a code into ``uniques`` (-1: the item lacks it)."""

    stage: str
    scope: str
    key: str
    code: np.ndarray
    uniques: np.ndarray


@dataclass(frozen=True)
class Grouped:
    """One attribute ready to test: per item a group code into ``labels``; ``grouped``
    names what was grouped (``other``, ``not-finite``, ``not-a-number``, ``numeric-bins``)."""

    stage: str
    scope: str
    key: str
    code: np.ndarray
    labels: tuple[str, ...]
    grouped: tuple[str, ...] = ()


def looks_personal(key: str) -> bool:
    """Whether ``key`` names personal data (a word of :data:`PII_WORDS`, or an address of
    the client): its values are left out unless asked for."""
    parts = [w.lower() for part in _SPLIT.split(key) for w in _CAMEL.split(part) if w]
    # camelCase and split compounds too: ``customerEmail``, ``api_key``, ``IPAddress``
    words = {*parts, *(a + b for a, b in pairwise(parts))}
    return bool(words & PII_WORDS) or "client.address" in key.lower()


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object)


class _Coded:
    """A batch's attribute keys and values and its text columns, factorized once (on first
    use) for every stage and explanation that reads them: afterwards a stage's values are
    integer gathers, not hashing of text per item."""

    def __init__(self, batch: SpanBatch) -> None:
        self.batch = weakref.ref(batch)
        self.columns: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.attributes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def column(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self.columns:
            b = self.batch()
            assert b is not None  # only asked while the batch is read
            self.columns[name] = _codes(getattr(b, name))
        return self.columns[name]

    def attrs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """The span attributes: row offsets (``n + 1``), key codes, keys, value codes, values
        (None: no attributes). The decoder's dictionary encoding, parsed once."""
        b = self.batch()
        if self.attributes is None and b is not None and b.attributes is not None and len(b.attributes):
            sp = b.attributes.span
            offsets = np.r_[0, np.cumsum(np.bincount(sp.row, minlength=len(b)))]
            self.attributes = (offsets, sp.key.astype(np.int64), sp.names, sp.value.astype(np.int64), sp.values)
        return self.attributes


_CODED: weakref.WeakKeyDictionary[SpanBatch, _Coded] = weakref.WeakKeyDictionary()


def coded(batch: SpanBatch) -> _Coded:
    """``batch``'s factorized columns and attributes (made once, dropped with the batch)."""
    got = _CODED.get(batch)
    if got is None:
        got = _CODED[batch] = _Coded(batch)
    return got


def _ints(stage: str, scope: str, key: str, codes: np.ndarray, names: np.ndarray, ok: np.ndarray) -> Raw:
    """A column of small integer codes (status, kind) as it is: no text to factorize."""
    return Raw(stage, scope, key, np.where(ok, np.clip(codes, 0, names.size - 1), -1).astype(np.int64), names)


def read(batch: SpanBatch, rows: np.ndarray, stage: str) -> Iterator[Raw]:
    """Every attribute of the spans at ``rows`` (one batch row per item, -1: the item has
    no span at the stage), as per-item codes (integer gathers of :func:`coded`)."""
    ok = rows >= 0
    at = np.where(ok, rows, 0)
    seen: set[tuple[str, str]] = set()
    c = coded(batch)
    attrs = c.attrs()
    if attrs is not None:
        offsets, key_all, keys, val_all, vals = attrs
        items = np.flatnonzero(ok)
        lo = offsets[rows[items]]
        pos = expand_ranges(lo, offsets[rows[items] + 1] - lo)
        item = np.repeat(items, offsets[rows[items] + 1] - lo)
        group = key_all[pos]
        val_code = val_all[pos]
        order = np.argsort(group, kind="stable")
        # (no span of the stage carries a span attribute: no bound at all, not one at 0)
        bounds = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1]]) if order.size else order
        for b, e in zip(bounds.tolist(), [*bounds[1:].tolist(), order.size][:bounds.size], strict=True):
            key = str(keys[int(group[order[b]])])
            code = np.full(rows.size, -1, dtype=np.int64)
            code[item[order[b:e]]] = val_code[order[b:e]]
            seen.add(("span", key))
            yield Raw(stage, "span", key, code, vals)
    yield from _resource_attributes(batch, rows, ok, at, stage, seen)
    yield _ints(stage, "column", "span.status", batch.status[at], _STATUS, ok)
    yield _ints(stage, "column", "span.kind", batch.kind[at], _KIND, ok)
    exc = batch.exceptions[at]
    known = ok & (exc >= 0)
    if known.any():
        uniq, inv = np.unique(exc[known], return_inverse=True)
        code = np.full(rows.size, -1, dtype=np.int64)
        code[known] = inv
        yield Raw(stage, "column", "span.exceptions", code, uniq.astype(str).astype(object))
    columns = [("column", "span.name", "name"), ("resource", "service.instance.id", "instance"),
               *(("span", otel, col) for otel, col in ATTRIBUTE_COLUMNS.items())]
    for scope, key, name in columns:
        if (scope, key) in seen:
            continue
        all_codes, uniques = c.column(name)
        if not uniques.size:
            continue  # a column no span filled (the usual case for most of them)
        code = np.where(ok, all_codes[at], -1)
        if (code >= 0).any():
            yield Raw(stage, scope, key, code, uniques)


def _resource_attributes(batch: SpanBatch, rows: np.ndarray, ok: np.ndarray, at: np.ndarray, stage: str,
                         seen: set[tuple[str, str]]) -> Iterator[Raw]:
    """The resource attributes of the spans at ``rows``: held once per resource, so each
    key's per-item code is a gather through the spans' resource index."""
    a = batch.attributes
    if a is None or not a.resources:
        return
    res = np.where(ok, a.resource[at], -1)
    keys = sorted({k for r in a.resources for k in r})
    for key in keys:
        per_res, uniques = _codes(np.array([r.get(key) for r in a.resources], dtype=object))
        code = np.where(res >= 0, per_res[np.maximum(res, 0)], -1)
        if (code >= 0).any():
            seen.add(("resource", key))
            yield Raw(stage, "resource", key, code, uniques)


def group(raw: Raw, opts: Options) -> Grouped | str:
    """``raw`` grouped for testing (see the module docstring), or the reason it is left out."""
    if not opts.include_pii and looks_personal(raw.key):
        return "pii"
    present = raw.code >= 0
    n_present = int(present.sum())
    if n_present < opts.min_items:
        return "rare"
    counts = np.bincount(raw.code[present], minlength=raw.uniques.size)
    used = np.flatnonzero(counts)
    missing = raw.code.size - n_present
    if used.size == 1:
        return "constant" if not missing else _categorical(raw, used, counts, opts, ())
    if used.size <= opts.max_values:
        return _categorical(raw, used, counts, opts, ())
    nums = pd.to_numeric(pd.Series(raw.uniques[used]), errors="coerce").to_numpy(dtype=np.float64)
    text = np.array([str(u).strip().lower().lstrip("+-") == "nan" for u in raw.uniques[used]]) if np.isnan(
        nums).any() else np.zeros(used.size, bool)
    numeric = ~np.isnan(nums) | text
    if counts[used][numeric].sum() >= NUMERIC_SHARE * n_present:
        return _binned(raw, used, nums, numeric, opts)
    if used.size == n_present:
        return "unique"
    if used.size > n_present / 2:
        return "high-cardinality"
    return _categorical(raw, used, counts, opts, ("other",))


def _categorical(raw: Raw, used: np.ndarray, counts: np.ndarray, opts: Options, grouped: tuple[str, ...]) -> Grouped:
    """The ``max_values`` most common values as they are (ties by value), the rest as
    ``(other)``, a missing value as ``(missing)``."""
    labels = [str(u) for u in raw.uniques[used]]
    order = sorted(range(used.size), key=lambda i: (-int(counts[used[i]]), labels[i]))
    keep = order[:opts.max_values]
    lookup = np.full(raw.uniques.size + 1, -1, dtype=np.int64)  # last slot: missing
    out_labels = [labels[i] for i in keep]
    lookup[used[keep]] = np.arange(len(keep))
    if len(order) > len(keep):
        lookup[used[order[len(keep):]]] = len(out_labels)
        out_labels.append(OTHER)
    if (raw.code < 0).any():
        lookup[-1] = len(out_labels)
        out_labels.append(MISSING)
    return Grouped(raw.stage, raw.scope, raw.key, lookup[raw.code], tuple(out_labels), grouped)


def _binned(raw: Raw, used: np.ndarray, nums: np.ndarray, numeric: np.ndarray, opts: Options) -> Grouped:
    """Numbers cut at their quantiles into at most ``opts.bins`` bins ``[lo, hi)`` (the last
    closed), with ``(not finite)``, ``(not a number)`` and ``(missing)`` groups as needed."""
    value = np.full(raw.uniques.size + 1, np.nan)
    value[used] = nums
    kind = np.full(raw.uniques.size + 1, 3, dtype=np.int8)  # 0 finite, 1 not finite, 2 not a number, 3 missing
    finite_u = numeric & np.isfinite(nums)
    kind[used] = np.where(finite_u, 0, np.where(numeric, 1, 2))
    per_item = value[raw.code]
    item_kind = kind[raw.code]
    finite = per_item[item_kind == 0]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, opts.bins + 1))) if finite.size else np.array([0.0])
    n_bins = max(edges.size - 1, 1)
    labels = [f"[{edges[i]:.6g}, {edges[i + 1]:.6g})" for i in range(n_bins - 1)]
    labels.append(f"[{edges[n_bins - 1]:.6g}, {edges[-1]:.6g}]")
    code = np.clip(np.searchsorted(edges, np.nan_to_num(per_item), "right") - 1, 0, n_bins - 1)
    grouped = ["numeric-bins"]
    for k, label, reason in ((1, NOT_FINITE, "not-finite"), (2, NOT_A_NUMBER, "not-a-number"), (3, MISSING, None)):
        sel = item_kind == k
        if sel.any():
            code[sel] = len(labels)
            labels.append(label)
            if reason:
                grouped.append(reason)
    return Grouped(raw.stage, raw.scope, raw.key, code, tuple(labels), tuple(grouped))
