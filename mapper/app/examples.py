"""``latmap examples``: the items behind one percentile of one part, for an on-call engineer
who wants them now (the same examples as ``report.json``, with their links)."""

from __future__ import annotations

import dataclasses
from typing import Any

from mapper.analysis.examples import END_TO_END, EXAMPLE_PARTS
from mapper.app import job
from mapper.app.request import MapRequest, requested_spec
from mapper.core.errors import UsageError
from mapper.render.examples import examples_doc


def examples(request: MapRequest, stage: str | None, part: str, percentile: float) -> dict[str, Any]:
    """The examples of ``part`` of ``stage`` (none for ``lead``) at ``percentile`` (e.g. 99),
    as :func:`mapper.render.examples.examples_doc`, from the map of ``request``; a percentile
    the spec does not ask for is added to this run. The arguments are checked against the
    spec before any source is asked (a UsageError names the option)."""
    spec = requested_spec(request)
    if part not in EXAMPLE_PARTS:
        raise UsageError(f"--part: {part!r} is not one of {', '.join(EXAMPLE_PARTS)}")
    if not 0 < percentile < 100:
        raise UsageError(f"--percentile: {percentile:g} is not between 0 and 100")
    if part == "lead":
        target = END_TO_END
    elif stage is None:
        raise UsageError(f"--stage: give the stage whose {part} to show (or --part lead)")
    elif stage not in {s.name for s in spec.stages}:
        raise UsageError(f"--stage: {stage!r} is not a stage of {spec.path} "
                         f"(stages: {', '.join(s.name for s in spec.stages)})")
    else:
        target = stage
    q = round(percentile / 100, 12)
    if q not in spec.percentiles:
        spec = dataclasses.replace(spec, percentiles=(*spec.percentiles, q))
    if spec.examples.count <= 0:
        spec = dataclasses.replace(spec, examples=dataclasses.replace(spec.examples, count=3))
    return examples_doc(job.run_map(dataclasses.replace(request, spec=spec)).latency_map, target, part, q)
