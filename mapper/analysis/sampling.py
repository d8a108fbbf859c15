"""Sampled traces: weighting a stage's items by their OpenTelemetry adjusted count, and saying
when trace numbers are biased by sampling (issue 26).

OpenTelemetry probability sampling (the W3C ``tracestate`` member ``ot=th:<hex>``, read at
ingest into :attr:`~mapper.core.spans.SpanBatch.sampling_th`) gives every sampled trace a
rejection threshold ``th`` over 56 bits: it was kept with probability ``p = 1 - th / 2**56``
and stands for ``1 / p`` traces (its *adjusted count*). What a caller can rely on:

* **counts** are weighted: a stage's ``count`` is the sum of its items' adjusted counts, an
  unbiased estimate of the items that flowed (``th:0`` and items without ``th`` count 1);
* **one probability** (the common case): every item weighs the same, so the percentile is the
  unweighted one and its interval is the order-statistic interval of the *sampled* items:
  a 1% sample of a million items has the interval of ten thousand, never of a million;
* **mixed probabilities**: the percentile is a weighted order statistic (the smallest value
  whose cumulative weight reaches ``q``), and its interval is the union of the unweighted
  order-statistic interval of the sampled items and the weighted one computed with Kish's
  effective sample size ``(sum w)**2 / sum w**2`` (never more than the sampled items), so it
  is never narrower than either; "too few samples" is judged on that effective size;
* an item's adjusted count is its stage's first span's (a sampling decision is per trace;
  an item joined across traces by links may hold several decisions: each stage takes its own);
* tail-based sampling (the Collector's ``tailsampling.policy`` on the spans, or far fewer
  weighted trace items than the stage's metric observations) keeps items by what they look
  like (slow, failing), so no weight can undo it: a check says the trace percentiles are
  biased, and the metric numbers are the ones used (metrics win where both measure a part).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mapper.core.distribution import CONFIDENCE, Distribution, Estimate, PointMasses, SampleDistribution
from mapper.core.estimate import too_few_note
from mapper.core.model import Check
from mapper.core.quantiles import check_q
from mapper.core.spans import TH_NOT_SAMPLED

__all__ = [
    "TAIL_SUSPECT_RATIO", "THRESHOLD_RANGE", "WeightedSamples", "adjusted_counts", "sampled_count",
    "sampling_checks", "tail_sampling_suspected", "weighted_parts", "weighted_samples",
]

#: 2**56: the OTel sampling thresholds' range (``th`` is a 56-bit rejection threshold).
THRESHOLD_RANGE = float(2**56)
#: Weighted trace items below this share of the metric's observations: tail sampling suspected.
TAIL_SUSPECT_RATIO = 0.5


def adjusted_counts(th: np.ndarray) -> np.ndarray:
    """Each item's adjusted count ``2**56 / (2**56 - th)``; NaN where ``th`` is unknown (< 0)."""
    th = np.asarray(th, dtype=np.int64)
    out = np.full(th.shape, np.nan)
    known = th >= 0
    out[known] = THRESHOLD_RANGE / (THRESHOLD_RANGE - th[known].astype(np.float64))
    return out


@dataclass(frozen=True, eq=False)
class WeightedSamples(SampleDistribution):
    """Sampled observations with their adjusted counts (``weights``, each >= 1).

    ``count`` is the weighted estimate; :attr:`sampled` the observations actually held, which
    is what every interval and "too few samples" note is computed from (see the module).
    """

    weights: np.ndarray

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=float)
        w = np.asarray(self.weights, dtype=float)
        if v.ndim != 1 or w.shape != v.shape or not np.all(np.isfinite(v)):
            raise ValueError("samples and weights must be 1-d arrays of finite numbers, of one length")
        if not np.all(np.isfinite(w) & (w > 0)):
            raise ValueError("weights (adjusted counts) must be finite and positive")
        order = np.argsort(v, kind="stable")
        object.__setattr__(self, "values", v[order])
        object.__setattr__(self, "weights", w[order])

    @property
    def count(self) -> float:
        return float(self.weights.sum())

    @property
    def sampled(self) -> int:
        """The observations held (the sampled items), not their weighted count."""
        return int(self.values.size)

    @property
    def equal_weights(self) -> bool:
        return bool(self.weights.size == 0 or np.ptp(self.weights) <= 1e-12 * self.weights[0])

    @property
    def mean(self) -> float | None:
        return float(np.average(self.values, weights=self.weights)) if self.values.size else None

    def quantile(self, q: float) -> Estimate:
        check_q(q)
        plain = super().quantile(q)  # value, interval and note of the sampled items
        total = self.count
        if self.equal_weights or plain.value is None:
            return Estimate(q, plain.value, plain.low, plain.high, total, plain.note)
        from scipy.stats import binom  # imported here: scipy costs ~0.4 s at start-up

        n_eff = total**2 / float(np.sum(self.weights**2))
        note = too_few_note(q, n_eff)
        share = np.cumsum(self.weights) / total  # weighted ECDF at each sorted value

        def at(p: float) -> int:  # the first value whose cumulative weight share reaches p
            return min(int(np.searchsorted(share, p - 1e-12, side="left")), share.size - 1)

        alpha = (1 - CONFIDENCE) / 2
        n_floor = max(1, int(n_eff))
        lo_rank = int(binom.ppf(alpha, n_floor, q))
        hi_rank = int(binom.ppf(1 - alpha, n_floor, q)) + 1
        low_w = self.values[at(lo_rank / n_floor)] if lo_rank >= 1 else self.values[0]
        low = min(float(low_w), plain.low if plain.low is not None else float(low_w))
        high = None
        if hi_rank <= n_floor and plain.high is not None:
            high = max(float(self.values[at(hi_rank / n_floor)]), plain.high)
        if note:
            return Estimate(q, None, low, None, total, f"{note} (effective sample size of mixed weights)")
        return Estimate(q, float(self.values[at(q)]), low, high, total)

    def point_masses(self, variant: str) -> PointMasses:
        return PointMasses(self.values, self.weights / max(self.count, 1e-300))


def sampled_count(d: Distribution) -> float:
    """The observations a distribution actually holds (the sampled items for weighted samples)."""
    return float(d.sampled) if isinstance(d, WeightedSamples) else d.count


def weighted_samples(values: np.ndarray, th: np.ndarray | None) -> SampleDistribution:
    """The items' values as a distribution, weighted by their adjusted counts when any is
    known and not 1 (unknown sampling counts 1); plain samples otherwise."""
    if th is None:
        return SampleDistribution(values)
    adjusted = adjusted_counts(th)
    weights = np.where(np.isnan(adjusted), 1.0, adjusted)
    if not np.any(weights != 1.0):
        return SampleDistribution(values)
    return WeightedSamples(values, weights)


def sampling_checks(stage: str, th: np.ndarray, policy: np.ndarray | None) -> list[Check]:
    """What the stage's items say about sampling: weighted counts, mixed probabilities, items
    of unknown sampling beside known ones, the W3C sampled flag clear, tail sampling."""
    th = np.asarray(th, dtype=np.int64)
    n = th.size
    out: list[Check] = []
    adjusted = adjusted_counts(th)
    known = ~np.isnan(adjusted)
    k = int(known.sum())
    if k and np.any(adjusted[known] != 1.0):
        counts = np.unique(adjusted[known])
        total = float(np.where(known, adjusted, 1.0).sum())
        if counts.size == 1:
            out.append(Check("info", "sampled-traces-weighted", (
                f"{stage}: {k:,} sampled items at probability {1 / counts[0]:.4g} (OTel th in tracestate) "
                f"count as {total:,.0f} items; the percentiles and their intervals come from the {n:,} sampled "
                "items, not from the weighted count"), stage))
        else:
            out.append(Check("info", "sampling-mixed-probabilities", (
                f"{stage}: sampled items at {counts.size} probabilities ({1 / counts.max():.4g} .. "
                f"{1 / counts.min():.4g}) count as {total:,.0f} items; percentiles are weighted order statistics, "
                "their intervals the union of the unweighted interval of the sampled items and the weighted one "
                "at the effective sample size (never narrower than either)"), stage))
        if k < n:
            out.append(Check("warning", "sampling-partly-unknown", (
                f"{stage}: {n - k:,} of {n:,} items carry no OTel sampling threshold (th) and count 1 each beside "
                "weighted ones; if they were sampled too, the weighted count understates them"), stage))
    flag_clear = int(np.sum(th == TH_NOT_SAMPLED))
    if flag_clear:
        out.append(Check("info", "sampled-flag-clear", (
            f"{stage}: {flag_clear:,} of {n:,} items were exported with the W3C sampled flag clear (recorded, "
            "not sampled): their sampling is unknown and each counts 1"), stage))
    if policy is not None:
        kept = pd.notna(policy)
        if kept.any():
            names = sorted({str(p) for p in pd.unique(policy[kept])})
            shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
            out.append(Check("warning", "tail-sampled-traces", (
                f"{stage}: {int(kept.sum()):,} of {n:,} items were kept by the Collector's tail sampling "
                f"(tailsampling.policy: {shown}); trace percentiles are biased towards the items its policies "
                "keep and no weight can correct that: where the stage has metrics, the metric numbers are used"),
                stage))
    return out


def tail_sampling_suspected(stage: str, part: str, metric: Distribution, traced: Distribution) -> list[Check]:
    """A warning when the traced items, weighted, are far fewer than the metric's observations
    of the same part (less than :data:`TAIL_SUSPECT_RATIO`): sampling that the thresholds do not
    account for, tail-based (biased) or head sampling that records no ``th``. The metric's
    numbers are the ones the map uses for the part (metrics win where both measure it)."""
    if not metric.count or not traced.count or traced.count >= TAIL_SUSPECT_RATIO * metric.count:
        return []
    return [Check("warning", "tail-sampling-suspected", (
        f"{stage} {part}: {traced.count:,.0f} traced items (weighted by their sampling thresholds) against "
        f"{metric.count:,.0f} metric observations ({traced.count / metric.count:.1%}): sampling the thresholds do "
        "not explain, tail-based or head sampling without th; trace percentiles may be biased towards the "
        "sampled items, so the map shows the metric numbers for this part"), stage, part)]


def weighted_parts(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A stage frame's ``column`` values without NaN, and their items' thresholds (None
    when the frame has no sampling column: a table built without it)."""
    values = frame[column].to_numpy()
    keep = ~np.isnan(values)
    th = frame["th"].to_numpy()[keep] if "th" in frame else None
    return values[keep], th

