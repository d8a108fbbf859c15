"""``latmap explain`` from metrics: one call that reads a stage part's histogram sliced by its
labels through the :class:`~mapper.core.source.Source` seam and returns the analysis
(:mod:`mapper.analysis.slices`), over the window and, with ``versus``, over an earlier one.

The command (:mod:`mapper.app.explain`) and the report call :func:`explain_slices_for`; it
never raises for what the data cannot answer (a summary, a source without slices, no label):
the explanation then has no labels and a check that says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mapper.analysis.explain.attributes import looks_personal
from mapper.analysis.slices import (
    MAX_VALUES,
    Skipped,
    SlicesExplanation,
    choose_labels,
    compare_windows,
    explain_slices,
)
from mapper.app.gather import Sources
from mapper.core.distribution import HistogramDistribution
from mapper.core.errors import SourceError, UsageError
from mapper.core.model import Check, Window
from mapper.core.source import Source
from mapper.core.spec import Measurement, StreamSpec

#: ``--versus 7d``: the same hours a week earlier.
WEEK = 7 * 86400.0

PerLabel = dict[str, dict[str, HistogramDistribution]]


def earlier(window: Window, seconds: float = WEEK) -> Window:
    """The same length of time ``seconds`` before ``window`` (``--versus 7d``)."""
    return Window(window.start - seconds, window.end - seconds)


def part_measurement(spec: StreamSpec, stage: str, part: str) -> Measurement | None:
    """The metric that measures ``stage``'s ``part`` (``lead``: the spec's end-to-end one), or
    None when no metric does (a traced part, a hop). An unknown stage or part is a UsageError."""
    if part == "lead":
        return spec.end_to_end
    named = {s.name: s for s in spec.stages}
    if stage not in named:
        raise UsageError(f"--stage {stage!r}: no such stage in {spec.path} (stages: {', '.join(named)})")
    if part not in ("wait", "process", "hop"):
        raise UsageError(f"--part {part!r}: one of wait, process, hop, lead")
    s = named[stage]
    return s.wait if part == "wait" else s.process if part == "process" else None


def _empty(stage: str, part: str, q: float, code: str, message: str) -> SlicesExplanation:
    check = Check("info", code, f"{stage} {part}: {message}", stage, part)
    return explain_slices(stage, part, q, {}, checks=[check])


def _read(source: Source, m: Measurement, window: Window, labels: Sequence[str]
          ) -> tuple[PerLabel, list[Check]]:
    per: PerLabel = {}
    checks: list[Check] = []
    for label in labels:
        got, made = source.label_histograms(m, window, label)
        checks += made
        if got:
            per[label] = got
    return per, checks


def explain_slices_for(spec: StreamSpec, window: Window, stage: str, part: str, q: float,
                       versus: Window | None = None, sources: Mapping[str, Source] | Sources | None = None,
                       max_values: int = MAX_VALUES, include_pii: bool = False) -> SlicesExplanation:
    """The ``slices`` explanation of ``stage``'s ``part`` at percentile ``q`` over ``window``:
    its histogram split by each label with 2..``max_values`` values, each slice against the
    rest; with ``versus`` (e.g. :func:`earlier`), each slice against itself then.

    ``sources``: sources already made for the map (their answers are reused). A source error
    is raised with the stage and part (a one-line error for the CLI). Labels that look like
    personal data (``user``, ``email``, ``client_ip`` ...) are left out unless ``include_pii``:
    their values would be in the report."""
    label = "end to end" if part == "lead" else stage
    m = part_measurement(spec, stage, part)
    if m is None:
        return _empty(label, part, q, "slices-no-metric", "no histogram measures it (slices come from a "
                      "metric histogram; traced parts are explained by their attributes)")
    if m.kind != "histogram":
        return _empty(label, part, q, "slices-not-histogram",
                      f"measured by a {m.kind}, whose percentiles cannot be split by label and added up")
    source = Sources(spec, sources)[m.source]
    if "slices" not in source.gives:
        return _empty(label, part, q, "slices-not-given",
                      f"a {source.spec.kind} source gives no label slices")
    try:
        found = source.slice_labels(m, window)
        keep, skipped = choose_labels(found, max_values)
        if not include_pii:
            skipped += [Skipped(lb, found[lb], "looks like personal data: its values are left out (--include-pii "
                                               "to slice by it)") for lb in keep if looks_personal(lb)]
            keep = [lb for lb in keep if not looks_personal(lb)]
        per, checks = _read(source, m, window, keep)
        before = None
        if versus is not None:
            then, then_checks = _read(source, m, versus, keep)
            checks += then_checks
            before = compare_windows(per, then, q, versus)
    except SourceError as err:
        raise SourceError(f"{label} {part} slices: {err}") from err
    gone = [Skipped(lb, 0, "no series carries it with a value") for lb in keep if lb not in per]
    checks = [Check(c.level, c.code, c.message, c.stage or label, c.part or part) for c in checks]
    return explain_slices(label, part, q, per, [*skipped, *gone], checks, before)
