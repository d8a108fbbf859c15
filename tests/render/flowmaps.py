"""A branching stream with a hand-made flow (issue 27), for the renderers' tests: market-data
hands every tick to alerting, which stops most and hands the rest to notification or to
archive (a branch); alerting reworks 3% (failed and redelivered); notification's workers
are unknown (a check says why, and its figures are dashes)."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from mapper.analysis.flow_model import Handover, Inventory, Rework, StageFlow, StreamFlow, Utilisation
from mapper.analysis.latency import LatencyMap, MapInput, analyse
from mapper.core.distribution import HistogramDistribution
from mapper.core.model import Check, MeasurementResult, Window
from mapper.core.spec import loads_spec

EVIL = "<b>arch&ive</b>"
SPEC = f"""\
name: ticks
sources: {{prom: {{kind: prometheus, url: "http://127.0.0.1:9"}}}}
stages:
  - {{name: market-data, owner: md, process: {{source: prom, histogram: md_seconds}}}}
  - {{name: alerting, owner: al, wait: {{source: prom, histogram: aw_seconds}},
     process: {{source: prom, histogram: ap_seconds}}}}
  - {{name: notification, owner: nt, upstream: alerting, wait: {{source: prom, histogram: nw_seconds}},
     process: {{source: prom, histogram: np_seconds}}}}
  - {{name: "{EVIL}", owner: ar, upstream: alerting, process: {{source: prom, histogram: xp_seconds}}}}
"""
BOUNDS = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, math.inf]
N = 2_000

FLOW = StreamFlow(stages=(
    StageFlow("market-data", "traces", 14639, 14639, 0, 1.0, (Handover("alerting", 14639, 1.0),),
              throughput_in_per_s=14639 / 3600, throughput_out_per_s=14639 / 3600,
              rework=Rework(1.0, 0, 0, 0.0, 0.0),
              utilisation=Utilisation(0.12, 2, "instances", 80.0, 0.15, 6.0, 864.0)),
    StageFlow("alerting", "traces", 14639, 4470, 10169, 4470 / 14639,
              (Handover("notification", 4000, 4000 / 14639), Handover(EVIL, 470, 470 / 14639)),
              throughput_in_per_s=14639 / 3600, throughput_out_per_s=4470 / 3600,
              rework=Rework(0.97, 439, 439, 52.3, 0.004),
              inventory=Inventory(3.2, 17, 3.1, tuple([3.2] + [None] * 23), "traces"),
              utilisation=Utilisation(0.62, 4, "instances", 12.5, 0.81, 1.3, 8928.0)),
    StageFlow("notification", "traces", 4000, None, 4000, None,
              rework=Rework(0.995, 20, 0, 1.5, 0.0001),
              inventory=Inventory(12.5, 140, 12.2, (), "traces"),
              utilisation=Utilisation(None, None, None, None)),
    StageFlow(EVIL, "traces", 470, None, 470, None, inventory=Inventory(0.4, 3, 0.4, (), "traces"),
              utilisation=Utilisation(0.05, 1, "spec", 20.0, 0.07, 14.0, 180.0)),
), items_completed=4470)

WORKERS_UNKNOWN = Check("warning", "workers-unknown", "notification: no service.instance.id on its spans and no "
                        "workers: in the spec; utilisation not computed", "notification", "workers")


def _hist(x: np.ndarray) -> HistogramDistribution:
    return HistogramDistribution.from_cumulative(BOUNDS, [(x <= b).sum() for b in BOUNDS], sum=float(x.sum()))


def branching_map(flow: StreamFlow | None = FLOW) -> LatencyMap:
    """The four-stage branching map with ``flow`` (None: a map without flow)."""
    lm = _latency_map()
    return dataclasses.replace(lm, flow=flow, checks=(*lm.checks, WORKERS_UNKNOWN) if flow else lm.checks)


@functools.cache
def _latency_map() -> LatencyMap:
    rng = np.random.default_rng(7)
    medians = {("market-data", "process"): 0.002, ("alerting", "wait"): 0.001, ("alerting", "process"): 0.004,
               ("notification", "wait"): 0.03, ("notification", "process"): 0.01, (EVIL, "process"): 0.003}
    results = {k: MeasurementResult(_hist(rng.lognormal(math.log(m), 0.2, N)), "test") for k, m in medians.items()}
    return analyse(loads_spec(SPEC), Window(0, 3600), MapInput(results))
