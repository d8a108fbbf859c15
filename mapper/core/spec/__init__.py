"""The stream spec: one loaded, validated model of the value stream, whatever the file said.

``load_spec`` reads the YAML file, checks every key and value, and raises one ``SpecError``
listing every problem as ``file:line: field: message``. The parsers live in ``stream``
(the top-level keys), ``sources``, ``measurements``, ``stages``, ``objectives``, ``datadog``
(the Datadog source's options) and ``extra`` (segments, event windows, future-state changes);
``_parse`` holds the helpers they share.
"""

from mapper.core.spec.engine import EngineSpec
from mapper.core.spec.extra import Change, EventWindow, Segments
from mapper.core.spec.live import LIVE_SOURCE, live_lead_time, with_live_series
from mapper.core.spec.measurements import Measurement
from mapper.core.spec.objectives import Objective
from mapper.core.spec.sources import TRACE_SOURCE_KINDS, BasicAuth, SourceSpec
from mapper.core.spec.stages import Stage, TraceMatch
from mapper.core.spec.stream import StreamSpec, load_spec, loads_spec, parse_spec

__all__ = [
    "LIVE_SOURCE",
    "TRACE_SOURCE_KINDS",
    "BasicAuth",
    "Change",
    "EngineSpec",
    "EventWindow",
    "Measurement",
    "Objective",
    "Segments",
    "SourceSpec",
    "Stage",
    "StreamSpec",
    "TraceMatch",
    "live_lead_time",
    "load_spec",
    "loads_spec",
    "parse_spec",
    "with_live_series",
]
