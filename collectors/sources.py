"""One collector per source kind of the spec: the registry ``make_collector`` picks from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from collectors.base import Collector
from collectors.datadog import DatadogCollector
from collectors.prometheus import PrometheusCollector
from collectors.scrape import ScrapeCollector
from mapper.core.errors import SpecError
from mapper.core.spec import SourceSpec

_KINDS = {"prometheus": PrometheusCollector, "scrape": ScrapeCollector}


def make_collector(spec: SourceSpec, percentiles: Sequence[float] = (0.5, 0.99, 0.9999)) -> Collector:
    """The collector for a source of the spec (``percentiles``: what a back end that
    computes percentiles itself, Datadog, is asked for)."""
    if spec.kind == "datadog":
        return DatadogCollector(spec, percentiles)
    try:
        return cast(Collector, _KINDS[spec.kind](spec))
    except KeyError:
        raise SpecError(f"{spec.place}: no collector for source kind {spec.kind!r}") from None
