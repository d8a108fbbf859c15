"""Burn-rate alerts for latency objectives: the multi-window, multi-burn-rate rules of the
Google SRE workbook (ch. 5, "Alerting on SLOs"), from histogram bucket rates.

A latency objective ``q``-quantile <= ``T`` is a ratio objective: at most ``1 - q`` of the
observations may be above ``T`` (the *error budget*). The error ratio over a window is

    1 - rate(m_bucket{le="B"}[w]) / rate(m_count[w])

for a classic histogram, where ``B`` is the bucket bound at ``T``. When no bound sits on
``T`` the rule uses the bound just above it: observations between ``T`` and ``B`` count as
good, so the alert fires later than it should (it under-counts errors) and the rule's
annotation and a ``bucket-above-threshold`` check say so; ``latmap buckets`` says which bound
to add. A threshold above the largest finite bound cannot be alerted on (every observation
is "good" up to +Inf). Native histograms use ``1 - histogram_fraction(0, T, ...)`` and need
no bound at all (Prometheus >= 2.46; fraction interpolated inside the native bucket).

Alerts (burn rate = error ratio / budget; a budget window of ``period``, 30 days by default):

* **page** when 2% of the budget burns in 1h (burn ``0.02 * period / 1h`` = 14.4 for 30d) over
  the last 1h *and* 5m, or 5% in 6h (burn 6) over 6h *and* 30m;
* **ticket** when 10% burns in 3d (burn 1) over 3d *and* 6h.

The short windows (1/12 of the long ones) make an alert stop soon after the burn stops.

Which objectives get alerts: a stage's objective (the hop into it: wait + process) whose
stage is measured by exactly one Prometheus histogram (its wait or its process alone): the
error ratio of a sum of two histograms cannot be computed from their bucket rates. Everything
else is listed by :func:`not_alertable`, with the reason, never dropped silently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import yaml

from collectors.prometheus import PrometheusClient
from collectors.promql import escape_value, selector
from mapper.core.durations import format_duration, prom_duration
from mapper.core.errors import SourceError
from mapper.core.escape import go_template, yaml_comment
from mapper.core.model import Check
from mapper.core.quantiles import percentile_label
from mapper.core.spec import Measurement, Objective, StreamSpec, live_lead_time

__all__ = ["DEFAULT_POLICY", "VALUE_TEMPLATE", "AlertRule", "BurnWindow", "Layout", "ObjectiveSeries", "Policy",
           "Target", "alert_group", "alert_rules", "alert_targets", "bucket_layout_from", "fetch_layouts",
           "le_pattern", "not_alertable", "objective_series", "promtool_tests", "ratio_record", "to_yaml",
           "with_alert_group"]

#: The recorded error ratio of a hop over a window: ``stage:<metric>:latency_errors:ratio_rate<w>``.
RATIO = "stage:{metric}:latency_errors:ratio_rate{window}"
#: The one template latmap writes into an alert's description: the alert's error ratio.
VALUE_TEMPLATE = "{{ $value | humanizePercentage }}"


@dataclass(frozen=True)
class BurnWindow:
    """Alert at ``severity`` when ``budget_share`` of the error budget burns within ``long``
    seconds, checked over ``long`` and over ``short`` (both must burn)."""

    severity: str
    budget_share: float
    long: float
    short: float

    def burn_rate(self, period: float) -> float:
        return self.budget_share * period / self.long


@dataclass(frozen=True)
class Policy:
    """The budget window (``period``, seconds) and the burn windows; the workbook's by default."""

    period: float = 30 * 86400.0
    windows: tuple[BurnWindow, ...] = (
        BurnWindow("page", 0.02, 3600.0, 300.0),
        BurnWindow("page", 0.05, 6 * 3600.0, 1800.0),
        BurnWindow("ticket", 0.10, 3 * 86400.0, 6 * 3600.0),
    )


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Layout:
    """What a histogram looks like in Prometheus: its finite classic bucket bounds (seconds,
    in the metric's unit already converted), or ``native`` (no bounds needed)."""

    bounds: tuple[float, ...] = ()
    native: bool = False


@dataclass(frozen=True)
class Target:
    """One alertable objective: the stage, its one histogram, the bound the rule uses
    (``None`` for a native histogram) and whether that bound is above the threshold."""

    objective: Objective
    stage: str
    part: str
    owner: str | None
    measurement: Measurement
    bound: float | None
    conservative: bool


@dataclass(frozen=True)
class AlertRule:
    """A rule as Prometheus reads it: ``record`` or ``alert`` with ``expr``, labels, annotations."""

    expr: str
    record: str | None = None
    alert: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    for_: str | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"record": self.record} if self.record else {"alert": self.alert}
        out["expr"] = self.expr
        if self.for_:
            out["for"] = self.for_
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


def bucket_layout_from(series: Sequence[Mapping[str, str]], scale: float) -> Layout:
    """The layout from ``/api/v1/series`` answers for ``m_bucket`` (their ``le`` values) in
    seconds; no ``le`` at all means a native histogram."""
    les = {s["le"] for s in series if "le" in s}
    if not les:
        return Layout(native=bool(series))
    bounds = sorted(float(v) * scale for v in les if float(v) != math.inf)
    return Layout(tuple(bounds))


def le_pattern(bound: float) -> str:
    """A regex matching ``le`` as every client writes the bound: Go's ``1`` / ``0.25`` and
    Python's (and Prometheus 3's normalised) ``1.0``."""
    bound = float(f"{bound:.12g}")  # undo unit-conversion noise (250 * 0.001 / 0.001)
    forms = {repr(bound), f"{bound:.12g}"}
    if float(bound).is_integer():
        forms |= {str(int(bound)), f"{int(bound)}.0"}
    return "|".join(sorted(re.escape(f) for f in forms))


def _single_histogram(spec: StreamSpec, stage: str) -> tuple[str, Measurement] | str:
    if stage == "end_to_end":  # one histogram only when `latmap serve --stream` measures every stage
        lead = live_lead_time(spec)
        return ("lead", lead) if lead is not None else (
            "the lead time is not one histogram in Prometheus; alert on the per-hop budgets "
            "(`latmap budgets --write`), or trace every stage and run `latmap serve --stream`")
    s = spec.stage(stage)
    parts = [(p, m) for p in ("wait", "process") if (m := getattr(s, p)) is not None]
    if len(parts) != 1:
        return ("measured by a wait and a process histogram: the error ratio of their sum cannot be computed "
                "from bucket rates (alert on budgets per part instead)" if len(parts) == 2
                else "measured by traces only: spans are not in Prometheus")
    part, m = parts[0]
    kind = spec.sources[m.source].kind if m.source in spec.sources else ""
    if kind not in ("prometheus", "scrape") or m.kind != "histogram":
        return f"{m.kind} {m.name} ({m.place}) is not a Prometheus histogram: no bucket rates to count errors from"
    return part, m


def alert_targets(spec: StreamSpec, layouts: Mapping[tuple[str, str], Layout]) -> tuple[list[Target], list[Check]]:
    """Every alertable objective with its bound, and checks for conservative bounds and for
    objectives that cannot be alerted on (``not_alertable`` gives the same as lines)."""
    targets: list[Target] = []
    checks: list[Check] = []
    for o in spec.objectives:
        found = _single_histogram(spec, o.target)
        if isinstance(found, str):
            checks.append(Check("info", "objective-not-alertable",
                                f"objective {o.label} <= {o.threshold:g}s ({o.place}): {found}", o.target))
            continue
        part, m = found
        layout = layouts.get((o.target, part))
        if layout is None or (not layout.native and not layout.bounds):
            checks.append(Check("warning", "objective-not-alertable", (
                f"objective {o.label} <= {o.threshold:g}s ({o.place}): the bucket layout of {m.name} is unknown "
                "(no series in Prometheus?); give --prometheus URL so the rules can use its bounds"), o.target, part))
            continue
        owner = spec.owner if o.target == "end_to_end" else spec.stage(o.target).owner
        if layout.native:
            targets.append(Target(o, o.target, part, owner, m, None, False))
            continue
        above = [b for b in layout.bounds if b >= o.threshold * (1 - 1e-9)]
        if not above:
            checks.append(Check("warning", "objective-not-alertable", (
                f"objective {o.label} <= {o.threshold:g}s ({o.place}): above the largest finite bucket bound "
                f"{layout.bounds[-1]:g}s of {m.name}: every observation would count as good; add a bound at "
                f"{o.threshold:g}s (`latmap buckets`)"), o.target, part))
            continue
        bound = above[0]
        conservative = not math.isclose(bound, o.threshold, rel_tol=1e-9)
        if conservative:
            checks.append(Check("warning", "bucket-above-threshold", (
                f"objective {o.label} <= {o.threshold:g}s: {m.name} has no bucket bound at {o.threshold:g}s; its "
                f"burn-rate alerts count observations above {bound:g}s (the bound just above), so they fire late; "
                f"add a bound at {o.threshold:g}s (`latmap buckets`)"), o.target, part))
        targets.append(Target(o, o.target, part, owner, m, bound, conservative))
    return targets, checks


def not_alertable(checks: Sequence[Check]) -> list[str]:
    """The objectives without alerts, one line each (for the rule file's head and stderr)."""
    return [c.message for c in checks if c.code == "objective-not-alertable"]


def _ratio_expr(t: Target, window: float) -> str:
    m = t.measurement
    rng = prom_duration(window)
    if t.bound is None:  # native histogram: the fraction at or below the threshold
        native = selector(m.name, m.selector)
        return (f"1 - histogram_fraction(0, {t.objective.threshold / m.scale:.17g}, "
                f"sum(rate({native}[{rng}])))")
    le = f'le=~"{escape_value(le_pattern(t.bound / m.scale))}"'
    good = f"sum(rate({selector(m.name + '_bucket', m.selector, le)}[{rng}]))"
    total = f"sum(rate({selector(m.name + '_count', m.selector)}[{rng}]))"
    return f"1 - {good} / {total}"


def _labels(t: Target) -> dict[str, str]:
    return {"stage": t.stage, "part": t.part, "slo": percentile_label(t.objective.q),
            "threshold": f"{t.objective.threshold:g}"}


def ratio_record(t: Target, window: float) -> str:
    return RATIO.format(metric=t.measurement.name, window=prom_duration(window))


def alert_rules(targets: Sequence[Target], policy: Policy = DEFAULT_POLICY) -> list[AlertRule]:
    """The recording rules (one error ratio per objective and window) and the alerts
    (one page and one ticket alert per objective), in objective order."""
    out: list[AlertRule] = []
    for t in targets:
        labels = _labels(t)
        windows = sorted({policy.period} | {w for bw in policy.windows for w in (bw.long, bw.short)})
        out += [AlertRule(_ratio_expr(t, w), record=ratio_record(t, w), labels=tuple(labels.items()))
                for w in windows]
        match = ",".join(f'{k}="{escape_value(v)}"' for k, v in labels.items())
        budget = 1 - t.objective.q
        for severity in dict.fromkeys(bw.severity for bw in policy.windows):
            conds = []
            for bw in (w for w in policy.windows if w.severity == severity):
                factor = f"{bw.burn_rate(policy.period) * budget:.6g}"
                conds.append(f"({ratio_record(t, bw.long)}{{{match}}} > {factor} and "
                             f"{ratio_record(t, bw.short)}{{{match}}} > {factor})")
            # Prometheus expands annotations and alert labels as Go templates: names are literal text
            annotations = _annotations(t, severity, policy)
            alert_labels = {k: go_template(v) for k, v in _alert_labels(t, severity).items()}
            out.append(AlertRule(" or ".join(conds), alert=f"LatmapLatencyBurn{severity.capitalize()}",
                                 labels=tuple(alert_labels.items()), annotations=tuple(annotations.items()),
                                 for_="2m" if severity == "page" else "15m"))
    return out


def _alert_labels(t: Target, severity: str) -> dict[str, str]:
    """An alert's labels as the firing alert carries them (before :func:`go_template`)."""
    return {**_labels(t), "severity": severity, "owner": t.owner or "unowned"}


def _annotations(t: Target, severity: str, policy: Policy, literal: Callable[[str], str] = go_template,
                 value: str = VALUE_TEMPLATE) -> dict[str, str]:
    """An alert's annotations: the text around :data:`VALUE_TEMPLATE` through ``literal``
    (:func:`go_template` in the rule file, so a stage named ``b{{ x`` is text; the identity
    for the expanded text a promtool test expects, with ``value`` in place of the template)."""
    budget = 1 - t.objective.q
    threshold = format_duration(t.objective.threshold)
    desc = literal(f"The hop into {t.stage} is burning its latency error budget: more than "
                   f"{budget:.4g} of observations may be above {threshold} "
                   f"(objective {percentile_label(t.objective.q)} <= {threshold}, "
                   f"budget over {format_duration(policy.period)}). Error ratio over the long window: ")
    out = {"summary": literal(f"{t.stage}: latency {percentile_label(t.objective.q)} <= {threshold} "
                              f"is burning its budget ({severity})"),
           "description": f"{desc}{value}.",
           "hop": literal(f"{t.stage} ({t.part}, {t.measurement.name})"),
           "threshold": f"{t.objective.threshold:g}s"}
    if t.conservative and t.bound is not None:
        out["bucket"] = (f"no bucket bound at {t.objective.threshold:g}s: errors are counted above "
                         f"{t.bound:g}s (the bound just above), so this alert fires late; add a "
                         f"bound at {t.objective.threshold:g}s (latmap buckets)")
    return out


@dataclass(frozen=True)
class ObjectiveSeries:
    """The dashboard's view of one alertable objective, from the alert rules' recorded error
    ratios (so the panels and the alerts use the same expressions): the error budget left over
    the budget window, and the burn rate over each alert window (seconds -> PromQL)."""

    objective: Objective
    stage: str
    owner: str | None
    budget_remaining: str
    burn_rates: tuple[tuple[float, str], ...]


def objective_series(spec: StreamSpec, policy: Policy = DEFAULT_POLICY) -> list[ObjectiveSeries]:
    """One :class:`ObjectiveSeries` per stage objective on a one-histogram stage. Offline: the
    recorded series exist once the rules of ``latmap rules --alerts`` are loaded."""
    out = []
    for o in spec.objectives:
        found = _single_histogram(spec, o.target)
        if isinstance(found, str):
            continue
        part, m = found
        owner = spec.owner if o.target == "end_to_end" else spec.stage(o.target).owner
        t = Target(o, o.target, part, owner, m, None, False)
        match = ",".join(f'{k}="{escape_value(v)}"' for k, v in _labels(t).items())
        budget = f"{1 - o.q:.6g}"
        longs = sorted({bw.long for bw in policy.windows})
        out.append(ObjectiveSeries(
            o, o.target, t.owner,
            f"1 - {ratio_record(t, policy.period)}{{{match}}} / {budget}",
            tuple((w, f"{ratio_record(t, w)}{{{match}}} / {budget}") for w in longs)))
    return out


# --------------------------------------------------------------------------- files


def alert_group(spec: StreamSpec, targets: Sequence[Target], policy: Policy = DEFAULT_POLICY) -> dict[str, object]:
    """The alert rule group (``latmap-<stream>-alerts``) as Prometheus's rule-file YAML reads it."""
    return {"name": f"latmap-{spec.name}-alerts", "rules": [r.as_dict() for r in alert_rules(targets, policy)]}


def fetch_layouts(spec: StreamSpec, now: float, lookback: float = 86400.0) -> dict[tuple[str, str], Layout]:
    """Each alertable stage objective's histogram layout, read from its Prometheus source's
    series API: the ``le`` values of ``m_bucket``, or the native series ``m`` when there is no
    ``_bucket``. A ``scrape`` source has no series API: its layouts stay unknown (a check says so).
    """
    clients: dict[str, PrometheusClient] = {}
    out: dict[tuple[str, str], Layout] = {}
    for o in spec.objectives:
        found = _single_histogram(spec, o.target)
        if isinstance(found, str) or (o.target, found[0]) in out:
            continue
        part, m = found
        source = spec.sources[m.source]
        if source.kind != "prometheus":
            continue
        client = clients.setdefault(m.source, PrometheusClient(source))
        try:
            series = client.series(selector(m.name + "_bucket", m.selector), now - lookback, now)
            if not series:
                series = client.series(selector(m.name, m.selector), now - lookback, now)
        except SourceError as err:
            raise SourceError(f"{o.target} {part}: bucket bounds of {m.name}: {err}") from err
        out[(o.target, part)] = bucket_layout_from(series, m.scale)
    return out


def to_yaml(doc: Mapping[str, object]) -> str:
    """A rule or promtool test document as YAML (block style, keys in the order given)."""
    return str(yaml.safe_dump(dict(doc), sort_keys=False, width=1_000_000, allow_unicode=True))


def with_alert_group(recording_rules: str, group: Mapping[str, object], skipped: Sequence[str] = ()) -> str:
    """The rule file text of :func:`dashboards.rules.render_rules` with the alert group added
    as a second group, and the objectives without alerts listed as comments."""
    body = yaml.safe_dump({"groups": [dict(group)]}, sort_keys=False, width=1_000_000, allow_unicode=True)
    head = "".join(f"# not alertable: {yaml_comment(line)}\n" for line in skipped)
    return head + recording_rules.rstrip("\n") + "\n" + body.split("\n", 1)[1]


def promtool_tests(spec: StreamSpec, targets: Sequence[Target], rule_file: str,
                   policy: Policy = DEFAULT_POLICY) -> dict[str, object]:
    """A ``promtool test rules`` file: per classic-histogram objective, every alert firing on
    a synthetic burn (every observation above the bound) and none on a quiet hop (none above).

    Native histograms get no generated test (promtool's series notation for them needs
    Prometheus >= 2.50); their rules are checked by ``promtool check rules``.
    """
    tests: list[dict[str, object]] = []
    severities = list(dict.fromkeys(bw.severity for bw in policy.windows))
    longest_for = 15  # minutes, beyond every rule's `for`
    for t in targets:
        if t.bound is None:
            continue
        m = t.measurement
        bucket = selector(m.name + "_bucket", {**m.selector, "le": repr(float(f"{t.bound / m.scale:.12g}"))})
        count = selector(m.name + "_count", m.selector)
        for burning in (True, False):
            exp = []
            for severity in severities:
                alerts = []
                if burning and _can_fire(t, policy, severity):
                    # what the alert carries once expanded: the names as they are, 100% for $value
                    alerts.append({"exp_labels": _alert_labels(t, severity),
                                   "exp_annotations": _annotations(t, severity, policy, str, "100%")})
                exp.append({"eval_time": f"{longest_for + 10}m", "exp_alerts": alerts,
                            "alertname": f"LatmapLatencyBurn{severity.capitalize()}"})
            tests.append({
                "name": f"{t.stage} {percentile_label(t.objective.q)} <= {t.objective.threshold:g}s: "
                        + ("a burn fires every alert" if burning else "a quiet hop fires none"),
                "interval": "1m",
                "input_series": [
                    {"series": bucket, "values": "0+0x40" if burning else "0+100x40"},
                    {"series": count, "values": "0+100x40"},
                ],
                "alert_rule_test": exp,
            })
    return {"rule_files": [rule_file], "evaluation_interval": "1m", "tests": tests}


def _can_fire(t: Target, policy: Policy, severity: str) -> bool:
    """An alert whose burn threshold is at or above an error ratio of 1 can never fire."""
    budget = 1 - t.objective.q
    return any(bw.burn_rate(policy.period) * budget < 1 for bw in policy.windows if bw.severity == severity)
