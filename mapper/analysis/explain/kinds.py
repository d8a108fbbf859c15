"""Every kind of explanation in one type: what ``report.json`` ``explanations`` and
``latmap explain`` list, told apart by ``kind``.

``attributes`` (:class:`~mapper.analysis.explain.model.Explanation`: the traced items' span and
resource attributes), ``slices`` (:class:`~mapper.analysis.slices.SlicesExplanation`: a metric
histogram split by its labels) and ``critical_path``
(:class:`~mapper.analysis.critical_path.CriticalPathExplanation`: the branch of a fan-out that
decided each tail item's lead time). Kept apart from :mod:`.model` so that the attributes
explanation does not import the trace table the critical path reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mapper.analysis.critical_path import CriticalPathExplanation
from mapper.analysis.explain.model import Explanation
from mapper.analysis.slices import SlicesExplanation

AnyExplanation = Explanation | SlicesExplanation | CriticalPathExplanation


def has_join(upstreams: Mapping[str, Sequence[str]]) -> bool:
    """Whether a stage waits for several upstreams (a fan-out joined again): what a critical
    path needs to mean more than the whole chain."""
    return any(len(u) > 1 for u in upstreams.values())
