"""What a source reads for a stage's flow from metrics (issue 27): a counter's increase and a
gauge over the window. Raw figures, as read; :mod:`mapper.analysis.flow_metrics` turns them
into the stage's flow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from mapper.core.model import Check


@dataclass(frozen=True)
class CounterRead:
    """A counter's exact increase over the window, summed across its series (``None``: no
    series matched). ``seconds`` is the matching ``_sum``'s increase in seconds when the
    counter is a histogram's ``_count`` (the time the counted attempts took), else None.
    ``series`` is how many series matched."""

    total: float | None
    provenance: str
    checks: tuple[Check, ...] = ()
    seconds: float | None = None
    series: int = 0


@dataclass(frozen=True)
class GaugeRead:
    """A gauge over the window at a fixed step: at each step (unix seconds, in the window)
    the sum across its series (``values``) and the smallest single series (``minimum``: a
    negative series hides in a sum). Empty arrays: no series matched."""

    times: np.ndarray
    values: np.ndarray
    minimum: np.ndarray
    step: float
    provenance: str
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True)
class FlowReads:
    """Every flow metric the spec names, read for one map: per stage, what was read for its
    ``errors``, ``retries`` and ``inventory`` (a key the stage does not name is absent)."""

    errors: Mapping[str, CounterRead] = field(default_factory=dict)
    retries: Mapping[str, CounterRead] = field(default_factory=dict)
    inventory: Mapping[str, GaugeRead] = field(default_factory=dict)
