"""A tiny PromQL evaluator for the inner expressions of Prometheus's histogram_quantile cases.

Selectors, ``rate``/``increase`` over a range, and ``sum``/``avg`` with ``by``, with Prometheus 3
semantics (5-minute lookback, left-open ranges, ``extrapolatedRate``). Split from
:mod:`tests.promqltest`, which reads the scripts; the test module checks this evaluator
against a real Prometheus for every classic case.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

# promqltest imports this module at its very end, so these names exist by then.
from tests.promqltest import (
    LOOKBACK,
    Histogram,
    Labels,
    Series,
    Storage,
    Unsupported,
    format_labels,
    parse_duration,
    unquote,
    without,
)

# --------------------------------------------------------------------------- a tiny evaluator


@dataclass(frozen=True)
class Selector:
    matchers: tuple[tuple[str, str, str], ...]

    def matches(self, labels: Labels) -> bool:
        have = dict(labels)
        for name, op, value in self.matchers:
            got = have.get(name, "")
            ok = {"=": got == value, "!=": got != value}.get(op)
            if ok is None:
                ok = re.fullmatch(value, got) is not None
                ok = ok if op == "=~" else not ok
            if not ok:
                return False
        return True


@dataclass(frozen=True)
class RangeFunction:
    name: str  # "rate" or "increase"
    selector: Selector
    range: float


@dataclass(frozen=True)
class Aggregate:
    op: str  # "sum" or "avg"
    by: tuple[str, ...]
    expr: Node


Node = Selector | RangeFunction | Aggregate

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>=~|!~|!=|=)|(?P<punct>[(){}\[\],])'
    r"|(?P<dur>\d+[a-z]+(?:\d+[a-z]+)*)|(?P<word>[A-Za-z_:][\w:]*))"
)


def parse_expr(text: str) -> Node:
    """Parse the supported inner-expression subset; anything else raises :class:`Unsupported`."""
    tokens: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Unsupported(f"cannot read {text[pos:pos + 20]!r}")
        tokens.append(m[0].strip())
        pos = m.end()
    node, rest = _parse_node(tokens)
    if rest:
        raise Unsupported(f"{text!r}: cannot evaluate {' '.join(rest)!r}")
    return node


def _parse_node(tok: list[str]) -> tuple[Node, list[str]]:
    if tok and tok[0] in ("sum", "avg"):
        op, tok = tok[0], tok[1:]
        by: tuple[str, ...] = ()
        if tok[:1] in (["by"], ["without"]):
            by, tok = _grouping(tok)
        if tok[:1] != ["("]:
            raise Unsupported(f"{op} without (")
        inner, tok = _parse_node(tok[1:])
        if tok[:1] != [")"]:
            raise Unsupported(f"{op}(...) not closed")
        tok = tok[1:]
        if tok[:1] in (["by"], ["without"]):
            by, tok = _grouping(tok)
        return Aggregate(op, by, inner), tok
    if tok[:2] in (["rate", "("], ["increase", "("]):
        sel, tok2 = _selector(tok[2:])
        if len(tok2) < 4 or tok2[0] != "[" or tok2[2] != "]" or tok2[3] != ")":
            raise Unsupported(f"{tok[0]} needs selector[range]")
        return RangeFunction(tok[0], sel, parse_duration(tok2[1])), tok2[4:]
    return _selector(tok)


def _grouping(tok: list[str]) -> tuple[tuple[str, ...], list[str]]:
    if tok[0] == "without":
        raise Unsupported("without(...)")
    end = tok.index(")")
    return tuple(t for t in tok[2:end] if t != ","), tok[end + 1:]


def _selector(tok: list[str]) -> tuple[Selector, list[str]]:
    matchers: list[tuple[str, str, str]] = []
    if tok and re.fullmatch(r"[A-Za-z_:][\w:]*", tok[0]):
        matchers.append(("__name__", "=", tok[0]))
        tok = tok[1:]
    if tok[:1] == ["{"]:
        end = tok.index("}")
        body = [t for t in tok[1:end] if t != ","]
        if len(body) % 3:
            raise Unsupported(f"label matchers {' '.join(body)!r}")
        for i in range(0, len(body), 3):
            matchers.append((body[i], body[i + 1], unquote(body[i + 2][1:-1])))
        tok = tok[end + 1:]
    if not matchers:
        raise Unsupported(f"expected a selector at {' '.join(tok[:4])!r}")
    return Selector(tuple(matchers)), tok


@dataclass(frozen=True)
class Sample:
    labels: Labels
    value: float | Histogram


def evaluate(node: Node, storage: Storage, t: float) -> list[Sample]:
    """The instant vector ``node`` gives at ``t`` (seconds from the test's start)."""
    if isinstance(node, Selector):
        out = []
        for s in _matching(node, storage):
            recent = [(ts, v) for ts, v in zip(s.times, s.values, strict=True) if t - LOOKBACK < ts <= t]
            if recent and recent[-1][1] is not None:
                out.append(Sample(s.labels, recent[-1][1]))
        return out
    if isinstance(node, RangeFunction):
        out = []
        for s in _matching(node.selector, storage):
            window = [(ts, v) for ts, v in zip(s.times, s.values, strict=True)
                      if t - node.range < ts <= t and v is not None]  # stale markers are not samples
            value = _extrapolated(window, t, node.range, node.name == "rate")
            if value is not None:
                out.append(Sample(without(s.labels, "__name__"), value))
        return out
    groups: dict[Labels, list[float | Histogram]] = {}
    for sample in evaluate(node.expr, storage, t):
        key = tuple((k, v) for k, v in sample.labels if k in node.by)
        groups.setdefault(key, []).append(sample.value)
    out = []
    for key, values in groups.items():
        total = _sum(values)
        if total is not None:
            out.append(Sample(key, _scale(total, 1.0 / len(values)) if node.op == "avg" else total))
    return out


def _matching(selector: Selector, storage: Storage) -> list[Series]:
    found = [s for s in storage.series if selector.matches(s.labels)]
    for s in found:
        if s.error:
            raise Unsupported(f"{format_labels(s.labels)}: {s.error}")
    return found


def _sum(values: list[float | Histogram]) -> float | Histogram | None:
    """Floats add up; histograms add up; a mix is dropped (Prometheus warns and drops it)."""
    floats = [v for v in values if isinstance(v, float)]
    hists = [v for v in values if isinstance(v, Histogram)]
    if len(floats) == len(values):
        return math.fsum(floats)
    if len(hists) == len(values):
        total = hists[0]
        for h in hists[1:]:
            total = total.combine(h)
        return total
    return None


def _scale(value: float | Histogram, factor: float) -> float | Histogram:
    return value.scale(factor) if isinstance(value, Histogram) else value * factor


def _extrapolated(window: Sequence[tuple[float, float | Histogram]], t: float, rng: float,
                  is_rate: bool) -> float | Histogram | None:
    """``rate``/``increase`` of a counter over (t - rng, t], as Prometheus's extrapolatedRate.

    Histograms are scaled by the factor their count gives, as Prometheus does.
    """
    if len(window) < 2:
        return None
    floats = [v for _, v in window if isinstance(v, float)]
    hists = [v for _, v in window if isinstance(v, Histogram)]
    delta: float | Histogram
    if len(floats) == len(window):
        delta = floats[-1] - floats[0] + sum(p for p, c in itertools.pairwise(floats) if c < p)
        first, total = floats[0], delta
    elif len(hists) == len(window):
        if any(c.count < p.count for p, c in itertools.pairwise(hists)):
            raise Unsupported("counter reset in a native histogram")
        delta = hists[-1].combine(hists[0], -1.0)
        first, total = hists[0].count, delta.count
    else:
        return None  # mixed floats and histograms: Prometheus warns and drops the series
    first_t, last_t = window[0][0], window[-1][0]
    to_start, to_end = first_t - (t - rng), t - last_t
    sampled = last_t - first_t
    avg = sampled / (len(window) - 1)
    if to_start >= avg * 1.1:
        to_start = avg / 2
    if total > 0 and first >= 0:
        to_start = min(to_start, sampled * (first / total))  # no extrapolation below zero
    if to_end >= avg * 1.1:
        to_end = avg / 2
    factor = (sampled + to_start + to_end) / sampled
    return _scale(delta, factor / rng if is_rate else factor)
