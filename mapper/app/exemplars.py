"""Exemplars as examples: for every histogram measured in Prometheus, the exemplars of the
window whose value lies in or beyond each percentile's bucket join that part's examples
(``source: exemplar``, one trace id each). Problems are checks, never a failed map: an
exemplar without a trace id, with a malformed one or outside the window is counted
(:mod:`collectors.promexemplars`), and a Prometheus that cannot answer (no exemplar API, an
error, a back end without the exemplar API) is logged and leaves the map as it is.
"""

from __future__ import annotations

import dataclasses
import logging

from collectors.prometheus import PrometheusClient, PrometheusCollector
from collectors.promexemplars import exemplar_query, parse_exemplars
from mapper.analysis.examples import MEDIAN, Examples, Threshold, from_exemplars
from mapper.analysis.latency import PARTS, LatencyMap, example_thresholds
from mapper.core.errors import SourceError
from mapper.core.model import Check, Window
from mapper.core.spec import StreamSpec

log = logging.getLogger(__name__)


def attach_exemplars(lm: LatencyMap, spec: StreamSpec, window: Window,
                     collectors: dict[str, object] | None = None) -> LatencyMap:
    """``lm`` with the exemplars of its Prometheus histograms among its examples, and the
    exemplar checks among its checks (unchanged when the spec asks for no examples)."""
    k = spec.examples.count
    if k <= 0:
        return lm
    thresholds = example_thresholds(spec.percentiles, lm.stages, None)
    examples = lm.examples
    checks: list[Check] = []
    clients: dict[str, PrometheusClient] = {}
    for s in spec.stages:
        for part in PARTS:
            m = getattr(s, part)
            if m is None or m.kind != "histogram" or spec.sources[m.source].kind != "prometheus":
                continue
            made = (collectors or {}).get(m.source)
            client = clients.setdefault(m.source, made.client if isinstance(made, PrometheusCollector)
                                        else PrometheusClient(spec.sources[m.source]))
            where = f"{s.name} {part} exemplars ({m.place})"
            try:
                series = client.query_exemplars(exemplar_query(m), window.start, window.end)
            except SourceError as err:  # e.g. a back end without the API: the map stands without them
                log.info("%s: not read: %s", where, err)
                continue
            points, made_checks = parse_exemplars(series, m, window, spec.examples.trace_id_labels, where)
            checks += [dataclasses.replace(c, stage=s.name, part=part) for c in made_checks]
            mine: dict[tuple[str, str, float], Threshold] = {
                key: t for key, t in thresholds.items() if key[0] == s.name and key[1] == part and key[2] != MEDIAN}
            found = from_exemplars([(p.trace_id, p.value, p.timestamp) for p in points], mine, k)
            for key, exs in sorted(found.items()):
                examples = (examples or Examples(k, {})).with_added(key, exs)
            log.debug("%s: %d exemplars, %d used", where, len(points), sum(len(v) for v in found.values()))
    return dataclasses.replace(lm, examples=examples, checks=(*lm.checks, *checks))
