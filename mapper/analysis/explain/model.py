"""What an explanation of a tail is: plain frozen values the renderers read.

One :class:`Explanation` per (target, part, percentile) and ``kind``. This module's kind is
``attributes`` (span and resource attributes of traced items, :mod:`.attributes`); the
``slices`` kind (a metric histogram split by its labels) and ``critical_path`` kind (the
branch of a fan-out that decided each item's lead time) use the same value with their own
findings, so every explanation sits in one list (``report.json`` ``explanations``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mapper.analysis.examples import Example
from mapper.core.model import Check

#: :attr:`Explanation.kind` values.
KIND_ATTRIBUTES = "attributes"
KIND_SLICES = "slices"
KIND_CRITICAL_PATH = "critical_path"
#: :attr:`Explanation.contrast`: the tail against every other item, against the median band
#: (items between the 45th and 55th percentile), or against a baseline's tail.
CONTRASTS = ("rest", "median", "baseline")
#: The group of the items that lack an attribute, of the values beyond the N most common, of
#: numbers that are NaN or infinite, and of values that are not numbers in a numeric attribute.
MISSING, OTHER, NOT_FINITE, NOT_A_NUMBER = "(missing)", "(other)", "(not finite)", "(not a number)"


@dataclass(frozen=True)
class ValueCount:
    """Items of the tail and of the contrast with one value of one attribute: what a
    baseline keeps, and what partitions add up (counts merge by addition). ``stage`` is the
    stage whose span the value was read from; ``scope`` ``span``, ``resource`` or
    ``column`` (a span field latmap keeps as a column: name, status, kind)."""

    stage: str
    scope: str
    key: str
    value: str
    tail: int
    rest: int

    @property
    def attribute(self) -> tuple[str, str, str]:
        return (self.stage, self.scope, self.key)


@dataclass(frozen=True)
class Finding:
    """One value tested: its share of the tail and of the contrast, the lift (tail share
    over contrast share; None when the contrast has none), the one-sided p-value that it is
    over-represented in the tail (``test``: ``fisher`` or ``normal``), the Benjamini-Hochberg
    q-value over everything the explanation tested, and ``significant`` = q < alpha with a
    lift above 1. ``new``: absent from the baseline (with ``contrast: baseline``).
    ``examples``: the slowest tail items that carry it."""

    stage: str
    scope: str
    key: str
    value: str
    tail: int
    rest: int
    tail_share: float
    rest_share: float
    lift: float | None
    p_value: float
    q_value: float
    significant: bool
    test: str
    examples: tuple[Example, ...] = ()
    new: bool = False


@dataclass(frozen=True)
class Explanation:
    """Why the tail of ``part`` of ``target`` (a stage, or ``end_to_end`` for the lead time)
    at ``percentile`` is slow, by ``kind``.

    ``threshold``: the tail is the items at or beyond it (seconds: the lower bound of the
    percentile's interval, as the report prints it); None when the data cannot support the
    percentile (then nothing is tested and a check says why). ``tail_items`` and
    ``rest_items`` count the items compared (with ``contrast: baseline``, ``rest_items`` is
    the baseline's tail). ``tested`` values were tested; ``findings`` are the first
    ``max_findings`` of them, ranked by q-value then lift, ``more`` the others.
    ``left_out``: attributes not tested, per reason (``constant``, ``unique``,
    ``high-cardinality``, ``rare``, ``pii``), ``grouped``: attributes some of whose values
    were grouped (``other``, ``not-finite``, ``not-a-number``, ``numeric-bins``).
    ``counts``: every value's tail and contrast counts (a later run's baseline). ``value_of``
    says how an item with several spans at a stage gets its value.
    """

    kind: str
    target: str
    part: str
    percentile: float
    contrast: str
    threshold: float | None
    tail_items: int
    rest_items: int
    tested: int = 0
    alpha: float = 0.05
    findings: tuple[Finding, ...] = ()
    more: int = 0
    left_out: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    grouped: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    counts: tuple[ValueCount, ...] = ()
    value_of: str = "first span"
    versus: str | None = None
    checks: tuple[Check, ...] = ()

    @property
    def significant(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.significant)
