"""latmap: value stream maps from measured latency.

The public surface: load a spec, build the map, render it.

>>> from mapper import load_spec, build_map, window_for, to_json   # doctest: +SKIP
>>> spec = load_spec("stream.yaml")
>>> lm = build_map(spec, window_for(spec))
>>> to_json(lm)["end_to_end"]["p99"]
"""

from mapper.analysis import LatencyMap, analyse
from mapper.distribution import (
    Distribution,
    Estimate,
    HistogramDistribution,
    HostAggregateDistribution,
    SampleDistribution,
    SketchDistribution,
    SummaryDistribution,
)
from mapper.errors import DataError, LatmapError, QueryRejected, SourceError, SpecError, UsageError
from mapper.model import Check, MeasurementResult, Window
from mapper.pipeline import build_map, collect, window_for, write_reports
from mapper.report import to_json, to_markdown, to_table
from mapper.spec import StreamSpec, load_spec, loads_spec

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
