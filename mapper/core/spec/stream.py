"""The stream spec: one validated model of a value stream, loaded from ``stream.yaml``.

Loading checks everything it can without touching a source and reports *every* problem
at once, each as ``file:line: field: what is wrong``. The rest of latmap only ever sees the
frozen dataclasses below.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mapper.core.durations import UNITS, parse_duration
from mapper.core.errors import SpecError
from mapper.core.quantiles import percentile_label
from mapper.core.spec import keys
from mapper.core.spec._parse import (
    DEFAULT_MAX_RESPONSE,
    Problems,
    check_keys,
    duration_field,
    max_response_field,
    name_field,
    retries_timeout,
    str_field,
)
from mapper.core.spec.datadog import METRIC_NAME as DD_METRIC_NAME
from mapper.core.spec.datadog import DatadogOptions, check_filter, parse_datadog
from mapper.core.spec.engine import EngineSpec, is_url, parse_engine, with_engine
from mapper.core.spec.extra import Change, EventWindow, Segments, parse_changes, parse_events, parse_segments
from mapper.core.spec.links import ExampleOptions, Links, parse_examples, parse_links
from mapper.core.urls import CREDENTIALS_HINT, check_http_url
from mapper.core.yamlload import LDict, LList, load_yaml, load_yaml_file

SOURCE_KINDS = ("prometheus", "scrape", "traces", "datadog")
#: Source kinds that hold spans: latmap's spool / OTLP files, and Datadog APM.
TRACE_SOURCE_KINDS = ("traces", "datadog")
#: Span attribute names a trace match may use, and the span column each is read from.
TRACE_ATTRIBUTES = ("messaging.destination.name", "messaging.system", "peer.service", "db.system")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class BasicAuth:
    username: str
    password_env: str | None = None
    password_file: str | None = None


@dataclass(frozen=True)
class SourceSpec:
    """Where numbers come from. Secrets are named (env var, file), never held here."""

    name: str
    kind: str
    url: str
    place: str
    bearer_token_env: str | None = None
    bearer_token_file: str | None = None
    basic_auth: BasicAuth | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    timeout: float = 30.0
    retries: int = 3
    path: str | None = None  # kind "traces": a spool directory, or OTLP files (file or dir)
    datadog: DatadogOptions | None = None  # kind "datadog": site, key names, limits
    max_response: int = DEFAULT_MAX_RESPONSE  # bytes: a longer answer is refused, not read whole


@dataclass(frozen=True)
class Measurement:
    """One latency measured by a source: a histogram, a summary, or a raw PromQL query.

    ``scale`` converts the metric's unit to seconds (``unit: ms`` gives 0.001).
    ``place`` is ``file:line`` of the measurement in the spec. ``unit_given`` says whether the
    spec named the unit (a source that knows the metric's unit checks it against the spec).
    From a ``datadog`` source, ``kind`` is ``distribution`` or ``histogram`` (Datadog's own
    metric types) and ``filter`` the tag filter (``service:alerting``).
    """

    source: str
    kind: str  # "histogram" | "summary" | "query" | "distribution"
    name: str  # metric name, or the PromQL text for kind "query"
    place: str
    selector: Mapping[str, str] = field(default_factory=dict)
    scale: float = 1.0
    unit: str = "s"
    unit_given: bool = False
    filter: str = "*"


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


@dataclass(frozen=True)
class TraceMatch:
    """A stage measured from traces: its spans, by ``service.name`` and optional filters."""

    source: str
    service: str
    place: str
    span_name: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    name: str
    place: str
    owner: str | None = None
    wait: Measurement | None = None
    process: Measurement | None = None
    upstream: tuple[str, ...] = ()
    description: str | None = None
    traces: TraceMatch | None = None
    #: The stage's share weight when ``latmap budgets`` splits an end-to-end objective
    #: (``None``: split by the hops' current shares of the tail). Always > 0.
    weight: float | None = None


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


def _source(name: str, node: Any, line: int, p: Problems) -> SourceSpec | None:
    where = f"sources.{name}"
    if not isinstance(node, LDict):
        p.add(line, where, "must be a mapping like {kind: prometheus, url: http://...}")
        return None
    if node.get("kind") == "datadog":
        api_base, options = parse_datadog(node, where, p)
        retries, timeout = retries_timeout(node, where, p)
        return SourceSpec(name=name, kind="datadog", url=api_base, place=p.at(line), timeout=timeout,
                          retries=retries, datadog=options, max_response=max_response_field(node, where, p))
    if node.get("kind") == "traces":
        check_keys(node, keys.TRACES_SOURCE, where, p)
        path = str_field(node, "path", where, p, required=True) or ""
        base = Path(p.path).parent if p.path not in ("<string>", "<demo>") else Path(".")
        resolved = path if Path(path).is_absolute() or is_url(path) else str(base / path)
        return SourceSpec(name=name, kind="traces", url="", place=p.at(line), path=resolved)
    check_keys(node, keys.SOURCE, where, p)
    kind = str_field(node, "kind", where, p, required=True)
    if kind is not None and kind not in SOURCE_KINDS:
        p.add(node.line_of("kind"), f"{where}.kind",
              f"unknown source kind {kind!r} (known: {', '.join(SOURCE_KINDS)})")
    url = str_field(node, "url", where, p, required=True) or ""
    if url and not re.match(r"^https?://[^/\s]+", url):
        p.add(node.line_of("url"), f"{where}.url", f"not an http(s) URL: {url!r}")
    if "@" in url.split("//", 1)[-1].split("/", 1)[0]:
        p.add(node.line_of("url"), f"{where}.url", CREDENTIALS_HINT)
    basic = None
    if "basic_auth" in node:
        ba = node["basic_auth"]
        if not isinstance(ba, LDict):
            p.add(node.line_of("basic_auth"), f"{where}.basic_auth", "must be a mapping")
        else:
            check_keys(ba, keys.BASIC_AUTH, f"{where}.basic_auth", p)
            user = str_field(ba, "username", f"{where}.basic_auth", p, required=True) or ""
            penv = str_field(ba, "password_env", f"{where}.basic_auth", p)
            pfile = str_field(ba, "password_file", f"{where}.basic_auth", p)
            if (penv is None) == (pfile is None):
                p.add(ba.line, f"{where}.basic_auth", "give exactly one of password_env, password_file")
            basic = BasicAuth(user, penv, pfile)
    if "bearer_token_env" in node and "bearer_token_file" in node:
        p.add(node.line_of("bearer_token_file"), where,
              "give only one of bearer_token_env, bearer_token_file")
    headers: dict[str, str] = {}
    if "headers" in node:
        h = node["headers"]
        if not isinstance(h, LDict) or not all(isinstance(v, str) for v in h.values()):
            p.add(node.line_of("headers"), f"{where}.headers", "must map header names to strings")
        else:
            headers = {str(k): v for k, v in h.items()}
            for k in headers:
                if k.lower() == "authorization":
                    p.add(h.line_of(k), f"{where}.headers.{k}",
                          "put credentials in bearer_token_env/_file or basic_auth, not in the spec")
    ca_file, insecure = None, False
    if "tls" in node:
        t = node["tls"]
        if not isinstance(t, LDict):
            p.add(node.line_of("tls"), f"{where}.tls", "must be a mapping")
        else:
            check_keys(t, keys.TLS, f"{where}.tls", p)
            ca_file = str_field(t, "ca_file", f"{where}.tls", p)
            insecure = bool(t.get("insecure_skip_verify", False))
    retries, timeout = retries_timeout(node, where, p)
    return SourceSpec(
        name=name, kind=kind or "", url=url.rstrip("/"), place=p.at(line),
        bearer_token_env=str_field(node, "bearer_token_env", where, p),
        bearer_token_file=str_field(node, "bearer_token_file", where, p),
        basic_auth=basic, headers=headers, ca_file=ca_file, insecure_skip_verify=insecure,
        timeout=timeout, retries=retries, max_response=max_response_field(node, where, p),
    )


def _measurement(node: Any, line: int, where: str, sources: Mapping[str, Any],
                 p: Problems) -> Measurement | None:
    if not isinstance(node, LDict):
        p.add(line, where, "must be a mapping like {source: prom, histogram: metric_seconds}")
        return None
    source = str_field(node, "source", where, p, required=True)
    source_node = sources.get(source) if source is not None else None
    if isinstance(source_node, LDict) and source_node.get("kind") == "datadog":
        return _datadog_measurement(node, where, source or "", p)
    check_keys(node, keys.MEASUREMENT, where, p)
    if source is not None and source not in sources:
        known = ", ".join(sources) or "none defined"
        p.add(node.line_of("source"), f"{where}.source", f"unknown source {source!r} (sources: {known})")
    picked = _one_of(node, keys.METRIC, where, p, "histogram, summary, query")
    if picked is None:
        return None
    kind, name = picked
    if kind != "query" and name and not _METRIC.match(name):
        p.add(node.line_of(kind), f"{where}.{kind}", f"not a Prometheus metric name: {name!r}")
    for suffix in ("_bucket", "_count", "_sum"):
        if kind == "histogram" and name.endswith(suffix):
            p.add(node.line_of(kind), f"{where}.{kind}",
                  f"name the histogram without {suffix!r}: {name[: -len(suffix)]!r}")
    selector: dict[str, str] = {}
    if "selector" in node:
        sel = node["selector"]
        if not isinstance(sel, LDict):
            p.add(node.line_of("selector"), f"{where}.selector", "must map label names to values")
        else:
            for k, v in sel.items():
                if not isinstance(k, str) or not _LABEL.match(k):
                    p.add(sel.line_of(k), f"{where}.selector", f"not a label name: {k!r}")
                elif k == "le" or k == "quantile":
                    p.add(sel.line_of(k), f"{where}.selector.{k}", "latmap reads this label itself")
                elif not isinstance(v, str | int | float) or isinstance(v, bool):
                    p.add(sel.line_of(k), f"{where}.selector.{k}", "must be a string")
                else:
                    selector[k] = str(v)
        if kind == "query" and selector:
            p.add(node.line_of("selector"), f"{where}.selector", "a raw query carries its own selectors")
    unit = _unit(node, where, p)
    return Measurement(source=source or "", kind=kind, name=name, place=p.at(node.line),
                       selector=selector, scale=UNITS[unit], unit=unit, unit_given="unit" in node)


def _unit(node: LDict, where: str, p: Problems) -> str:
    unit = str(node.get("unit", "s"))
    if unit not in UNITS:
        p.add(node.line_of("unit"), f"{where}.unit", f"unknown unit {unit!r} (use one of {', '.join(UNITS)})")
        unit = "s"
    return unit


def _one_of(node: LDict, keys: tuple[str, ...], where: str, p: Problems, said: str) -> tuple[str, str] | None:
    """The one metric key a measurement gives, and its value (``("histogram", "x_seconds")``)."""
    kinds = [k for k in keys if k in node]
    if len(kinds) != 1:
        p.add(node.line, where, f"give exactly one of {said}")
        return None
    return kinds[0], str_field(node, kinds[0], where, p, required=True) or ""


def _datadog_measurement(node: LDict, where: str, source: str, p: Problems) -> Measurement | None:
    """``{source: dd, distribution: trade.alert.latency, filter: "service:alerting"}``."""
    check_keys(node, keys.DATADOG_MEASUREMENT, where, p)
    picked = _one_of(node, keys.DATADOG_METRIC, where, p, "distribution, histogram (Datadog metric types)")
    if picked is None:
        return None
    kind, name = picked
    if name and not DD_METRIC_NAME.match(name):
        p.add(node.line_of(kind), f"{where}.{kind}", f"not a Datadog metric name: {name!r}")
    for suffix in (".avg", ".max", ".median", ".count", ".95percentile"):
        if kind == "histogram" and name.endswith(suffix):
            p.add(node.line_of(kind), f"{where}.{kind}",
                  f"name the histogram without {suffix!r}: {name[: -len(suffix)]!r}")
    tags = str_field(node, "filter", where, p)
    tags = "*" if tags is None else tags
    why = check_filter(tags)
    if why:
        p.add(node.line_of("filter"), f"{where}.filter", why)
    unit = _unit(node, where, p)
    return Measurement(source=source, kind=kind, name=name, place=p.at(node.line), scale=UNITS[unit],
                       unit=unit, unit_given="unit" in node, filter=tags.strip())


def _trace_match(node: Any, line: int, where: str, sources: Mapping[str, SourceSpec],
                 p: Problems) -> TraceMatch | None:
    if not isinstance(node, LDict):
        p.add(line, where, "must be a mapping like {source: spans, service: alerting}")
        return None
    check_keys(node, keys.TRACE_MATCH, where, p)
    source = str_field(node, "source", where, p, required=True) or ""
    if source and (source not in sources or sources[source].kind not in TRACE_SOURCE_KINDS):
        known = ", ".join(n for n, s in sources.items() if s.kind in TRACE_SOURCE_KINDS) or "none defined"
        p.add(node.line_of("source"), f"{where}.source", f"{source!r} is not a traces source (traces sources: {known})")
    service = str_field(node, "service", where, p, required=True) or ""
    attributes: dict[str, str] = {}
    if "attributes" in node:
        a = node["attributes"]
        if not isinstance(a, LDict):
            p.add(node.line_of("attributes"), f"{where}.attributes", "must map attribute names to values")
        else:
            for k, v in a.items():
                if k not in TRACE_ATTRIBUTES:
                    p.add(a.line_of(k), f"{where}.attributes.{k}",
                          f"latmap matches only on {', '.join(TRACE_ATTRIBUTES)}")
                else:
                    attributes[str(k)] = str(v)
    return TraceMatch(source, service, p.at(node.line), str_field(node, "span_name", where, p), attributes)


def _weight(node: LDict, where: str, p: Problems) -> float | None:
    """A stage's budget weight: a finite number > 0 (a zero or negative share cannot be split)."""
    v = node["weight"]
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
    if not ok:
        p.add(node.line_of("weight"), f"{where}.weight", f"must be a number > 0, got {v!r}")
        return None
    return float(v)


def _objectives(target: str, node: Any, line: int, where: str, p: Problems) -> list[Objective]:
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


def parse_spec(doc: Any, path: str = "<string>") -> StreamSpec:
    """Validate a loaded YAML document (from :mod:`mapper.core.yamlload`) into a StreamSpec."""
    p = Problems(path)
    if not isinstance(doc, LDict):
        raise SpecError(f"{path}:1: the spec must be a mapping with name, sources and stages")
    check_keys(doc, keys.TOP, "", p)
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
    sources: dict[str, SourceSpec] = {}
    src = doc.get("sources")
    if not isinstance(src, LDict) or not src:
        p.add(doc.line_of("sources"), "sources", "define at least one source, like prom: {kind: prometheus, url: ...}")
        src = LDict()
    for sname, snode in src.items():
        made = _source(str(sname), snode, src.line_of(sname), p)
        if made:
            sources[str(sname)] = made
    stages: list[Stage] = []
    objectives: list[Objective] = []
    st = doc.get("stages")
    if not isinstance(st, LList) or not st:
        p.add(doc.line_of("stages"), "stages", "list at least one stage")
        st = LList()
    seen: dict[str, int] = {}
    for i, snode in enumerate(st):
        where = f"stages[{i}]"
        line = st.line_of(i)
        if not isinstance(snode, LDict):
            p.add(line, where, "must be a mapping with name, owner, wait/process")
            continue
        sname = name_field(snode, "name", where, p, required=True) or str(i)
        check_keys(snode, keys.STAGE, f"stages[{sname}]", p)
        if sname in seen:
            p.add(snode.line_of("name"), f"{where}.name", f"duplicate stage {sname!r} (first at line {seen[sname]})")
        seen.setdefault(sname, snode.line_of("name"))
        where = f"stages[{sname}]"
        wait = _measurement(snode["wait"], snode.line_of("wait"), f"{where}.wait", src, p) if "wait" in snode else None
        process = (_measurement(snode["process"], snode.line_of("process"), f"{where}.process", src, p)
                   if "process" in snode else None)
        if "upstream" in snode:
            up = snode["upstream"]
            ups = [up] if isinstance(up, str) else list(up) if isinstance(up, list) else None
            if ups is None or not all(isinstance(u, str) for u in ups):
                p.add(snode.line_of("upstream"), f"{where}.upstream", "must be a stage name or a list of them")
                ups = []
            for u in ups:
                if u not in seen or u == sname:
                    p.add(snode.line_of("upstream"), f"{where}.upstream",
                          f"{u!r} is not an earlier stage (stages are listed in flow order)")
            upstream = tuple(ups)
        else:
            upstream = (stages[-1].name,) if stages else ()
        if "objectives" in snode:
            objectives += _objectives(sname, snode["objectives"], snode.line_of("objectives"),
                                      f"{where}.objectives", p)
        weight = _weight(snode, where, p) if "weight" in snode else None
        stages.append(Stage(name=sname, place=p.at(line), owner=name_field(snode, "owner", where, p),
                            wait=wait, process=process, upstream=upstream, weight=weight,
                            description=str_field(snode, "description", where, p),
                            traces=_trace_match(snode["traces"], snode.line_of("traces"), f"{where}.traces",
                                                sources, p) if "traces" in snode else None))
    trace_sources = {s.traces.source for s in stages if s.traces}
    if len(trace_sources) > 1:
        p.add(doc.line_of("stages"), "stages", "stages measured from traces must share one traces source "
              f"(found {', '.join(sorted(trace_sources))})")
    for s in stages:
        for part in (s.wait, s.process):
            if part and part.source in sources and sources[part.source].kind == "traces":
                p.add(int(part.place.rsplit(":", 1)[1]), f"stages[{s.name}]",
                      f"source {part.source!r} holds traces: use `traces: {{source: {part.source}, service: ...}}`")
    end_to_end = (_measurement(doc["end_to_end"], doc.line_of("end_to_end"), "end_to_end", src, p)
                  if "end_to_end" in doc else None)
    if end_to_end and end_to_end.source in sources and sources[end_to_end.source].kind == "traces":
        p.add(doc.line_of("end_to_end"), "end_to_end", f"source {end_to_end.source!r} holds traces: the lead "
              "time from traces is computed on its own when every stage has `traces:`")
    paths = _count_paths(stages)
    if paths > MAX_PATHS:
        p.add(doc.line_of("stages"), "stages", f"the upstream links make {paths if paths < 10**12 else 'over 10^12'} "
              f"paths through the stream (at most {MAX_PATHS}): each is mapped end to end; link fewer stages")
    if "objectives" in doc:
        ob = doc["objectives"]
        if not isinstance(ob, LDict):
            p.add(doc.line_of("objectives"), "objectives", "must map end_to_end or a stage name to {p99: 250ms}")
        else:
            for target, node in ob.items():
                if target != "end_to_end" and target not in seen:
                    p.add(ob.line_of(target), f"objectives.{target}",
                          "must be end_to_end or a stage name")
                    continue
                objectives += _objectives(str(target), node, ob.line_of(target), f"objectives.{target}", p)
    p.raise_if_any()
    segments = parse_segments(doc["segments"], doc.line_of("segments"), p) if "segments" in doc else Segments()
    events = parse_events(doc["events"], doc.line_of("events"), p) if "events" in doc else ()
    future = parse_changes(doc["future"], doc.line_of("future"), set(seen), p) if "future" in doc else ()
    baseline = str_field(doc, "baseline", "", p)
    if baseline and not Path(baseline).is_absolute() and path not in ("<string>", "<demo>"):
        baseline = str(Path(path).parent / baseline)
    owner = name_field(doc, "owner", "", p)
    examples = parse_examples(doc["examples"], doc.line_of("examples"), p) if "examples" in doc else ExampleOptions()
    links = parse_links(doc["links"], doc.line_of("links"), p) if "links" in doc else None
    engine = parse_engine(doc["engine"], doc.line_of("engine"), p) if "engine" in doc else EngineSpec()
    p.raise_if_any()
    return StreamSpec(examples=examples, links=links, name=name, owner=owner, window=window,
                      percentiles=tuple(percentiles), sources=sources, stages=tuple(stages),
                      objectives=tuple(objectives), path=path, version=1, segments=segments,
                      events=events, baseline=baseline, future=future, end_to_end=end_to_end, engine=engine)


#: The most paths (first stage to last) a stream may have: each path's lead time is computed.
MAX_PATHS = 1000


def _count_paths(stages: list[Stage]) -> int:
    """Paths from a stage with no upstream to one with no downstream, counted in flow order
    (upstreams are earlier stages), in one pass: no walk, no recursion."""
    into: dict[str, int] = {}
    has_downstream = {u for s in stages for u in s.upstream}
    for s in stages:
        into[s.name] = sum(into.get(u, 0) for u in s.upstream) if s.upstream else 1
    return sum(n for name, n in into.items() if name not in has_downstream)


def load_spec(path: str | Path) -> StreamSpec:
    """Load and validate ``stream.yaml``; every problem is reported with ``file:line``."""
    return parse_spec(load_yaml_file(path), str(path))


def loads_spec(text: str, path: str = "<string>") -> StreamSpec:
    """Like :func:`load_spec`, from a string (tests, the demo)."""
    return parse_spec(load_yaml(text, path), path)
