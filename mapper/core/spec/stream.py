"""The stream spec: one validated model of a value stream, loaded from ``stream.yaml``.

Loading checks everything it can without touching a source and reports *every* problem
at once, each as ``file:line: field: what is wrong``. The rest of latmap only ever sees the
frozen dataclasses: :class:`StreamSpec` here, and what it holds in ``sources``,
``measurements``, ``stages`` and ``objectives`` (each with the parser of its part of the file).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mapper.core.errors import SpecError
from mapper.core.spec import keys
from mapper.core.spec._parse import Problems, check_keys, duration_field, name_field, str_field
from mapper.core.spec.engine import EngineSpec, parse_engine, with_engine
from mapper.core.spec.extra import Change, EventWindow, Segments, parse_changes, parse_events, parse_segments
from mapper.core.spec.links import ExampleOptions, Links, parse_examples, parse_links
from mapper.core.spec.measurements import Measurement, parse_measurement
from mapper.core.spec.objectives import Objective, parse_stream_objectives
from mapper.core.spec.sources import SourceSpec, parse_sources
from mapper.core.spec.stages import Stage, check_paths, check_stage_sources, parse_stages
from mapper.core.urls import check_http_url
from mapper.core.yamlload import LDict, LList, load_yaml, load_yaml_file

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class StreamSpec:
    """A value stream: ordered stages, the sources that measure them, objectives.

    ``hops`` are ``(from, to)`` pairs of stage names; by default consecutive stages.
    """

    name: str
    owner: str | None
    window: float
    percentiles: tuple[float, ...]
    sources: Mapping[str, SourceSpec]
    stages: tuple[Stage, ...]
    objectives: tuple[Objective, ...]
    path: str = "<string>"
    segments: Segments = field(default_factory=Segments)
    events: tuple[EventWindow, ...] = ()
    baseline: str | None = None  # a pinned baseline report.json (resolved against the spec's folder)
    future: tuple[Change, ...] = ()
    version: int = 1
    examples: ExampleOptions = field(default_factory=ExampleOptions)
    links: Links | None = None  # where a trace id opens (a trace viewer), if anywhere
    #: The measured lead time (top-level ``end_to_end:``, a measurement like a stage's ``wait``):
    #: one observation per item, first stage's start to last stage's end, e.g. the
    #: ``latmap_lead_time_seconds`` histogram of ``latmap serve --stream``. When given, the
    #: map's end-to-end lead time is this histogram rather than one computed from the stages.
    end_to_end: Measurement | None = None
    engine: EngineSpec = field(default_factory=EngineSpec)
    #: ``draft: true`` (``latmap discover`` writes it): the spec holds guesses nobody has
    #: confirmed yet; the map says so with a ``spec-draft`` check. 0 when not a draft, else
    #: the line of the key.
    draft: int = 0

    @property
    def hops(self) -> tuple[tuple[str, str], ...]:
        return tuple((up, s.name) for s in self.stages for up in s.upstream)

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def with_source_url(self, kind: str, url: str) -> StreamSpec:
        """A copy with every ``kind`` source pointed at ``url`` (CLI ``--prometheus``); a URL
        with credentials is refused (UsageError), as it is in the spec."""
        check_http_url(url, f"--{kind}")
        sources = {
            n: replace(s, url=url) if s.kind == kind else s for n, s in self.sources.items()
        }
        return replace(self, sources=sources)

    def with_engine(self, text: str) -> StreamSpec:
        """A copy analysing traces on ``text`` (CLI ``--engine``: ``local`` or ``dask://host:port``);
        the spec's other engine settings are kept. A UsageError for anything else."""
        return replace(self, engine=with_engine(self.engine, text))

    def with_timeout(self, seconds: float) -> StreamSpec:
        """A copy whose remote sources answer within ``seconds`` per request (CLI ``--timeout``)."""
        sources = {n: replace(s, timeout=seconds) if s.kind != "traces" else s for n, s in self.sources.items()}
        return replace(self, sources=sources)


def parse_spec(doc: Any, path: str = "<string>") -> StreamSpec:
    """Validate a loaded YAML document (from :mod:`mapper.core.yamlload`) into a StreamSpec.

    Two rounds: the stream itself (header, sources, stages, objectives), then, if that had no
    problem, the keys that refer to it (segments, events, future, ...); each round reports every
    problem it found in one SpecError, in the order of the file's keys as checked below."""
    p = Problems(path)
    if not isinstance(doc, LDict):
        raise SpecError(f"{path}:1: the spec must be a mapping with name, sources and stages")
    check_keys(doc, keys.TOP, "", p)
    name, window, percentiles = _header(doc, p)
    src, sources = parse_sources(doc, p)
    parsed = parse_stages(doc, src, sources, p)
    stages, objectives = parsed.stages, parsed.objectives
    check_stage_sources(doc, stages, sources, p)
    end_to_end = _end_to_end(doc, src, sources, p) if "end_to_end" in doc else None
    check_paths(doc, stages, p)
    if "objectives" in doc:
        objectives += parse_stream_objectives(doc, parsed.seen, p)
    p.raise_if_any()
    segments = parse_segments(doc["segments"], doc.line_of("segments"), p) if "segments" in doc else Segments()
    events = parse_events(doc["events"], doc.line_of("events"), p) if "events" in doc else ()
    future = parse_changes(doc["future"], doc.line_of("future"), set(parsed.seen), p) if "future" in doc else ()
    baseline = _baseline(doc, path, p)
    owner = name_field(doc, "owner", "", p)
    examples = parse_examples(doc["examples"], doc.line_of("examples"), p) if "examples" in doc else ExampleOptions()
    links = parse_links(doc["links"], doc.line_of("links"), p) if "links" in doc else None
    engine = parse_engine(doc["engine"], doc.line_of("engine"), p) if "engine" in doc else EngineSpec()
    draft = _draft(doc, p)
    p.raise_if_any()
    return StreamSpec(examples=examples, links=links, name=name, owner=owner, window=window,
                      percentiles=tuple(percentiles), sources=sources, stages=tuple(stages),
                      objectives=tuple(objectives), path=path, version=1, segments=segments,
                      events=events, baseline=baseline, future=future, end_to_end=end_to_end, engine=engine,
                      draft=draft)


def _header(doc: LDict, p: Problems) -> tuple[str, float, list[float]]:
    """The stream's ``version`` (checked), ``name``, ``window`` (seconds) and ``percentiles``
    (as quantiles: 99.99 gives 0.9999)."""
    version = doc.get("version", 1)
    if version != 1:
        p.add(doc.line_of("version"), "version", f"unsupported spec version {version!r} (this latmap reads 1)")
    name = str_field(doc, "name", "", p, required=True) or ""
    if name and not _NAME.match(name):
        p.add(doc.line_of("name"), "name", "use letters, digits, '.', '_' and '-'")
    window = duration_field(doc, "window", "", p, 86400.0)
    if window <= 0:
        p.add(doc.line_of("window"), "window", "must be > 0")
    percentiles: list[float] = []
    pl = doc.get("percentiles", [50, 99, 99.99])
    if not isinstance(pl, list) or not pl:
        p.add(doc.line_of("percentiles"), "percentiles", "must be a list like [50, 99, 99.99]")
    else:
        for i, v in enumerate(pl):
            ok = isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < 100
            if not ok:
                line = pl.line_of(i) if isinstance(pl, LList) else doc.line_of("percentiles")
                p.add(line, "percentiles", f"{v!r} is not a percentile between 0 and 100")
            else:
                percentiles.append(round(float(v) / 100, 12))
    return name, window, percentiles


def _end_to_end(doc: LDict, src: LDict, sources: Mapping[str, SourceSpec], p: Problems) -> Measurement | None:
    """The measured lead time; never from a traces source (that one is computed from the stages)."""
    end_to_end = parse_measurement(doc["end_to_end"], doc.line_of("end_to_end"), "end_to_end", src, p)
    if end_to_end and end_to_end.source in sources and sources[end_to_end.source].kind == "traces":
        p.add(doc.line_of("end_to_end"), "end_to_end", f"source {end_to_end.source!r} holds traces: the lead "
              "time from traces is computed on its own when every stage has `traces:`")
    return end_to_end


def _draft(doc: LDict, p: Problems) -> int:
    """The line of ``draft: true``; 0 without the key or with ``draft: false``."""
    if "draft" not in doc or doc["draft"] is False:
        return 0
    if doc["draft"] is not True:
        p.add(doc.line_of("draft"), "draft", "must be true or false (remove it once the draft is confirmed)")
        return 0
    return doc.line_of("draft") or 1


def _baseline(doc: LDict, path: str, p: Problems) -> str | None:
    """The pinned baseline report, resolved against the spec's folder."""
    baseline = str_field(doc, "baseline", "", p)
    if baseline and not Path(baseline).is_absolute() and path not in ("<string>", "<demo>"):
        baseline = str(Path(path).parent / baseline)
    return baseline


def load_spec(path: str | Path) -> StreamSpec:
    """Load and validate ``stream.yaml``; every problem is reported with ``file:line``."""
    return parse_spec(load_yaml_file(path), str(path))


def loads_spec(text: str, path: str = "<string>") -> StreamSpec:
    """Like :func:`load_spec`, from a string (tests, the demo)."""
    return parse_spec(load_yaml(text, path), path)
