"""Prometheus's PromQL test scripts (``promqltest``), read for their ``histogram_quantile`` cases.

Prometheus checks its own ``histogram_quantile`` with scripts such as
``promql/promqltest/testdata/histograms.test``: ``load`` blocks of series in an expanding
notation, ``clear``, and ``eval instant at <t> <expr>`` followed by the expected result.
Those expectations are the reference latmap's histogram quantiles are compared with, so this
module reads the scripts, keeps the cases whose expression is
``histogram_quantile(<number>, <inner>)``, and evaluates ``<inner>`` at the eval time.

Only the subset those two files use is supported, and anything else raises
:class:`Unsupported` (never a silent guess):

* commands: ``load``/``load_with_nhcb <interval>``, ``clear``, ``eval[_fail|_warn|_ordered|_info]
  instant at <t> <expr>`` with ``expect ...`` lines and expected series; ``eval range`` is read
  and skipped. As in Prometheus, a blank or comment line ends a block.
* series values: ``a``, ``a+bxN``/``a-bxN`` (N+1 values), ``axN``, ``_``/``_xN`` gaps, ``stale``,
  and native histogram literals ``{{schema:0 sum:5 count:4 buckets:[1 2 1]}}`` with ``xN`` and
  ``+{{...}}xN``/``-{{...}}xN`` expansions (keys ``schema``, ``sum``, ``count``, ``z_bucket``,
  ``z_bucket_w``, ``buckets``, ``n_buckets``, ``offset``, ``n_offset``, ``custom_values``,
  ``counter_reset_hint``). ``load_with_nhcb`` also stores each classic histogram as a native
  histogram with custom buckets (NHCB) under the name without ``_bucket``, as Prometheus does.
* inner expressions: selectors (``name{l="v", l=~"re"}``, ``{__name__=~"re"}``),
  ``rate``/``increase(selector[range])``, and ``sum``/``avg`` with ``by (...)``. Semantics
  are Prometheus 3's: selectors look back 5 minutes, ranges are left-open, ``rate``
  extrapolates like ``extrapolatedRate`` (histograms use the factor of their count).

The test module checks this evaluator against a real Prometheus for every classic case, so
the native-histogram cases, which only this evaluator can compute, rest on checked code.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

#: How far back an instant selector looks for a sample (Prometheus's default, seconds).
LOOKBACK = 300.0

Labels = tuple[tuple[str, str], ...]


class Unsupported(Exception):
    """Notation or expression outside the subset this module reads; the case is not evaluated."""


class ScriptError(ValueError):
    """The script itself is malformed; the message starts with ``file:line:``."""


def make_labels(pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> Labels:
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return tuple(sorted(items))


def without(labels: Labels, *names: str) -> Labels:
    return tuple((k, v) for k, v in labels if k not in names)


def format_labels(labels: Labels) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}"


# --------------------------------------------------------------------------- native histograms

CUSTOM_SCHEMA = -53


def _bound(index: int, schema: int) -> float:
    """Upper bound of exponential bucket ``index``: 2**(index * 2**-schema), kept exact where
    possible (the integer part of the exponent goes through ldexp)."""
    if schema <= 0:
        return math.ldexp(1.0, index << -schema)
    per = 1 << schema
    return math.ldexp(2.0 ** ((index % per) / per), index // per)


@dataclass(frozen=True)
class Histogram:
    """A float native histogram as the test notation writes it: bucket index -> count.

    Exponential buckets (``schema`` -4..8): positive bucket ``i`` is
    ``(2**((i-1)*2**-schema), 2**(i*2**-schema)]``, negative bucket ``i`` its mirror image.
    Custom buckets (``schema`` -53): bucket ``i`` is ``(custom_values[i-1], custom_values[i]]``,
    open to -Inf/+Inf at the ends.
    """

    schema: int = 0
    count: float = 0.0
    sum: float = 0.0
    zero_count: float = 0.0
    zero_threshold: float = 0.0
    positive: tuple[tuple[int, float], ...] = ()
    negative: tuple[tuple[int, float], ...] = ()
    custom_values: tuple[float, ...] = ()
    counter_reset_hint: str = "unknown"

    @property
    def custom(self) -> bool:
        return self.schema == CUSTOM_SCHEMA

    def to_schema(self, schema: int) -> Histogram:
        """The same histogram at a lower resolution (index mapping as Prometheus's targetIdx)."""
        if schema == self.schema or self.custom:
            return self
        shift = self.schema - schema
        if shift < 0:
            raise Unsupported(f"cannot raise the resolution from schema {self.schema} to {schema}")

        def reduce(buckets: tuple[tuple[int, float], ...]) -> tuple[tuple[int, float], ...]:
            out: dict[int, float] = {}
            for i, c in buckets:
                j = ((i - 1) >> shift) + 1
                out[j] = out.get(j, 0.0) + c
            return tuple(sorted(out.items()))

        return replace(self, schema=schema, positive=reduce(self.positive), negative=reduce(self.negative))

    def combine(self, other: Histogram, sign: float = 1.0) -> Histogram:
        """``self + sign * other`` at the lower of the two resolutions (Add/Sub in Prometheus)."""
        if self.custom != other.custom:
            raise Unsupported("mix of exponential and custom buckets")
        if self.custom and self.custom_values != other.custom_values:
            raise Unsupported("custom buckets with different bounds")
        if self.zero_threshold != other.zero_threshold and (self.zero_count or other.zero_count):
            raise Unsupported("zero buckets of different widths")
        schema = min(self.schema, other.schema)
        a, b = self.to_schema(schema), other.to_schema(schema)

        def add(x: tuple[tuple[int, float], ...], y: tuple[tuple[int, float], ...]) -> tuple[tuple[int, float], ...]:
            out = dict(x)
            for i, c in y:
                out[i] = out.get(i, 0.0) + sign * c
            return tuple(sorted(out.items()))

        return replace(
            a, count=a.count + sign * b.count, sum=a.sum + sign * b.sum,
            zero_count=a.zero_count + sign * b.zero_count,
            zero_threshold=max(a.zero_threshold, b.zero_threshold),
            positive=add(a.positive, b.positive), negative=add(a.negative, b.negative),
        )

    def scale(self, factor: float) -> Histogram:
        return replace(
            self, count=self.count * factor, sum=self.sum * factor, zero_count=self.zero_count * factor,
            positive=tuple((i, c * factor) for i, c in self.positive),
            negative=tuple((i, c * factor) for i, c in self.negative),
        )

    def api_buckets(self) -> list[tuple[int, float, float, float]]:
        """Buckets as Prometheus's HTTP API sends them: ``(rule, lower, upper, count)``, ascending.

        Empty buckets are left out and buckets overlapping the zero bucket are clipped to it,
        as ``AllBucketIterator`` and ``jsonutil.MarshalHistogram`` do. Rules: 0 = (lower, upper],
        1 = [lower, upper), 3 = the zero bucket [lower, upper].
        """
        out: list[tuple[int, float, float, float]] = []
        if self.custom:
            cv = self.custom_values
            for i, c in self.positive:
                lo = cv[i - 1] if i > 0 else -math.inf
                hi = cv[i] if i < len(cv) else math.inf
                out.append((0, lo, hi, c))
            return [b for b in out if b[3] != 0]
        zt = self.zero_threshold
        for i, c in sorted(self.negative, reverse=True):
            lo, hi = -_bound(i, self.schema), -_bound(i - 1, self.schema)
            out.append((1, lo, -zt if -zt < hi < 0 else hi, c))
        if self.zero_count > 0:
            out.append((3, -zt, zt, self.zero_count))
        for i, c in self.positive:
            lo, hi = _bound(i - 1, self.schema), _bound(i, self.schema)
            out.append((0, zt if 0 < lo < zt else lo, hi, c))
        return [b for b in out if b[3] != 0]


_HIST_FIELD = re.compile(r"(\w+):\s*(\[[^\]]*\]|[^\s\]]+)")


def parse_histogram(text: str) -> Histogram:
    """``{{schema:0 sum:5 count:4 buckets:[1 2 1]}}`` -> :class:`Histogram`."""
    body = text.strip()[2:-2]
    fields = dict(_HIST_FIELD.findall(body))
    known = {"schema", "sum", "count", "z_bucket", "z_bucket_w", "buckets", "n_buckets",
             "offset", "n_offset", "custom_values", "counter_reset_hint"}
    if set(fields) - known:
        raise Unsupported(f"histogram keys {sorted(set(fields) - known)}")

    def floats(key: str) -> list[float]:
        return [parse_number(x) for x in fields.get(key, "[]").strip("[]").split()]

    def spans(key: str, offset_key: str) -> tuple[tuple[int, float], ...]:
        start = int(fields.get(offset_key, "0"))
        return tuple((start + k, c) for k, c in enumerate(floats(key)))

    return Histogram(
        schema=int(fields.get("schema", "0")),
        count=parse_number(fields.get("count", "0")),
        sum=parse_number(fields.get("sum", "0")),
        zero_count=parse_number(fields.get("z_bucket", "0")),
        zero_threshold=parse_number(fields.get("z_bucket_w", "0")),
        positive=spans("buckets", "offset"),
        negative=spans("n_buckets", "n_offset"),
        custom_values=tuple(floats("custom_values")),
        counter_reset_hint=fields.get("counter_reset_hint", "unknown"),
    )


# --------------------------------------------------------------------------- values and series

_NUM = r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[Ii]nf(?:inity)?|NaN|nan)"
_NUM_ITEM = re.compile(rf"({_NUM})(?:([+-])((?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))?(?:x(\d+))?")
_ITEM = re.compile(
    r"(?P<hist>\{\{[^}]*\}\})(?:(?P<op>[+-])(?P<inc>\{\{[^}]*\}\}))?(?:x(?P<hn>\d+))?(?=\s|$)"
    r"|_(?:x(?P<gn>\d+))?(?=\s|$)"
    r"|(?P<stale>stale)(?=\s|$)"
    r"|(?P<num>\S+)"
)
_METRIC = re.compile(r'\s*([A-Za-z_:][\w:]*)?\s*(\{(?!\{)(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?')
_LABEL = re.compile(r'([A-Za-z_]\w*)\s*=\s*"((?:[^"\\]|\\.)*)"')


class Gap(Enum):
    """A ``_`` in a series: no sample at that step."""

    GAP = 0


#: A sample value: a float, a native histogram, or ``None`` for a stale marker.
Value = float | Histogram | None


def parse_number(text: str) -> float:
    """A PromQL number literal (``1``, ``.2``, ``1e-3``, ``+Inf``, ``NaN``, ``0x1f``)."""
    try:
        return float(text)
    except ValueError:
        return float(int(text, 0))


def unquote(text: str) -> str:
    """A Go double-quoted string's content (``\\\\d`` -> ``\\d``)."""
    return codecs.decode(text, "unicode_escape") if "\\" in text else text


def expand_values(text: str) -> list[Value | Gap]:
    """The values of one series line, expanded (``0+5x2`` -> ``0, 5, 10``)."""
    out: list[Value | Gap] = []
    for m in _ITEM.finditer(text.strip()):
        if m["hist"]:
            base = parse_histogram(m["hist"])
            n = int(m["hn"]) if m["hn"] else None
            if m["inc"]:
                if n is None:
                    raise Unsupported(f"{m[0]!r}: histogram increment without xN")
                inc, sign = parse_histogram(m["inc"]), (1.0 if m["op"] == "+" else -1.0)
                if base.schema > inc.schema:
                    raise Unsupported(f"cannot merge from schema {inc.schema} to {base.schema}")
                cur = base
                out.append(cur)
                for _ in range(n):
                    cur = cur.combine(inc, sign)
                    out.append(cur)
            else:
                out.extend([base] * (n + 1 if n is not None else 1))
        elif m[0].startswith("_"):
            out.extend([Gap.GAP] * (int(m["gn"]) if m["gn"] else 1))
        elif m["stale"]:
            out.append(None)
        else:
            num = _NUM_ITEM.fullmatch(m["num"])
            if not num:
                raise Unsupported(f"series value {m['num']!r}")
            start, op, step, times = num.groups()
            value = parse_number(start)
            if times is None:
                if op:
                    raise Unsupported(f"series value {m['num']!r}")
                out.append(value)
                continue
            delta = 0.0 if not op else parse_number(step) * (1 if op == "+" else -1)
            for _ in range(int(times) + 1):
                out.append(value)
                value += delta  # accumulated like Prometheus, for identical rounding
    return out


def parse_metric(text: str) -> tuple[Labels, str]:
    """``name{l="v", ...} rest`` -> (labels including ``__name__``, rest of the line)."""
    m = _METRIC.match(text)
    if not m or not (m[1] or m[2]):
        raise Unsupported(f"not a series: {text[:60]!r}")
    pairs = [(k, unquote(v)) for k, v in _LABEL.findall(m[2] or "")]
    return make_labels(pairs + ([("__name__", m[1])] if m[1] else [])), text[m.end():]


@dataclass(frozen=True)
class Series:
    """One loaded series; ``times`` in seconds from the test's start; ``Gap``s already dropped."""

    labels: Labels
    times: tuple[float, ...]
    values: tuple[Value, ...]
    #: Why the values could not be read (the series is unusable, the script is still fine).
    error: str | None = None


def load_series(text: str, interval: float) -> Series:
    labels, rest = parse_metric(text)
    try:
        values = expand_values(rest)
    except Unsupported as err:
        return Series(labels, (), (), str(err))
    kept = [(i * interval, v) for i, v in enumerate(values) if not isinstance(v, Gap)]
    return Series(labels, tuple(t for t, _ in kept), tuple(v for _, v in kept))


@dataclass
class _Classic:
    """One classic histogram at one time, collected series by series (``convertnhcb``)."""

    buckets: dict[float, float] = field(default_factory=dict)
    count: float | None = None
    sum: float = 0.0

    def native(self, where: Labels) -> Histogram:
        bounds = sorted(self.buckets)
        cum = [self.buckets[b] for b in bounds]
        if any(b < a for a, b in itertools.pairwise(cum)):
            raise Unsupported(f"{format_labels(where)}: bucket counts are not cumulative")
        count = self.count if self.count is not None else (cum[-1] if cum else 0.0)
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
            cum.append(count)
        counts = [c - p for c, p in zip(cum, [0.0, *cum[:-1]], strict=True)]
        return Histogram(schema=CUSTOM_SCHEMA, count=count, sum=self.sum,
                         positive=tuple(enumerate(counts)), custom_values=tuple(bounds[:-1]))


def nhcb_series(series: Sequence[Series]) -> list[Series]:
    """The native histograms with custom buckets ``load_with_nhcb`` adds for classic ones.

    As Prometheus's ``convertnhcb``: per base name (``_bucket``/``_count``/``_sum`` cut off,
    ``le`` dropped) and timestamp, buckets are collected by bound (a repeated bound is
    ignored), the count defaults to the highest bucket's, a missing ``+Inf`` bucket is added.
    """
    groups: dict[Labels, dict[float, _Classic]] = {}
    for s in series:
        name = dict(s.labels).get("__name__", "")
        suffix = next((x for x in ("_bucket", "_count", "_sum") if name.endswith(x)), None)
        if suffix is None or s.error:
            continue
        bound = math.nan
        if suffix == "_bucket":
            with contextlib.suppress(ValueError):
                bound = parse_number(dict(s.labels).get("le", ""))
            if math.isnan(bound):
                continue  # Prometheus skips a bucket whose le is not a number
        base = make_labels([*without(s.labels, "__name__", "le"), ("__name__", name[: -len(suffix)])])
        per_t = groups.setdefault(base, {})
        for t, v in zip(s.times, s.values, strict=True):
            if isinstance(v, float):
                h = per_t.setdefault(t, _Classic())
                if suffix == "_bucket":
                    h.buckets.setdefault(bound, v)
                elif suffix == "_count":
                    h.count = v
                else:
                    h.sum = v
    return [Series(base, tuple(sorted(per_t)), tuple(per_t[t].native(base) for t in sorted(per_t)))
            for base, per_t in groups.items()]


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Load:
    line: int
    interval: float
    with_nhcb: bool
    series: tuple[Series, ...]


@dataclass(frozen=True)
class Clear:
    line: int


@dataclass(frozen=True)
class Expected:
    """One expected output series; ``value`` is ``None`` when a histogram is expected."""

    labels: Labels
    value: float | None
    text: str


@dataclass(frozen=True)
class Eval:
    line: int
    time: float
    expr: str
    modifier: str  # "", "fail", "warn", "ordered" or "info"
    expects: tuple[str, ...]  # the ``expect ...`` lines, without "expect "
    expected: tuple[Expected, ...]
    is_range: bool = False

    @property
    def fails(self) -> bool:
        return self.modifier == "fail" or any(e.split()[0] == "fail" for e in self.expects)

    @property
    def warns(self) -> bool:
        return self.modifier == "warn" or any(e.split()[0] == "warn" for e in self.expects)


Command = Load | Clear | Eval

_DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?")
_UNITS = (365 * 86400.0, 7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0, 0.001)
_LOAD = re.compile(r"load(?:_(with_nhcb))?\s+(\S+)")
_EVAL = re.compile(r"eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(\S+))?\s+(.+)")
_EVAL_RANGE = re.compile(r"eval(?:_(fail|warn|info))?\s+range\s+")


def parse_duration(text: str) -> float:
    """A Prometheus duration (``5m``, ``1m30s``, ``0``) in seconds."""
    if text == "0":
        return 0.0
    m = _DURATION.fullmatch(text)
    if not m or not any(m.groups()):
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(g) * u for g, u in zip(m.groups(), _UNITS, strict=True) if g)


def parse(lines: Iterable[str], name: str = "<script>") -> Iterator[Command]:
    """The commands of a test script, in order, read line by line; errors name ``name:line``."""
    block: list[tuple[int, str]] = []
    for lineno, raw in enumerate(itertools.chain(lines, [""]), start=1):
        text = raw.strip()
        if text.startswith("#"):
            text = ""  # as in Prometheus, a comment ends a block
        if not text:
            if block:
                try:
                    yield _command(block)
                except ValueError as err:
                    raise ScriptError(f"{name}:{block[0][0]}: {err}") from err
            block = []
        elif block:
            block.append((lineno, text))
        elif text.split()[0].lower() == "clear":
            yield Clear(lineno)
        elif text.split()[0].lower().startswith(("load", "eval")):
            block = [(lineno, text)]
        else:
            raise ScriptError(f"{name}:{lineno}: unknown command {text[:40]!r}")


def _command(block: list[tuple[int, str]]) -> Command:
    (line, head), body = block[0], block[1:]
    if m := _LOAD.fullmatch(head):
        interval = parse_duration(m[2])
        return Load(line, interval, bool(m[1]), tuple(load_series(t, interval) for _, t in body))
    if _EVAL_RANGE.match(head):
        return Eval(line, 0.0, head, "", (), (), is_range=True)
    m = _EVAL.fullmatch(head)
    if not m:
        raise ValueError(f"unknown command {head[:40]!r}")
    expects: list[str] = []
    expected: list[Expected] = []
    for _, text in body:
        if text.split()[0] == "expect":
            expects.append(text[len("expect"):].strip())
            continue
        try:
            expected.append(Expected((), parse_number(text), text))  # a scalar result
            continue
        except ValueError:
            pass
        labels, rest = parse_metric(text)
        try:
            values = expand_values(rest)
        except Unsupported:
            values = [None]  # e.g. a range vector of histograms: no float to compare with
        value = values[0] if len(values) == 1 else None
        expected.append(Expected(labels, value if isinstance(value, float) else None, rest.strip()))
    return Eval(line, parse_duration(m[2] or "0"), m[3].strip(), m[1] or "", tuple(expects), tuple(expected))


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Storage:
    """The series loaded since the last ``clear``; ``epoch`` counts the ``clear``s."""

    epoch: int = 0
    series: tuple[Series, ...] = ()

    def add(self, load: Load) -> Storage:
        new = list(load.series) + (nhcb_series(load.series) if load.with_nhcb else [])
        by_labels = {s.labels: s for s in self.series}
        for s in new:
            old = by_labels.get(s.labels)
            if old is not None and not (old.error or s.error):
                merged = dict(zip(old.times, old.values, strict=True))
                merged.update(zip(s.times, s.values, strict=True))
                s = Series(s.labels, tuple(sorted(merged)), tuple(merged[t] for t in sorted(merged)))
            by_labels[s.labels] = s
        return Storage(self.epoch, tuple(by_labels.values()))


@dataclass(frozen=True)
class QuantileCase:
    """One ``eval instant at <time> histogram_quantile(<q>, <inner>)`` with what it saw loaded."""

    file: str
    eval: Eval
    q: float
    q_text: str
    inner: str
    storage: Storage = field(repr=False)

    @property
    def id(self) -> str:
        return f"{self.file}:{self.eval.line} q={self.q_text}"


_QUANTILE_CALL = re.compile(r"histogram_quantile\s*\(\s*([^,()]+?)\s*,(.*)\)", re.S)


def quantile_call(expr: str) -> tuple[float, str, str] | None:
    """``histogram_quantile(<number>, <inner>)`` -> (q, q as written, inner), else ``None``.

    ``<number>`` may be a quotient (``5./6.``), which Prometheus folds to a float the same way.
    """
    m = _QUANTILE_CALL.fullmatch(expr.strip())
    if not m or not _balanced(m[2]):
        return None
    parts = m[1].split("/")
    if len(parts) > 2:
        return None
    try:
        q = parse_number(parts[0].strip())
        if len(parts) == 2:
            q /= parse_number(parts[1].strip())
    except ValueError:
        return None
    return q, m[1].strip(), m[2].strip()


def _balanced(text: str) -> bool:
    depth = 0
    for ch in re.sub(r'"(?:[^"\\]|\\.)*"', '""', text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def quantile_cases(commands: Iterable[Command], file: str) -> Iterator[QuantileCase]:
    """The ``histogram_quantile`` cases of a script, each with the storage it evaluates on."""
    storage = Storage()
    for cmd in commands:
        if isinstance(cmd, Clear):
            storage = Storage(storage.epoch + 1)
        elif isinstance(cmd, Load):
            storage = storage.add(cmd)
        elif not cmd.is_range and (call := quantile_call(cmd.expr)):
            yield QuantileCase(file, cmd, *call, storage)


# The evaluator lives in tests/promqleval.py; re-exported so callers need one module.
from tests.promqleval import (  # noqa: E402
    Aggregate,
    Node,
    RangeFunction,
    Sample,
    Selector,
    evaluate,
    parse_expr,
)

__all__ = ["Aggregate", "Node", "RangeFunction", "Sample", "Selector", "evaluate", "parse_expr"]
