"""A stage's flow keys measured from metrics (issue 27): ``errors:``, ``retries:``,
``inventory:`` and ``workers:``.

``errors`` and ``retries`` count attempts that went wrong or were made again, either with a
counter of their own (``{source: prom, counter: alerts_failed_total, selector: {...}}``) or
as the stage's own process histogram narrowed by an outcome label
(``{source: prom, selector: 'outcome="error"'}``: the histogram's ``_count`` with that label,
and its ``_sum`` gives the time those attempts took). ``inventory`` names a queue-depth or
consumer-lag gauge (``{source: prom, gauge: kafka_consumergroup_lag, selector: {...}}``):
RabbitMQ's queue messages, a Celery/Redis queue length and SQS's
``ApproximateNumberOfMessagesVisible`` are the same shape. ``workers`` is how many work at
the stage at once (utilisation and capacity need it).

A selector is a mapping of label values (escaped into PromQL, like a measurement's) or a
string of PromQL matchers (``outcome=~"error|timeout"``), checked here so that nothing but
matchers reaches a query.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mapper.core.spec import keys
from mapper.core.spec._parse import Problems, check_keys, str_field
from mapper.core.spec.measurements import Measurement
from mapper.core.yamlload import LDict

_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_MATCHER = r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\\n]|\\.)*"\s*'
#: One or more PromQL label matchers, comma separated (a trailing comma is allowed).
_MATCHERS = re.compile(rf"^{_MATCHER}(?:,{_MATCHER})*,?\s*$")
#: The most workers a stage may name (a typo guard: 10^6 threads is no stage).
MAX_WORKERS = 1_000_000


@dataclass(frozen=True)
class FlowMetric:
    """One metric a stage's flow is read from.

    ``kind``: ``counter`` (its increase over the window), ``gauge`` (its value over the
    window, summed across series) or ``histogram`` (a histogram's ``_count`` and ``_sum``
    increases under ``selector``: the stage's process histogram narrowed by an outcome
    label; ``scale`` converts its ``_sum`` to seconds). ``matchers`` is raw PromQL matcher
    text the spec gave as a string (checked at load), added to ``selector``.
    """

    source: str
    kind: str
    name: str
    place: str
    selector: Mapping[str, str] = field(default_factory=dict)
    matchers: str = ""
    scale: float = 1.0

    def describe(self) -> str:
        """``name{a="b",c=~"d"}`` for reports (values as written)."""
        parts = [f'{k}="{v}"' for k, v in sorted(self.selector.items())]
        if self.matchers:
            parts.append(self.matchers)
        suffix = "_count" if self.kind == "histogram" else ""
        return f"{self.name}{suffix}{{{','.join(parts)}}}" if parts else f"{self.name}{suffix}"


def parse_rework(node: Any, line: int, where: str, process: Measurement | None,
                 sources: Mapping[str, Any], p: Problems) -> FlowMetric | None:
    """``errors:`` / ``retries:``: a counter, or the stage's process histogram by outcome."""
    if not isinstance(node, LDict):
        p.add(line, where, "must be a mapping like {source: prom, counter: failed_total} "
              "or {source: prom, selector: 'outcome=\"error\"'}")
        return None
    check_keys(node, keys.FLOW_COUNTER, where, p)
    source = _source(node, where, sources, p)
    labels, matchers = _selector(node, where, p)
    if "counter" in node:
        name = _metric_name(node, "counter", where, p)
        if name is None:
            return None
        return FlowMetric(source, "counter", name, p.at(node.line), labels, matchers)
    if not labels and not matchers:
        p.add(node.line, where, "name a `counter`, or a `selector` on the stage's process histogram "
              "(e.g. 'outcome=\"error\"')")
        return None
    if process is None or process.kind != "histogram":
        p.add(node.line, where, "a selector without `counter` narrows the stage's process histogram: "
              "give the stage a `process: {histogram: ...}` or name a `counter`")
        return None
    if source and source != process.source:
        p.add(node.line_of("source"), f"{where}.source",
              f"the process histogram is read from {process.source!r}: use that source or name a `counter`")
    clash = sorted(set(labels) & set(process.selector))
    if clash:
        p.add(node.line_of("selector"), f"{where}.selector",
              f"{', '.join(clash)} already set by the process selector")
    return FlowMetric(process.source, "histogram", process.name, p.at(node.line),
                      {**process.selector, **labels}, matchers, process.scale)


def parse_inventory(node: Any, line: int, where: str, sources: Mapping[str, Any],
                    p: Problems) -> FlowMetric | None:
    """``inventory:``: a queue-depth or consumer-lag gauge."""
    if not isinstance(node, LDict):
        p.add(line, where, "must be a mapping like {source: prom, gauge: kafka_consumergroup_lag}")
        return None
    check_keys(node, keys.FLOW_GAUGE, where, p)
    source = _source(node, where, sources, p)
    labels, matchers = _selector(node, where, p)
    if "gauge" not in node:
        p.add(node.line, f"{where}.gauge", "is required")
        return None
    name = _metric_name(node, "gauge", where, p)
    if name is None:
        return None
    return FlowMetric(source, "gauge", name, p.at(node.line), labels, matchers)


def parse_workers(node: LDict, where: str, p: Problems) -> int | None:
    """``workers:``: a whole number from 1 to :data:`MAX_WORKERS`."""
    v = node["workers"]
    if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_WORKERS:
        p.add(node.line_of("workers"), f"{where}.workers", f"must be a whole number from 1 to {MAX_WORKERS}, got {v!r}")
        return None
    return v


def _source(node: LDict, where: str, sources: Mapping[str, Any], p: Problems) -> str:
    source = str_field(node, "source", where, p, required=True) or ""
    if not source:
        return ""
    kind = sources[source].get("kind") if isinstance(sources.get(source), LDict) else None
    if source not in sources:
        p.add(node.line_of("source"), f"{where}.source",
              f"unknown source {source!r} (sources: {', '.join(sources) or 'none defined'})")
    elif kind not in ("prometheus", None):
        p.add(node.line_of("source"), f"{where}.source",
              f"{source!r} is a {kind} source; flow metrics are read from a `prometheus` source")
    return source


def _metric_name(node: LDict, key: str, where: str, p: Problems) -> str | None:
    name = str_field(node, key, where, p, required=True)
    if name is None:
        return None
    if not _METRIC.match(name):
        p.add(node.line_of(key), f"{where}.{key}", f"not a Prometheus metric name: {name!r}")
        return None
    return name


def _selector(node: LDict, where: str, p: Problems) -> tuple[dict[str, str], str]:
    """``(labels, matchers)``: a mapping of label values, or a string of PromQL matchers."""
    if "selector" not in node:
        return {}, ""
    sel = node["selector"]
    if isinstance(sel, str):
        if not _MATCHERS.match(sel):
            p.add(node.line_of("selector"), f"{where}.selector",
                  f"not PromQL label matchers: {sel!r} (e.g. 'outcome=\"error\"', 'queue=~\"a|b\"')")
            return {}, ""
        if re.match(r'\s*le\s*[=!]', sel) or re.search(r',\s*le\s*[=!]', sel):
            p.add(node.line_of("selector"), f"{where}.selector", "latmap reads the `le` label itself")
        return {}, sel.strip().rstrip(",")
    if not isinstance(sel, LDict):
        p.add(node.line_of("selector"), f"{where}.selector", "must map label names to values, or be PromQL matchers")
        return {}, ""
    labels: dict[str, str] = {}
    for k, v in sel.items():
        if not isinstance(k, str) or not _LABEL.match(k) or k == "le":
            p.add(sel.line_of(k), f"{where}.selector", f"not a label name latmap may match on: {k!r}")
        elif not isinstance(v, str | int | float) or isinstance(v, bool):
            p.add(sel.line_of(k), f"{where}.selector.{k}", "must be a string")
        else:
            labels[k] = str(v)
    return labels, ""
