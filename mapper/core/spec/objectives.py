"""The spec's objectives: ``target``'s percentile must stay at or below a threshold.

Objectives are written under a stage (``objectives: {p99: 250ms}``, the stage's hop) or at the
top level, keyed by ``end_to_end`` or a stage name; both parse to the same :class:`Objective`.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from mapper.core.durations import parse_duration
from mapper.core.quantiles import percentile_label
from mapper.core.spec._parse import Problems
from mapper.core.yamlload import LDict


@dataclass(frozen=True)
class Objective:
    """``target``'s ``q``-quantile must stay at or below ``threshold`` seconds.

    ``target`` is ``"end_to_end"`` or a stage name (the stage's hop: wait plus process).
    """

    target: str
    q: float
    threshold: float
    place: str

    @property
    def label(self) -> str:
        return f"{self.target} {percentile_label(self.q)}"


def parse_objectives(target: str, node: Any, line: int, where: str, p: Problems) -> list[Objective]:
    """``{p50: 20ms, p99: 250ms}`` for one target; a bad key or duration is reported and skipped."""
    if not isinstance(node, LDict):
        p.add(line, where, "must map percentiles to thresholds, like {p99: 250ms}")
        return []
    out = []
    for key, value in node.items():
        m = re.fullmatch(r"p(\d+(?:\.\d+)?)", str(key))
        q = float(m.group(1)) / 100 if m else -1.0
        if not 0 < q < 1:
            p.add(node.line_of(key), f"{where}.{key}", "must be a percentile like p50, p99, p99.99")
            continue
        try:
            threshold = parse_duration(value)
        except ValueError as err:
            p.add(node.line_of(key), f"{where}.{key}", str(err))
            continue
        out.append(Objective(target, q, threshold, p.at(node.line_of(key))))
    return out


def parse_stream_objectives(doc: LDict, stage_names: Container[str], p: Problems) -> list[Objective]:
    """The top-level ``objectives:``, keyed by ``end_to_end`` or one of ``stage_names``."""
    ob = doc["objectives"]
    if not isinstance(ob, LDict):
        p.add(doc.line_of("objectives"), "objectives", "must map end_to_end or a stage name to {p99: 250ms}")
        return []
    objectives: list[Objective] = []
    for target, node in ob.items():
        if target != "end_to_end" and target not in stage_names:
            p.add(ob.line_of(target), f"objectives.{target}",
                  "must be end_to_end or a stage name")
            continue
        objectives += parse_objectives(str(target), node, ob.line_of(target), f"objectives.{target}", p)
    return objectives
