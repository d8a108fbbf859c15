"""The spec's ``examples:`` and ``links:``: how many example items each percentile lists,
and where a trace id opens (a trace viewer), parsed into frozen values with ``file:line``
problems like the rest of the spec (see :mod:`mapper.core.spec.stream`).

``links:`` is a preset (``grafana-tempo``, ``jaeger``, ``datadog``) with the viewer's base
``url`` (and, for Grafana, the Tempo data source's ``datasource`` uid), or a URL
``template`` holding ``{trace_id}`` and optionally ``{start}``/``{end}`` (Unix
milliseconds). The URLs themselves are built by :mod:`mapper.core.tracelinks`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mapper.core.spec import keys
from mapper.core.spec._parse import Problems, check_keys, str_field
from mapper.core.urls import url_problem
from mapper.core.yamlload import LDict

#: Presets of ``links.preset``, with the base URL each uses when the spec gives none.
PRESETS = {"grafana-tempo": None, "jaeger": None, "datadog": "https://app.datadoghq.com"}
PLACEHOLDERS = ("trace_id", "start", "end")
DEFAULT_COUNT = 3
MAX_COUNT = 100
#: Exemplar labels read as the trace id, in order, when the spec names none.
DEFAULT_TRACE_ID_LABELS = ("trace_id", "traceID")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_FIELD = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class ExampleOptions:
    """``count`` example items per percentile (0: none, which also skips choosing them) and
    the exemplar labels that carry a trace id."""

    count: int = DEFAULT_COUNT
    trace_id_labels: tuple[str, ...] = DEFAULT_TRACE_ID_LABELS


@dataclass(frozen=True)
class Links:
    """Where a trace id opens: a ``preset`` with ``url`` (and ``datasource``), or a ``template``."""

    preset: str | None = None
    url: str | None = None
    datasource: str | None = None
    template: str | None = None
    place: str = ""

    @property
    def name(self) -> str:
        """The viewer in a few words (``jaeger``, ``grafana-tempo``, ``template``)."""
        return self.preset or "template"


def parse_examples(node: Any, line: int, p: Problems) -> ExampleOptions:
    if not isinstance(node, LDict):
        p.add(line, "examples", "must be a mapping like {count: 3}")
        return ExampleOptions()
    check_keys(node, keys.EXAMPLES, "examples", p)
    count = node.get("count", DEFAULT_COUNT)
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
        p.add(node.line_of("count"), "examples.count", f"must be a whole number from 0 to {MAX_COUNT}")
        count = DEFAULT_COUNT
    labels = node.get("trace_id_labels", list(DEFAULT_TRACE_ID_LABELS))
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and _LABEL.match(x) for x in labels):
        p.add(node.line_of("trace_id_labels"), "examples.trace_id_labels", "must be a label name or a list of them")
        labels = list(DEFAULT_TRACE_ID_LABELS)
    return ExampleOptions(count, tuple(labels))


def parse_links(node: Any, line: int, p: Problems) -> Links | None:
    if isinstance(node, str):  # `links: jaeger` is short for {preset: jaeger}
        short = LDict({"preset": node})
        short.line = line
        node = short
    if not isinstance(node, LDict):
        p.add(line, "links", "must be a mapping like {preset: jaeger, url: https://jaeger.example} "
              "or {template: \"https://viewer.example/trace/{trace_id}\"}")
        return None
    check_keys(node, keys.LINKS, "links", p)
    preset = str_field(node, "preset", "links", p)
    template = str_field(node, "template", "links", p)
    url = str_field(node, "url", "links", p)
    datasource = str_field(node, "datasource", "links", p)
    if (preset is None) == (template is None):
        p.add(line, "links", "give exactly one of preset (grafana-tempo, jaeger, datadog) or template")
        return None
    if preset is not None:
        if preset not in PRESETS:
            p.add(node.line_of("preset"), "links.preset",
                  f"unknown preset {preset!r} (known: {', '.join(PRESETS)}; or give a template)")
            return None
        url = url or PRESETS[preset]
        if url is None:
            p.add(line, "links.url", f"preset {preset} needs the viewer's base url, like https://{preset.split('-')[0]}.example")
            return None
        if (why := url_problem(url)) is not None:
            p.add(node.line_of("url"), "links.url", why)
            return None
        if preset == "grafana-tempo" and not datasource:
            p.add(line, "links.datasource", "preset grafana-tempo needs the uid of the Tempo data source")
            return None
        return Links(preset=preset, url=url.rstrip("/"), datasource=datasource, place=p.at(line))
    template = template or ""
    at = node.line_of("template")
    fields = _FIELD.findall(template)
    unknown = sorted({f for f in fields if f not in PLACEHOLDERS})
    if unknown:
        p.add(at, "links.template", f"unknown placeholder(s) {', '.join('{' + f + '}' for f in unknown)} "
              f"(known: {', '.join('{' + f + '}' for f in PLACEHOLDERS)})")
        return None
    if "trace_id" not in fields:
        p.add(at, "links.template", "must contain {trace_id}, where the trace id goes")
        return None
    if (why := url_problem(_FIELD.sub("0", template))) is not None:
        p.add(at, "links.template", why)
        return None
    if url is not None or datasource is not None:
        p.add(at, "links", "url and datasource go with a preset; a template is the whole URL")
        return None
    return Links(template=template, place=p.at(line))
