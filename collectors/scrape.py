"""The ``scrape`` source: read one ``/metrics`` endpoint directly, no Prometheus needed.

For a quick look at a single process. The counts are everything since the process
started (there is no history to take a window of), and a check says so.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from collectors.base import SourceBase, no_data, pick_labels, quantile_free_summary
from collectors.classic import checked_histogram
from collectors.http import HttpClient
from collectors.promsummary import checked_quantiles, invalid_quantile, quantile_label
from mapper.core.distribution import SummaryDistribution
from mapper.core.errors import SourceError
from mapper.core.model import Check, MeasurementResult, Window
from mapper.core.source import Give
from mapper.core.spec import Measurement, SourceSpec


class ScrapeCollector(SourceBase):
    """Reads histograms and summaries from a Prometheus text exposition (read once per
    collector: one map's scrape)."""

    gives: frozenset[Give] = frozenset({"histograms", "summaries"})

    def __init__(self, spec: SourceSpec, backoff: float = 0.25) -> None:
        self.spec = spec
        self.http = HttpClient(spec, backoff=backoff)
        self._families: dict[str, object] | None = None

    def _load(self) -> dict[str, object]:
        if self._families is None:
            resp = self.http.request("GET", "")
            if resp.status_code >= 400:
                raise SourceError(f"{self.spec.url}: HTTP {resp.status_code}")
            try:
                fams = list(text_string_to_metric_families(resp.text))
            except (ValueError, IndexError, KeyError) as err:
                raise SourceError(f"{self.spec.url}: not a Prometheus text exposition: {err}") from err
            self._families = {f.name: f for f in fams}
        return self._families

    def collect(self, measurement: Measurement, window: Window) -> MeasurementResult:
        m = measurement
        where = f"{m.name} ({m.place})"
        if m.kind == "query":
            raise SourceError(f"{m.place}: a scrape source cannot run PromQL; name a histogram")
        provenance = f"{self.spec.name} ({self.spec.url}): scrape of {m.name}"
        fam = self._load().get(m.name)
        since = Check("info", "scrape-since-start",
                      f"{where}: scraped directly, counts since the process started, not the window")
        if fam is None:
            return no_data(where, provenance)

        def selected(labels: dict[str, str]) -> bool:
            return all(labels.get(k) == v for k, v in m.selector.items())

        samples = [s for s in fam.samples if selected(s.labels)]  # type: ignore[attr-defined]
        if m.kind == "histogram":
            buckets = [(s.labels, s.value) for s in samples if s.name.endswith("_bucket")]
            total = sum(s.value for s in samples if s.name.endswith("_sum"))
            # One exposition is one moment: a bound twice in one series is a broken page.
            dist, checks = checked_histogram(buckets, m.scale, where, total, duplicates="refuse")
            if dist is None and checks:
                return MeasurementResult(None, provenance, tuple(checks))
            if dist is None or dist.count <= 0:
                r = no_data(where, provenance)
                return MeasurementResult(None, provenance, tuple(checks) + r.checks)
            return MeasurementResult(dist, provenance, (*checks, since))
        instances: dict[str, dict[float, float]] = {}
        count = total = 0.0
        checks = [since]
        for s in samples:
            if "quantile" in s.labels:
                key = pick_labels(s.labels, ("quantile",))
                q = quantile_label(s.labels["quantile"])
                if q is None:
                    checks.append(invalid_quantile(where, f"{s.name}{key}", s.labels["quantile"]))
                    continue
                instances.setdefault(key, {})[q] = s.value * m.scale
            elif s.name.endswith("_count"):
                count += s.value
            elif s.name.endswith("_sum"):
                total += s.value
        if not instances:
            if count > 0:
                return quantile_free_summary(where, provenance, count, total, m.scale)
            return no_data(where, provenance)
        if len(instances) > 1:
            raise SourceError(f"{where}: selector matches {len(instances)} summary series; narrow it")
        ((key, qs),) = instances.items()
        qs, bad = checked_quantiles(qs, key, where)
        return MeasurementResult(SummaryDistribution(qs, count), provenance, (*checks, *bad))
