"""Why the tail is slow: what sets the slow items apart.

``model`` (the :class:`Explanation` every kind shares), ``attributes`` (each item's value of
every span and resource attribute, grouped), ``stats`` (Fisher's exact test and the
Benjamini-Hochberg correction), ``compare`` (the tail against the rest, or against a
baseline's tail). Other kinds of explanation (``slices`` of a metric histogram by its
labels, the ``critical_path`` of a fan-out) return the same :class:`Explanation`.
"""

from mapper.analysis.explain.attributes import Options
from mapper.analysis.explain.compare import against, explain, not_explained
from mapper.analysis.explain.model import (
    CONTRASTS,
    KIND_ATTRIBUTES,
    KIND_CRITICAL_PATH,
    KIND_SLICES,
    Explanation,
    Finding,
    ValueCount,
)

__all__ = ["CONTRASTS", "KIND_ATTRIBUTES", "KIND_CRITICAL_PATH", "KIND_SLICES", "Explanation", "Finding", "Options",
           "ValueCount", "against", "explain", "not_explained"]
