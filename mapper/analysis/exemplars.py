"""Exemplars as examples: for every histogram whose source keeps exemplars, those of the
window whose value lies in or beyond each percentile's bucket join that part's examples
(``source: exemplar``, one trace id each). Pure: the exemplars were read with the map's
other data (the app's ``gather``); a source that could not answer left its part out.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

from mapper.analysis.examples import MEDIAN, Examples, Threshold, from_exemplars
from mapper.analysis.latency import LatencyMap, example_thresholds
from mapper.core.model import Check
from mapper.core.source import ExemplarPoint

log = logging.getLogger(__name__)

#: One part's exemplars as read: the usable points and the checks counting the others.
ExemplarRead = tuple[Sequence[ExemplarPoint], Sequence[Check]]


def with_exemplars(lm: LatencyMap, read: Mapping[tuple[str, str], ExemplarRead]) -> LatencyMap:
    """``lm`` with the exemplars ``read`` per ``(stage, part)`` (in flow order) among its
    examples, and their checks among its checks (unchanged when the spec asks for no examples)."""
    k = lm.spec.examples.count
    if k <= 0:
        return lm
    thresholds = example_thresholds(lm.spec.percentiles, lm.stages, None)
    examples = lm.examples
    checks: list[Check] = []
    for (stage, part), (points, made_checks) in read.items():
        checks += [dataclasses.replace(c, stage=stage, part=part) for c in made_checks]
        mine: dict[tuple[str, str, float], Threshold] = {
            key: t for key, t in thresholds.items() if key[0] == stage and key[1] == part and key[2] != MEDIAN}
        found = from_exemplars(points, mine, k)
        for key, exs in sorted(found.items()):
            examples = (examples or Examples(k, {})).with_added(key, exs)
        log.debug("%s %s exemplars: %d, %d used", stage, part, len(points), sum(len(v) for v in found.values()))
    return dataclasses.replace(lm, examples=examples, checks=(*lm.checks, *checks))
