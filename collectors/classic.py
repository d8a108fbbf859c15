"""Classic histogram buckets from an untrusted answer: checked first, then counted.

The ``(le, cumulative count)`` pairs come from a Prometheus answer or a ``/metrics`` page,
so anything can be in them. What each kind of bad bucket becomes (never a traceback, never
a percentile that looks healthy):

==========================================  ====================================  ===========
the input                                   check (code)                          number
==========================================  ====================================  ===========
``le`` missing                              ``missing-le`` (error)                none
``le`` not a number, NaN, or a finite       ``invalid-le`` (error)                none
spelling that overflows (``"1e400"``,
which would be read as a second +Inf)
a count NaN or infinite                     ``invalid-bucket-count`` (error)      none
a count below zero                          ``negative-bucket-count`` (error)     none
counts above 2**53 (floats stop counting    ``count-overflow`` (error)            none
whole observations there; ``1e308``)
observations at or below a negative bound   ``negative-observations`` (error)     none
(``le="-Inf"`` or ``le="-0.5"`` with a
count): a latency cannot be negative
no ``le="+Inf"`` bucket                     ``missing-inf-bucket`` (error)        none
one ``le`` twice in one series              ``duplicate-le`` (error)              none
(``duplicates="refuse"``: one exposition)
cumulative counts that decrease with ``le``  ``non-monotonic-buckets`` (warning)   made monotone
==========================================  ====================================  ===========

Negative bounds that hold no observation say nothing and are dropped, so the lowest bucket
still starts at zero. Series that differ only in the spelling of ``le`` (``"1"`` and
``"1.0"``, as Prometheus 3 re-spells them) are different series over time and are added.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np

from mapper.core.distribution import HistogramDistribution, non_monotonic
from mapper.core.model import Check
from mapper.core.redact import remote_text

#: Above this a float no longer holds every whole number, so a count is not a count.
MAX_EXACT_COUNT = 2.0 ** 53
_INF_SPELLINGS = frozenset({"inf", "infinity"})

Bucket = tuple[Mapping[str, str], float]


def _series(labels: Mapping[str, str]) -> str:
    """The series without ``le``, as ``{a="b"}``, quoted for a one-line message."""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k not in ("le", "__name__"))
    return remote_text("{" + inner + "}", 120)


def parse_bound(text: str) -> float | None:
    """An ``le`` label's value, or None when it is no usable bound (not a number, NaN, or a
    finite spelling that overflows to infinity)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    if math.isnan(value):
        return None
    if math.isinf(value) and text.strip().lower().lstrip("+-") not in _INF_SPELLINGS:
        return None
    return value


def _refuse(code: str, where: str, message: str) -> tuple[None, list[Check]]:
    return None, [Check("error", code, f"{where}: {message}; no percentile is made from it")]


def checked_histogram(
    buckets: Iterable[Bucket],
    scale: float,
    where: str,
    total_sum: float | None = None,
    duplicates: Literal["add", "refuse"] = "add",
) -> tuple[HistogramDistribution | None, list[Check]]:
    """The distribution of ``(series labels with le, cumulative count)`` pairs, in seconds
    (``scale`` converts the unit), with the checks the table above lists. ``None`` with an
    error check when the buckets cannot make an honest histogram; ``(None, [])`` when there
    are no buckets at all."""
    merged: dict[float, float] = {}
    seen: set[tuple[str, float]] = set()
    for labels, value in buckets:
        le = labels.get("le")
        if le is None:
            return _refuse("missing-le", where, f"_bucket series {_series(labels)} has no 'le' label")
        bound = parse_bound(le)
        if bound is None:
            return _refuse("invalid-le", where,
                           f"_bucket series {_series(labels)} has le={remote_text(repr(le), 40)}, not a bucket bound")
        if not math.isfinite(value):
            return _refuse("invalid-bucket-count", where,
                           f"bucket le={remote_text(le, 40)} of {_series(labels)} counts {value!r}")
        if value < 0:
            return _refuse("negative-bucket-count", where,
                           f"bucket le={remote_text(le, 40)} of {_series(labels)} counts {value:g} "
                           "(an increase of a counter cannot be negative)")
        key = (_series(labels), bound)
        if duplicates == "refuse" and key in seen:
            return _refuse("duplicate-le", where, f"series {key[0]} has the bound le={bound:g} twice")
        seen.add(key)
        merged[bound] = merged.get(bound, 0.0) + value
    if not merged:
        return None, []
    if max(merged.values()) > MAX_EXACT_COUNT:
        return _refuse("count-overflow", where,
                       f"a bucket counts {max(merged.values()):.3g} observations, beyond what a float counts exactly "
                       f"({MAX_EXACT_COUNT:.3g}); the exporter's counters are broken")
    if math.inf not in merged:
        return _refuse("missing-inf-bucket", where, "histogram has no le=\"+Inf\" bucket; cannot count it")
    below = max((c for b, c in merged.items() if b < 0), default=0.0)
    if below > 0:
        lowest = min(b for b, c in merged.items() if b < 0 and c > 0)
        return _refuse("negative-observations", where,
                       f"{below:.0f} observation(s) at or below le={lowest:g}; a latency cannot be negative "
                       "(a clock stepped back, or this is not a latency)")
    bounds = sorted(b for b in merged if b >= 0)
    cumulative = [merged[b] for b in bounds]
    checks: list[Check] = []
    if non_monotonic(cumulative):
        checks.append(Check(
            "warning", "non-monotonic-buckets",
            f"{where}: cumulative bucket counts decrease with le (scrape raced an update, "
            "or a counter reset in only some buckets); made monotone as Prometheus does"))
    upper = np.array(bounds, dtype=float)
    counts = np.diff(np.maximum.accumulate(np.array(cumulative, dtype=float)), prepend=0.0)
    lower = np.concatenate([[0.0], upper[:-1]])
    s = total_sum * scale if total_sum is not None else None
    return HistogramDistribution(lower * scale, upper * scale, counts, sum=s), checks
