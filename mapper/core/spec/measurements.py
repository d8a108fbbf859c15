"""A stage's ``wait`` / ``process`` (and the stream's ``end_to_end``): one latency a source
measures, as a Prometheus histogram, summary or raw query, or a Datadog metric.

The measurement is read against the spec's ``sources:`` as written, so a Datadog source's
measurement is checked with Datadog's rules (metric names with dots, a tag filter) and any
other with Prometheus's (metric and label names, no ``le`` / ``quantile`` in the selector).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mapper.core.durations import UNITS
from mapper.core.spec import keys
from mapper.core.spec._parse import Problems, check_keys, str_field
from mapper.core.spec.datadog import METRIC_NAME as DD_METRIC_NAME
from mapper.core.spec.datadog import check_filter
from mapper.core.yamlload import LDict

_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


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


def parse_measurement(node: Any, line: int, where: str, sources: Mapping[str, Any],
                      p: Problems) -> Measurement | None:
    """One measurement; ``sources`` is the spec's ``sources:`` node (a name may be checked
    against a source that failed to parse). ``None`` when no usable metric is named."""
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
    selector = _selector(node, where, kind, p) if "selector" in node else {}
    unit = _unit(node, where, p)
    return Measurement(source=source or "", kind=kind, name=name, place=p.at(node.line),
                       selector=selector, scale=UNITS[unit], unit=unit, unit_given="unit" in node)


def _selector(node: LDict, where: str, kind: str, p: Problems) -> dict[str, str]:
    """Label matchers (``{region: eu}``); latmap's own labels and a raw query's are refused."""
    selector: dict[str, str] = {}
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
    return selector


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
