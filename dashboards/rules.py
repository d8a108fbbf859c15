"""Prometheus recording rules for a value stream: per-hop bucket rates and percentiles.

Names follow Prometheus's ``level:metric:operations`` convention
(https://prometheus.io/docs/practices/rules/): the *level* names the labels the rule
keeps (``stage``, which stands for latmap's ``stage`` and ``part`` labels, then any
``segments.labels``; ``le`` is implied by a ``_bucket`` metric), the *metric* is the
measured metric unchanged, the *operations* say what was applied, newest first.

For a classic histogram ``m`` measuring ``part`` (``wait`` or ``process``) of stage ``s``:

* ``stage:m_bucket:rate5m`` = ``sum by (le, <segments>) (rate(m_bucket{sel}[5m]))``,
  labelled ``stage="s", part="wait|process"``;
* ``stage:m:p99_5m`` = ``histogram_quantile(0.99, stage:m_bucket:rate5m{stage="s",part=...})``
  for each of the spec's percentiles (``p99_99_5m`` for p99.99). Percentiles are always
  computed from the summed bucket rates, never by averaging quantiles.

With traced stages, the flow of the live stream (``latmap serve --stream``'s series, issue 27),
labels ``stream`` and ``stage`` kept (``outcome`` too on the first):

* ``stream_stage_outcome:latmap_stage_items:rate5m``: items per second by outcome;
* ``stream_stage:latmap_stage_yield:ratio_rate5m``: passed / (passed + stopped);
* ``stream_stage:latmap_stage_first_pass_yield:ratio_rate5m``: 1 - (failed + retried) / in;
* ``stream_stage:latmap_stage_inventory:avg_over_time5m`` and ``...:max_over_time5m``: the
  items waiting, time-average and peak;
* ``stream_stage:latmap_stage_process_seconds:busy_rate5m``: the workers busy on average.

For the stages whose flow the spec measures with metrics (``errors:``, ``retries:``,
``inventory:``, ``workers:``; :mod:`dashboards.flow_metrics`), labelled ``stage="s"``:

* ``stage:<gauge>:avg_over_time5m`` and ``stage:<gauge>:max_over_time5m``: the queue
  gauge's time-average (summed over its series) and the peak of its sum;
* ``stage:latmap_first_pass_yield:ratio_rate5m``: 1 - error (or retry) rate / items rate;
* ``stage:latmap_utilisation:ratio_rate5m``: busy seconds per second / the spec's workers.

Values stay in the metric's own unit (a ``_milliseconds`` histogram gives milliseconds).
Summaries, raw queries and trace-measured stages cannot be recorded this way (summary
quantiles cannot be aggregated; a raw query's window is latmap's; traces are not in
Prometheus): :func:`not_recordable` lists them and :func:`render_rules` writes them as
comments at the top of the file, so nothing is dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

import yaml

from collectors.promql import escape_value, selector
from dashboards import flow_metrics as FM
from dashboards import queries as Q
from mapper.core.distribution import percentile_label
from mapper.core.durations import prom_duration
from mapper.core.errors import SpecError
from mapper.core.escape import yaml_comment
from mapper.core.names import STAGE_INVENTORY, STAGE_ITEMS, STAGE_PROCESS
from mapper.core.spec import Measurement, StreamSpec

__all__ = ["PART_LABEL", "STAGE_LABEL", "Rule", "flow_rules", "group_name", "not_recordable", "render_rules",
           "rules_for"]

#: Label naming the stage a recorded series measures.
STAGE_LABEL = "stage"
#: Label naming which part of the stage's hop it measures: ``wait`` or ``process``.
PART_LABEL = "part"
#: Default range of ``rate()`` in the recorded series (seconds): Prometheus's usual 5m.
DEFAULT_RATE_WINDOW = 300.0

_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_PARTS = ("wait", "process")


class Rule(NamedTuple):
    """One recording rule: the series name it writes, its PromQL, the labels it sets."""

    record: str
    expr: str
    labels: Mapping[str, str] = {}


def group_name(spec: StreamSpec) -> str:
    """The rule group's name: ``latmap-<stream>``, unique per stream in a rule file."""
    return f"latmap-{spec.name}"


def _check_label(name: str, where: str) -> None:
    if not _LABEL.match(name) or name.startswith("__"):
        raise SpecError(f"{where}: label name {name!r} is not valid in PromQL "
                        "(letters, digits and _, not starting with a digit or __)")


def _level(segment_labels: tuple[str, ...]) -> str:
    return "_".join((STAGE_LABEL, *segment_labels))


def _measured(spec: StreamSpec) -> list[tuple[str, str, Measurement]]:
    """Every measurement in Prometheus's format (a ``datadog`` source's are not)."""
    return [(s.name, part, m) for s in spec.stages for part in _PARTS
            if (m := getattr(s, part)) is not None and not _in_datadog(spec, m)]


def _in_datadog(spec: StreamSpec, m: Measurement) -> bool:
    src = spec.sources.get(m.source)
    return src is not None and src.kind == "datadog"


def not_recordable(spec: StreamSpec) -> list[str]:
    """One line per measurement that gets no rules, saying which and why."""
    out = [f"{s.name} {part}: {m.kind} {m.name} ({m.place}): measured in Datadog, which computes its "
           "percentiles itself; there is nothing for Prometheus to record"
           for s in spec.stages for part in _PARTS
           if (m := getattr(s, part)) is not None and _in_datadog(spec, m)]
    for stage, part, m in _measured(spec):
        if m.kind == "summary":
            out.append(f"{stage} {part}: summary {m.name} ({m.place}): summary quantiles "
                       "cannot be aggregated across instances")
        elif m.kind != "histogram":
            out.append(f"{stage} {part}: {m.kind} ({m.place}): a raw query is evaluated over "
                       "latmap's window, not recorded")
    for s in spec.stages:
        if s.traces is not None and s.process is None and s.wait is None:
            out.append(f"{s.name}: traces only ({s.traces.place}): spans are not in Prometheus")
    return out


def rules_for(spec: StreamSpec, rate_window: float = DEFAULT_RATE_WINDOW) -> list[Rule]:
    """The recording rules for every histogram measurement of ``spec``, in stage order.

    Raises :class:`SpecError` (with the measurement's ``file:line``) for a label or metric
    name that PromQL cannot express, or for a segment label that collides with latmap's.
    """
    segments = tuple(spec.segments.labels)
    for name in segments:
        _check_label(name, f"{spec.path}: segments.labels")
        if name in (STAGE_LABEL, PART_LABEL, "le"):
            raise SpecError(f"{spec.path}: segments.labels: {name!r} is reserved by the "
                            "recording rules (stage, part, le)")
    rng = prom_duration(rate_window)
    level = _level(segments)
    by = ", ".join(("le", *segments))
    rules: list[Rule] = []
    for stage, part, m in _measured(spec):
        if m.kind != "histogram":
            continue
        if not _METRIC.match(m.name) or ":" in m.name:
            raise SpecError(f"{m.place}: metric name {m.name!r} is not a valid exported metric name")
        for key in m.selector:
            _check_label(key, f"{m.place}: selector")
        bucket = f"{level}:{m.name}_bucket:rate{rng}"
        ours = {STAGE_LABEL: stage, PART_LABEL: part}
        rules.append(Rule(bucket, f"sum by ({by}) (rate({selector(m.name + '_bucket', m.selector)}[{rng}]))",
                          ours))
        match = ",".join(f'{k}="{escape_value(v)}"' for k, v in ours.items())
        for q in spec.percentiles:
            op = percentile_label(q).replace(".", "_")
            # labelled like its bucket rule: two stages sharing a histogram record two series, and
            # promtool's lint sees the rules apart
            rules.append(Rule(f"{level}:{m.name}:{op}_{rng}",
                              f"histogram_quantile({q:g}, {bucket}{{{match}}})", ours))
    return rules + flow_rules(spec, rate_window)


def flow_rules(spec: StreamSpec, rate_window: float = DEFAULT_RATE_WINDOW) -> list[Rule]:
    """The flow's recording rules (see the module docstring): from the series ``latmap serve
    --stream`` exports for the traced stages, and from the flow metrics the spec names; none
    when there is neither. The expressions are the dashboard's (:mod:`dashboards.queries`,
    :mod:`dashboards.flow_metrics`), over ``rate_window`` instead of Grafana's."""
    rng = prom_duration(rate_window)
    metered = _metered_flow_rules(spec, rng)
    if not Q.flow_stages(spec):
        return metered
    by = "stream, stage"
    return [
        Rule(f"stream_stage_outcome:{STAGE_ITEMS}:rate{rng}",
             Q.stage_items(spec, "passed|stopped|failed|retried", rng, "stream, stage, outcome")),
        Rule(f"stream_stage:{STAGE_ITEMS.replace('items', 'yield')}:ratio_rate{rng}", Q.flow_yield(spec, rng, by)),
        Rule(f"stream_stage:{STAGE_ITEMS.replace('items', 'first_pass_yield')}:ratio_rate{rng}",
             Q.first_pass_yield(spec, rng, by)),
        Rule(f"stream_stage:{STAGE_INVENTORY}:avg_over_time{rng}", Q.inventory(spec, "avg", rng, by)),
        Rule(f"stream_stage:{STAGE_INVENTORY}:max_over_time{rng}", Q.inventory(spec, "max", rng, by)),
        Rule(f"stream_stage:{STAGE_PROCESS}:busy_rate{rng}", Q.busy_workers(spec, rng, by)),
        *metered,
    ]


def _metered_flow_rules(spec: StreamSpec, rng: str) -> list[Rule]:
    """The rules of the flow the spec measures with metrics, one set per stage (``stage`` label)."""
    out: list[Rule] = []
    for s in FM.metered_flow_stages(spec):
        ours = {STAGE_LABEL: s.name}
        if s.inventory is not None and (mean := FM.inventory_mean(spec, s, rng)):
            out.append(Rule(f"{STAGE_LABEL}:{s.inventory.name}:avg_over_time{rng}", mean, ours))
            out.append(Rule(f"{STAGE_LABEL}:{s.inventory.name}:max_over_time{rng}",
                            FM.inventory_peak(spec, s, rng) or "", ours))
        if fpy := FM.first_pass_yield(spec, s, rng):
            out.append(Rule(f"{STAGE_LABEL}:latmap_first_pass_yield:ratio_rate{rng}", fpy, ours))
        if util := FM.utilisation(spec, s, rng):
            out.append(Rule(f"{STAGE_LABEL}:latmap_utilisation:ratio_rate{rng}", util, ours))
    return out


def render_rules(spec: StreamSpec, rate_window: float = DEFAULT_RATE_WINDOW,
                 interval: float | None = None) -> str:
    """The YAML text of a Prometheus rule file with one group for ``spec``.

    ``interval`` is the group's evaluation interval in seconds (``None``: Prometheus's
    global ``evaluation_interval``). Measurements that get no rules are listed as comments.
    """
    rules = rules_for(spec, rate_window)
    items = []
    for r in rules:
        item: dict[str, object] = {"record": r.record, "expr": r.expr}
        if r.labels:
            item["labels"] = dict(r.labels)
        items.append(item)
    group: dict[str, object] = {"name": group_name(spec)}
    if interval is not None:
        group["interval"] = prom_duration(interval)
    group["rules"] = items
    # comments hold names, paths and raw queries: one line each (yaml_comment), or a newline in
    # them would start YAML of its own
    about = f"Recording rules for value stream {spec.name!r}, generated by latmap from {spec.path}."
    head = [f"# {yaml_comment(about)}",
            "# Regenerate with `latmap rules`; edits here are overwritten."]
    skipped = not_recordable(spec)
    if skipped:
        head.append("# Not recordable (no rules generated):")
        head.extend(f"#   {yaml_comment(line)}" for line in skipped)
    body = yaml.safe_dump({"groups": [group]}, sort_keys=False, width=1_000_000,
                          allow_unicode=True)
    return "\n".join(head) + "\n" + body
