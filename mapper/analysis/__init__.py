"""Analysis: from measured distributions and span tables to the value stream's answers.

Data in, data out, no formatting: the latency map (``latency``), per-item trace tables
(``traces``), the service graph (``servicegraph``), segments (``segments``, with the time
slices in ``profiles`` and the event comparisons in ``events``), tail attribution, the baseline
comparison, the what-if future state, and the findings that gather them; ``partition`` and ``merge``
analyse a window partition by partition and merge exact percentiles. Imports the core
model only; the renderers (:mod:`mapper.render`) format what it returns.
"""

from typing import TYPE_CHECKING

from mapper.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from mapper.analysis import (
        attribution,
        baseline,
        buckets,
        budgets,
        events,
        examples,
        findings,
        items,
        latency,
        live,
        liveflow,
        livegroups,
        livehist,
        merge,
        partition,
        profiles,
        queueing,
        segments,
        servicegraph,
        traces,
        whatif,
    )

__all__ = [
    "attribution",
    "baseline",
    "buckets",
    "budgets",
    "events",
    "examples",
    "findings",
    "items",
    "latency",
    "live",
    "liveflow",
    "livegroups",
    "livehist",
    "merge",
    "partition",
    "profiles",
    "queueing",
    "segments",
    "servicegraph",
    "traces",
    "whatif",
]

__getattr__ = lazy_getattr(__name__, __all__)
