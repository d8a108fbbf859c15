"""Collectors: one module per source kind, each implementing :class:`Collector`."""

from __future__ import annotations

from typing import cast

from collectors.base import Collector
from collectors.prometheus import PrometheusCollector
from collectors.scrape import ScrapeCollector
from mapper.errors import SpecError
from mapper.spec import SourceSpec

__all__ = ["Collector", "PrometheusCollector", "ScrapeCollector", "make_collector"]

_KINDS = {"prometheus": PrometheusCollector, "scrape": ScrapeCollector}


def make_collector(spec: SourceSpec) -> Collector:
    """The collector for a source of the spec."""
    try:
        return cast(Collector, _KINDS[spec.kind](spec))
    except KeyError:
        raise SpecError(f"{spec.place}: no collector for source kind {spec.kind!r}") from None
