"""The latency map and its parts, as :func:`~mapper.analysis.latency.analyse` makes them:
what every renderer reads (renderers never query a source). Plain frozen values.
"""

from __future__ import annotations

from dataclasses import dataclass

from mapper.analysis.evidence import TraceEvidence
from mapper.analysis.examples import Examples
from mapper.analysis.explain.kinds import AnyExplanation
from mapper.analysis.flow_model import StreamFlow
from mapper.analysis.segments import SegmentReport
from mapper.core.distribution import Distribution, Estimate
from mapper.core.model import Check, MeasurementResult, Window
from mapper.core.spec import Objective, Stage, StreamSpec


@dataclass(frozen=True)
class StageResult:
    """A stage's measured wait and process, and their sum (the hop into the stage)."""

    stage: Stage
    wait: MeasurementResult | None
    process: MeasurementResult | None
    total: Distribution | None

    def part(self, name: str) -> MeasurementResult | None:
        return self.wait if name == "wait" else self.process


@dataclass(frozen=True)
class HopResult:
    source: str
    target: str
    latency: Distribution | None


@dataclass(frozen=True)
class ObjectiveResult:
    """``status``: ``met``, ``broken``, or ``unknown`` (the data cannot tell)."""

    objective: Objective
    estimate: Estimate | None
    status: str


@dataclass(frozen=True)
class FlowEfficiency:
    """Process time over lead time; ``method`` is ``mean`` (exact from sums) or ``p50``."""

    value: float
    method: str
    process: float
    lead: float


@dataclass(frozen=True)
class Bottleneck:
    """The stage with the largest hop percentile, decided on intervals.

    ``stage`` has the largest point value (or lower bound); ``candidates`` lists, largest
    first, every stage whose interval reaches the largest lower bound among all stages: each
    of them could be the slowest. With more than one, the data cannot name a single
    bottleneck, and the report says "alerting or http: intervals overlap".
    """

    stage: str
    q: float
    estimate: Estimate
    candidates: tuple[str, ...] = ()

    @property
    def decided(self) -> bool:
        return len(self.candidates) <= 1

    def marks(self, name: str) -> bool:
        """True when ``name`` is the bottleneck for sure (renderers style only this one)."""
        return self.decided and self.stage == name

    def describe(self) -> str:
        """``alerting`` or ``alerting or http: intervals overlap``."""
        if self.decided:
            return self.stage
        return f"{' or '.join(self.candidates)}: intervals overlap"


@dataclass(frozen=True)
class LatencyMap:
    """Everything a renderer needs; renderers never query a source."""

    spec: StreamSpec
    window: Window
    stages: tuple[StageResult, ...]
    hops: tuple[HopResult, ...]
    end_to_end: Distribution | None
    path: tuple[str, ...]
    flow_efficiency: FlowEfficiency | None
    bottleneck: Bottleneck | None
    objectives: tuple[ObjectiveResult, ...]
    checks: tuple[Check, ...]
    traces: TraceEvidence | None = None
    #: How ``end_to_end`` was made: "traces" (lead time per trace), "convolution", "single",
    #: "measured" (the spec's ``end_to_end:`` histogram, one observation per item).
    end_to_end_method: str = "convolution"
    segments: SegmentReport | None = None
    #: Example items per part and percentile (:mod:`mapper.analysis.examples`), None when
    #: no traces were read or the spec asks for none (``examples: {count: 0}``).
    examples: Examples | None = None
    #: The spec's measured lead time as collected (``end_to_end:``), whether or not it had data.
    measured_lead: MeasurementResult | None = None
    #: With a measured lead time: the one computed from the stages (what-ifs change the stages,
    #: so they compare against it, like for like).
    computed_end_to_end: Distribution | None = None
    #: Items in and out, yield, rework, inventory and utilisation per stage (None: not
    #: computed, e.g. no traces and no flow metrics).
    flow: StreamFlow | None = None
    #: Why the tail is slow (:mod:`mapper.analysis.explain`): for the bottleneck's hop and the
    #: lead time at the ranking percentile, from the traces' attributes; the critical path of a
    #: stream with a join; the bottleneck's label slices when a metric histogram measures it
    #: (empty: no traces and no histogram, or the map was asked without explanations).
    explanations: tuple[AnyExplanation, ...] = ()

    @property
    def broken(self) -> bool:
        return any(o.status == "broken" for o in self.objectives)

    def stage_result(self, name: str) -> StageResult:
        for s in self.stages:
            if s.stage.name == name:
                return s
        raise KeyError(name)
