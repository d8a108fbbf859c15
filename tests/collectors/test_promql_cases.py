"""latmap's histogram quantiles against every ``histogram_quantile`` case in Prometheus's own tests.

Licence: the fixture files ``histograms.test`` and ``native_histograms.test`` are copied
verbatim from prometheus/prometheus (``promql/promqltest/testdata/``), Apache-2.0, Copyright
The Prometheus Authors; see ``tests/fixtures/PROVENANCE.md`` for the commits. They are read
from ``tests/fixtures/prometheus/`` (copies, with the Apache-2.0 licence beside them).

How the inner expression's buckets are obtained (the robust way for each kind):

* classic histograms (float ``_bucket`` series): a **real Prometheus** evaluates the inner
  expression. The float series of every ``clear`` epoch holding a classic case are backfilled
  with promtool, each epoch at its own time (``BASE + k * EPOCH_SPAN``; scripts start at 0), and
  the inner expression is queried at the eval time through latmap's own
  :class:`~collectors.prometheus.PrometheusClient`. The buckets then go through latmap's
  collector path (:func:`~collectors.base.histogram_from_buckets`).
* native histograms (``{{...}}`` literals and the NHCBs of ``load_with_nhcb``): Prometheus
  2.42 cannot ingest them from a file, so :mod:`tests.promqltest`'s tiny evaluator computes
  the inner expression, and the result goes through latmap's decoding of the HTTP API's
  bucket list (:class:`~collectors.promjson.NativeHistogram`). The same evaluator is checked
  against the real Prometheus on every classic case (``test_evaluator_agrees_...``).

``rate(x[r])`` is evaluated as ``increase(x[r])``, which is ``rate × r`` by Prometheus's own
definition: latmap reads a window's *counts*. Quantiles are scale-free, latmap's
too-few-samples refusal is not, so the cases are fed the counts latmap would read.

Cases latmap answers differently on purpose are listed in :data:`DIFFERS` with the reason
and marked ``xfail(strict=True)``; known latmap bugs are in :data:`BUGS`; inner expressions
outside the evaluator's subset are in :data:`NOT_EVALUATED`. Nothing is dropped silently:
``test_every_histogram_quantile_eval_is_a_case`` counts the evals in the raw files.
Prometheus's annotations are checked where latmap has an equivalent: "needed to be fixed for
monotonicity" is latmap's ``non-monotonic-buckets`` check, a warning with no result is a refusal.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from _pytest.mark.structures import ParameterSet

from collectors.base import histogram_from_buckets
from collectors.prometheus import PrometheusClient
from collectors.promjson import NativeHistogram
from mapper.core.distribution import HistogramDistribution
from mapper.core.errors import SourceError
from mapper.core.spec import SourceSpec
from mapper.demo.localprom import backfill, running_prometheus
from tests import paths
from tests import promqltest as pt
from tests.servers import require_binary

FIXTURES = paths.FIXTURES / "prometheus"
FILES = ("histograms.test", "native_histograms.test")
#: Backfilled epoch k lives at BASE + k * EPOCH_SPAN seconds (the scripts start at 0).
BASE = 1_700_000_000.0
EPOCH_SPAN = 6 * 3600.0

_H, _N = "histograms.test", "native_histograms.test"

_GAP = ("rank falls exactly on the boundary of a gap of empty buckets: Prometheus iterates "
        "from the top for q >= 0.5 and returns the next bucket's lower bound (0.5), latmap the "
        "previous bucket's upper bound (-0.5); both bound the same empty gap, the interval holds both")
_NAN = ("NaN observations: Prometheus ranks them as +Inf (count includes them, result NaN or "
        "skewed up); latmap counts only the observations in buckets and ignores the NaNs")
#: Cases where latmap deliberately answers differently; xfail(strict=True) with the reason.
#: Keys are ``file:line`` of the eval, per test ("linear" or "interval").
DIFFERS: dict[str, dict[str, str]] = {
    "linear": {f"{_N}:284": _GAP, **{f"{_N}:{n}": _NAN for n in (1621, 1635, 1644)}},
    "interval": {f"{_N}:1621": _NAN},
}

#: Cases that fail because of a latmap bug; xfail(strict=True) until fixed. The five bugs
#: this suite found (q outside [0, 1], q = 1, the lowest native bucket, the first NHCB
#: bucket, the zero bucket of one-signed histograms) are fixed, so it is empty.
BUGS: dict[str, dict[str, str]] = {"linear": {}, "interval": {}}
#: Inner expressions the tiny evaluator does not support; skipped with the reason.
NOT_EVALUATED: dict[str, str] = {
    f"{_N}:1986": "`histogram unless histogram_count(histogram) == 0` needs a set operator and a comparison",
}


def _load_cases() -> list[pt.QuantileCase]:
    if not all((FIXTURES / f).is_file() for f in FILES):
        message = f"Prometheus test scripts not found under {FIXTURES}"
        if os.environ.get("CI") == "true":
            raise FileNotFoundError(message)
        pytest.skip(message, allow_module_level=True)  # outside CI only; CI=true raised above
    cases: list[pt.QuantileCase] = []
    for name in FILES:
        with (FIXTURES / name).open(encoding="utf-8") as f:
            cases.extend(pt.quantile_cases(pt.parse(f, name), name))
    return cases


CASES = _load_cases()


def _where(case: pt.QuantileCase) -> str:
    return f"{case.file}:{case.eval.line}"


# --------------------------------------------------------------------------- evaluation


def _counts_form(node: pt.Node) -> pt.Node:
    """``rate`` -> ``increase`` everywhere in ``node`` (see the module docstring)."""
    if isinstance(node, pt.RangeFunction):
        return replace(node, name="increase")
    if isinstance(node, pt.Aggregate):
        return replace(node, expr=_counts_form(node.expr))
    return node


def _own_vector(case: pt.QuantileCase) -> list[pt.Sample]:
    """The inner expression by the tiny evaluator; Unsupported is raised (an expected failure
    for the cases listed in :data:`NOT_EVALUATED`, marked there)."""
    try:
        return pt.evaluate(_counts_form(pt.parse_expr(case.inner)), case.storage, case.eval.time)
    except pt.Unsupported as err:
        if _where(case) in NOT_EVALUATED:
            raise
        raise AssertionError(f"{_where(case)}: evaluator: {err}; list it in NOT_EVALUATED") from err


def _is_classic(case: pt.QuantileCase) -> bool:
    """Float series only: a real Prometheus can hold them, so it evaluates the case."""
    try:
        node = pt.parse_expr(case.inner)
    except pt.Unsupported:
        return False
    while not isinstance(node, pt.Selector):
        node = node.selector if isinstance(node, pt.RangeFunction) else node.expr
    hit = [s for s in case.storage.series if node.matches(s.labels)]
    return all(isinstance(v, float) for s in hit for v in s.values)


CLASSIC = [c for c in CASES if _is_classic(c)]
_CLASSIC_AT = {_where(c) for c in CLASSIC}


def _epoch_offsets() -> dict[tuple[str, int], float]:
    keys = sorted({(c.file, c.storage.epoch) for c in CLASSIC})
    return {k: BASE + i * EPOCH_SPAN for i, k in enumerate(keys)}


def _om_value(v: float) -> str:
    return "NaN" if math.isnan(v) else "+Inf" if v == math.inf else "-Inf" if v == -math.inf else repr(v)


def _om_label(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _openmetrics(cases: Sequence[pt.QuantileCase], offsets: dict[tuple[str, int], float]) -> Iterator[str]:
    """Every float sample of the classic cases' epochs, one series after another, in time order."""
    storages = {}
    for c in cases:  # the last case of an epoch has seen all its loads
        storages[(c.file, c.storage.epoch)] = c.storage
    points: dict[pt.Labels, list[tuple[float, float]]] = {}
    for key, storage in storages.items():
        for s in storage.series:
            assert not s.times or s.times[-1] < EPOCH_SPAN - 2 * pt.LOOKBACK, "epochs would overlap"
            points.setdefault(s.labels, []).extend(
                (offsets[key] + t, v) for t, v in zip(s.times, s.values, strict=True) if isinstance(v, float))
    for labels in sorted(points, key=lambda ls: (dict(ls)["__name__"], ls)):
        rest = pt.without(labels, "__name__")
        quoted = ",".join(f'{k}="{_om_label(v)}"' for k, v in rest)
        head = dict(labels)["__name__"] + (f"{{{quoted}}}" if rest else "")
        for t, v in sorted(points[labels]):
            yield f"{head} {_om_value(v)} {t:.3f}\n"
    yield "# EOF\n"


@dataclass(frozen=True)
class RealPrometheus:
    client: PrometheusClient
    offsets: dict[tuple[str, int], float]

    def vector(self, case: pt.QuantileCase) -> list[pt.Sample]:
        expr = re.sub(r"\brate\s*\(", "increase(", case.inner)
        t = self.offsets[(case.file, case.storage.epoch)] + case.eval.time
        result = self.client.query(expr, t)
        return [pt.Sample(pt.make_labels(s.labels), float(s.value)) for s in result.samples
                if s.value is not None]


@pytest.fixture(scope="module")
def prometheus() -> Iterator[RealPrometheus]:
    """One real Prometheus for the module, backfilled with every classic case's float series."""
    require_binary("prometheus")
    require_binary("promtool")
    offsets = _epoch_offsets()
    with tempfile.TemporaryDirectory(prefix="latmap-promqltest-") as tmp:
        data_dir = Path(tmp) / "data"
        backfill(_openmetrics(CLASSIC, offsets), data_dir)
        with running_prometheus(data_dir) as url:
            client = PrometheusClient(SourceSpec("prom", "prometheus", url, "test"), backoff=0.01)
            yield RealPrometheus(client, offsets)


# --------------------------------------------------------------------------- latmap's side


class DuplicateLabelset(Exception):
    """Two histograms end up with the same output labels: PromQL fails the query."""


@dataclass(frozen=True)
class Outcome:
    """What latmap makes of one output series: a distribution, or a refusal with its reason."""

    estimate: HistogramDistribution | None
    refusal: str | None = None
    exponential: bool = False  # a native histogram with exponential buckets
    checks: tuple[str, ...] = ()  # codes of the collector's checks (``non-monotonic-buckets``)

    @property
    def linear(self) -> HistogramDistribution:
        assert self.estimate is not None
        return replace(self.estimate, interpolation="linear")


def latmap_outcomes(vector: Sequence[pt.Sample], where: str) -> dict[pt.Labels, Outcome]:
    """Group the inner vector as ``histogram_quantile`` does and hand each group to latmap.

    Float samples group by their labels without ``le`` and go through the collector's
    :func:`histogram_from_buckets` (which adds up repeated bounds, flags non-monotonic
    buckets and refuses a malformed ``le``); native histograms go through the HTTP API's
    bucket list and :meth:`NativeHistogram.distribution`.
    """
    floats: dict[pt.Labels, list[tuple[str, float]]] = {}
    natives: dict[pt.Labels, pt.Histogram] = {}
    for s in vector:
        if isinstance(s.value, pt.Histogram):
            natives[s.labels] = s.value
        else:
            floats.setdefault(pt.without(s.labels, "le"), []).append((dict(s.labels).get("le", ""), s.value))
    out: dict[pt.Labels, Outcome] = {}
    for key in {*floats, *natives}:
        labels = pt.without(key, "__name__")
        if labels in out:
            raise DuplicateLabelset(f"two histograms with the labels {pt.format_labels(labels)}")
        if key in floats and key in natives:
            out[labels] = Outcome(None, "a mix of classic and native histograms")
        elif key in natives:
            h = natives[key]
            native = NativeHistogram(h.count, h.sum, tuple(h.api_buckets()))
            # Prometheus's cases hold any real values; latmap's collectors refuse negative ones.
            out[labels] = Outcome(native.distribution(negative="allow"), exponential=not h.custom)
        else:
            try:
                dist, checks = histogram_from_buckets(floats[key], 1.0, where)
            except SourceError as err:
                out[labels] = Outcome(None, str(err))
                continue
            refusal = None if dist else "; ".join(c.message for c in checks)
            out[labels] = Outcome(dist, refusal, checks=tuple(c.code for c in checks))
    return out


def _outcomes(case: pt.QuantileCase, request: pytest.FixtureRequest) -> dict[pt.Labels, Outcome] | None:
    """latmap's outcome per output series; ``None`` when PromQL fails the query (checked here)."""
    classic = _where(case) in _CLASSIC_AT
    vector = request.getfixturevalue("prometheus").vector(case) if classic else _own_vector(case)
    try:
        outcomes = latmap_outcomes(vector, _where(case))
    except DuplicateLabelset:
        assert case.eval.fails, f"{_where(case)}: duplicate output labels, but Prometheus does not fail"
        return None
    assert not case.eval.fails, f"{_where(case)}: Prometheus fails this query, the harness did not"
    # A series with observations below zero is outside latmap's domain (a latency cannot be
    # negative): latmap refuses it with a negative-observations check, deliberately, where
    # Prometheus computes a quantile of any real values; it is left out of the comparison.
    negative = {k for k, o in outcomes.items() if o.refusal and "negative-observations" in o.checks}
    outcomes = {k: o for k, o in outcomes.items() if k not in negative}
    produced = {k for k, o in outcomes.items() if o.refusal is None}
    assert produced == {e.labels for e in case.eval.expected} - negative, (
        f"output series differ: latmap {sorted(produced)}, Prometheus "
        f"{sorted(e.labels for e in case.eval.expected)}; refused: "
        f"{ {pt.format_labels(k): o.refusal for k, o in outcomes.items() if o.refusal} }")
    if len(produced) < len(outcomes):
        assert case.eval.warns, "latmap refused a series Prometheus answers without a warning"
    return outcomes


def _matches(got: float, expected: pt.Expected) -> bool:
    """Equal to rel 1e-9. A value the script prints short (``1.189207`` for 2**0.25) must match
    every printed digit and stay within Prometheus's own test tolerance (rel 1e-6)."""
    assert expected.value is not None
    if math.isclose(got, expected.value, rel_tol=1e-9, abs_tol=1e-15):
        return True
    digits = len(re.sub(r"^[+-]?0*\.?0*|e.*$|\.", "", expected.text.lower()))
    rounded = 0 < digits < 16 and float(f"{got:.{digits}g}") == expected.value
    return rounded and math.isclose(got, expected.value, rel_tol=1e-6)


def _refuses(dist: HistogramDistribution, q: float) -> str | None:
    """None when latmap refuses a quantile outside [0, 1] honestly, else what it did instead."""
    try:
        est = dist.quantile(q)
    except ValueError as err:
        return None if "quantile" in str(err) else f"raised ValueError({err})"
    if est.value is None and est.note and "quantile" in est.note:
        return None
    return f"answered {est}"


def _exponential(dist: HistogramDistribution, q: float, linear: float) -> float:
    """Prometheus's log-scale interpolation at latmap's bucket and in-bucket fraction.

    Used for native exponential buckets only (outside the zero bucket): it proves that
    latmap finds the same bucket and rank as Prometheus, and that only the curve inside the
    bucket differs (latmap: linear or power law; Prometheus: exponential).
    """
    b = int(dist.bucket_of_rank(q * dist.count))
    lo, hi = float(dist.lower[b]), float(dist.upper[b])
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 <= hi or hi == lo:
        return linear
    frac = (linear - lo) / (hi - lo)
    if lo > 0:
        return math.exp2(math.log2(lo) + (math.log2(hi) - math.log2(lo)) * frac)
    return -math.exp2(math.log2(-hi) + (math.log2(-lo) - math.log2(-hi)) * (1 - frac))


def _marks(kind: str) -> list[ParameterSet]:
    params = []
    for case in CASES:
        reason = DIFFERS[kind].get(_where(case)) or BUGS[kind].get(_where(case))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        if _where(case) in NOT_EVALUATED:
            marks = [pytest.mark.xfail(strict=True, raises=pt.Unsupported,
                                       reason=f"not evaluated: {NOT_EVALUATED[_where(case)]}")]
        if _where(case) in _CLASSIC_AT:
            marks.append(pytest.mark.prometheus)
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


# --------------------------------------------------------------------------- the tests


def test_every_histogram_quantile_eval_is_a_case() -> None:
    """Each ``eval ... histogram_quantile(`` line of the raw files became a case: none dropped."""
    pattern = re.compile(r"^\s*eval(?:_\w+)?\s+instant\s+at\s+\S+\s+histogram_quantile\(")
    for name in FILES:
        lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines()
        raw = [i for i, line in enumerate(lines, 1) if pattern.match(line)]
        assert raw == [c.eval.line for c in CASES if c.file == name]
    listed = {*DIFFERS["linear"], *DIFFERS["interval"], *BUGS["linear"], *BUGS["interval"], *NOT_EVALUATED}
    assert listed <= {_where(c) for c in CASES}, "a listed case does not exist"


@pytest.mark.parametrize("case", _marks("linear"))
def test_linear_interpolation_reproduces_prometheus(case: pt.QuantileCase, request: pytest.FixtureRequest) -> None:
    """``interpolation="linear"`` gives Prometheus's value; its special values map to refusals.

    q outside [0, 1] (Prometheus: -Inf/+Inf/NaN) must be refused; NaN (no observations, or
    only a +Inf bucket) must be ``value=None`` with a note. Native exponential buckets are
    compared after Prometheus's log-scale interpolation at latmap's bucket and fraction.
    """
    outcomes = _outcomes(case, request)
    if outcomes is None:
        return
    problems = []
    for exp in (e for e in case.eval.expected if e.labels in outcomes):  # negative series left out
        outcome = outcomes[exp.labels]
        dist = outcome.linear
        if not 0 <= case.q <= 1:
            why = _refuses(dist, case.q)
        elif exp.value is not None and math.isnan(exp.value):
            est = dist.quantile(case.q)
            why = None if est.value is None and est.note else f"answered {est}"
        else:
            got = float(dist.quantile_values(np.array([case.q]))[0])
            if outcome.exponential:
                got = _exponential(dist, case.q, got)
            why = None if _matches(got, exp) else f"got {got!r}"
        if why:
            problems.append(f"{pt.format_labels(exp.labels)}: Prometheus {exp.text}, latmap {why}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case", _marks("interval"))
def test_prometheus_value_lies_in_latmap_interval(case: pt.QuantileCase, request: pytest.FixtureRequest) -> None:
    """With the default interpolation Prometheus's value lies in latmap's [low, high].

    latmap's point estimate differs from Prometheus's on purpose: where the neighbouring
    buckets show the density's slope, it follows a power-law density inside the bucket
    instead of assuming observations spread evenly, which overestimates tail latencies in
    wide buckets. What both must agree
    on is the bucket interval the quantile lies in; latmap's estimate must lie there too.
    """
    outcomes = _outcomes(case, request)
    if outcomes is None:
        return
    problems = []
    for exp in (e for e in case.eval.expected if e.labels in outcomes):  # negative series left out
        dist = outcomes[exp.labels].estimate
        assert dist is not None
        if not 0 <= case.q <= 1:
            why = _refuses(dist, case.q)
        else:
            # Prometheus's number is an interpolation inside the bucket, not the true quantile:
            # it lies within the bucket interval, which the window's exact _sum may narrow
            # further (issue 14), past Prometheus's point. The narrowed interval lies within.
            narrowed = dist.quantile(case.q)
            est = _bucket_only(dist).quantile(case.q)
            if narrowed.low is not None and est.low is not None:
                assert est.low <= narrowed.low and (est.high is None or narrowed.high <= est.high)  # type: ignore[operator]
            assert exp.value is not None
            if math.isnan(exp.value):
                why = None if est.value is None and est.note else f"answered {est}"
            else:
                lo = -math.inf if est.low is None else est.low
                hi = math.inf if est.high is None else est.high
                tol = 1e-12 * max(1.0, abs(exp.value))
                inside = lo - tol <= exp.value <= hi + tol
                own = est.value is None or lo <= est.value <= hi
                why = None if inside and own else f"interval [{lo}, {hi}], estimate {est.value}"
        if why:
            problems.append(f"{pt.format_labels(exp.labels)}: Prometheus {exp.text}, latmap {why}")
    assert not problems, "\n".join(problems)


def _bucket_only(dist):  # type: ignore[no-untyped-def]
    """The distribution without its sum: intervals from the buckets alone."""
    import dataclasses

    from mapper.core.distribution import HistogramDistribution

    return dataclasses.replace(dist, sum=None) if isinstance(dist, HistogramDistribution) else dist


@pytest.mark.prometheus
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CLASSIC])
def test_evaluator_agrees_with_real_prometheus(case: pt.QuantileCase, prometheus: RealPrometheus) -> None:
    """The tiny evaluator computes every classic inner expression as the real server does.

    This is what the native-histogram cases rest on: there only the evaluator can compute
    ``rate``/``sum``/``avg``, with the same extrapolation code checked here on floats.
    """
    real = {s.labels: s.value for s in prometheus.vector(case)}
    own = {s.labels: s.value for s in _own_vector(case)}
    assert real.keys() == own.keys()
    for labels, value in real.items():
        assert isinstance(value, float)
        assert own[labels] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), pt.format_labels(labels)


@pytest.mark.prometheus
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CLASSIC])
def test_non_monotonic_buckets_are_flagged_where_prometheus_flags_them(
        case: pt.QuantileCase, request: pytest.FixtureRequest) -> None:
    """Prometheus's info "needed to be fixed for monotonicity" <=> latmap's non-monotonic check."""
    outcomes = _outcomes(case, request)
    if outcomes is None:
        return
    flagged = any("non-monotonic-buckets" in o.checks for o in outcomes.values())
    assert flagged == any(e.split()[0] == "info" for e in case.eval.expects)
