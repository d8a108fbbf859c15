"""latmap: value stream maps from measured latency.

The public surface: load a spec, build the map, render it.

>>> from mapper import load_spec, build_map, window_for, to_json   # doctest: +SKIP
>>> spec = load_spec("stream.yaml")
>>> lm = build_map(spec, window_for(spec))
>>> to_json(lm)["end_to_end"]["p99"]

Every name loads on first use (PEP 562): ``import mapper`` costs nothing beyond this file,
and importing a lower layer never loads the layers above it.
"""

import typing as _typing

from mapper.core.lazy import lazy_getattr as _lazy_getattr

if _typing.TYPE_CHECKING:
    from mapper.analysis.latency import LatencyMap, analyse
    from mapper.app.pipeline import build_map, collect, window_for, write_reports
    from mapper.core.distribution import (
        Distribution,
        Estimate,
        HistogramDistribution,
        HostAggregateDistribution,
        SampleDistribution,
        SketchDistribution,
        SummaryDistribution,
    )
    from mapper.core.errors import DataError, LatmapError, QueryRejected, SourceError, SpecError, UsageError
    from mapper.core.model import Check, MeasurementResult, Window
    from mapper.core.spec import StreamSpec, load_spec, loads_spec
    from mapper.render.report import to_json, to_markdown, to_table

__all__ = [
    "Check",
    "DataError",
    "Distribution",
    "Estimate",
    "HistogramDistribution",
    "HostAggregateDistribution",
    "LatencyMap",
    "LatmapError",
    "MeasurementResult",
    "QueryRejected",
    "SampleDistribution",
    "SketchDistribution",
    "SourceError",
    "SpecError",
    "StreamSpec",
    "SummaryDistribution",
    "UsageError",
    "Window",
    "analyse",
    "build_map",
    "collect",
    "load_spec",
    "loads_spec",
    "to_json",
    "to_markdown",
    "to_table",
    "window_for",
    "write_reports",
]

_WHERE = {
    "Check": "mapper.core.model",
    "DataError": "mapper.core.errors",
    "Distribution": "mapper.core.distribution",
    "Estimate": "mapper.core.distribution",
    "HistogramDistribution": "mapper.core.distribution",
    "HostAggregateDistribution": "mapper.core.distribution",
    "LatencyMap": "mapper.analysis.latency",
    "LatmapError": "mapper.core.errors",
    "MeasurementResult": "mapper.core.model",
    "QueryRejected": "mapper.core.errors",
    "SampleDistribution": "mapper.core.distribution",
    "SketchDistribution": "mapper.core.distribution",
    "SourceError": "mapper.core.errors",
    "SpecError": "mapper.core.errors",
    "StreamSpec": "mapper.core.spec",
    "SummaryDistribution": "mapper.core.distribution",
    "UsageError": "mapper.core.errors",
    "Window": "mapper.core.model",
    "analyse": "mapper.analysis.latency",
    "build_map": "mapper.app.pipeline",
    "collect": "mapper.app.pipeline",
    "load_spec": "mapper.core.spec",
    "loads_spec": "mapper.core.spec",
    "to_json": "mapper.render.report",
    "to_markdown": "mapper.render.report",
    "to_table": "mapper.render.report",
    "window_for": "mapper.app.pipeline",
    "write_reports": "mapper.app.pipeline",
}

__getattr__ = _lazy_getattr(__name__, (), _WHERE)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
