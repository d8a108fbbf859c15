"""``latmap serve --stream``: the live value stream on the receiver's ``/metrics``.

:class:`LiveDeriver` is the receiver's span sink and a Prometheus collector in one. Each
acknowledged batch goes to one :class:`~mapper.analysis.live.JoinStore` per stream spec; a
timer thread flushes the stores (``interval`` seconds) and adds the completed items' values to
:class:`~mapper.analysis.livehist.LiveHistograms`; a scrape reads those as classic histograms
(names in :mod:`mapper.core.names`: ``latmap_stage_wait_seconds``,
``latmap_stage_process_seconds``, ``latmap_lead_time_seconds``), with exemplars carrying the
item's trace id in the OpenMetrics exposition (Prometheus asks for it by default).

Each histogram series is also a native histogram (schema 3: buckets 9.05% wide, see
:mod:`mapper.analysis.livehist`), carried as prometheus-client's ``NativeHistogram`` sample
beside the classic buckets; prometheus-client cannot write it, so
:func:`collectors.spool.exposition.metrics_response` encodes the protobuf exposition (classic
and native buckets in one message, exemplars with both) when the scraper asks for it, and
leaves the native sample out of the text formats. The classic buckets carry a boundary at every
objective of the spec, so an objective's verdict from them is exact.

Labels: ``stream``, ``stage`` (not on the lead time), and each of the spec's
``segments.labels`` that names a span column (``destination``, ``messaging_system``,
``peer_service``, ``db_system``, ``service``, ``name``); other segment labels cannot be read
from spans and are left out (logged once). Values per label are capped (``max_label_values``).

Reload: SIGHUP reads the stream specs again. A spec that no longer loads leaves the running
streams as they are (logged); otherwise each stream starts a new store and its open items are
dropped, counted as incomplete with reason ``reload``. Series already exposed stay.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse.csgraph  # noqa: F401  (the stores' grouping: loaded here, not in the first flush)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.samples import Exemplar as PromExemplar
from prometheus_client.samples import Sample

from collectors.spool import receiver as spool_receiver
from collectors.spool.exposition import native_histogram
from collectors.spool.payload import decode_payload
from collectors.spool.reader import payloads_batch
from collectors.spool.store import SpoolLimits
from mapper.analysis.live import INCOMPLETE_REASONS, JoinStore, LiveStream, StoreLimits, Values
from mapper.analysis.livehist import NATIVE_SCHEMA, ZERO_THRESHOLD, LiveHistograms, Series, bucket_bounds
from mapper.analysis.traces import StageMatch
from mapper.core import names as N
from mapper.core.errors import LatmapError, UsageError
from mapper.core.spans import ATTRIBUTE_COLUMNS
from mapper.core.spec import StreamSpec, load_spec

log = logging.getLogger(__name__)

#: Span columns a segment label may name to label the live series.
LABEL_COLUMNS = ("destination", "messaging_system", "peer_service", "db_system", "service", "name")
_METRIC = {"wait": N.STAGE_WAIT, "process": N.STAGE_PROCESS, "lead": N.LIVE_LEAD_TIME}
_HELP = {
    N.STAGE_WAIT: "Wait before a stage (hand-over to its first span), per completed item.",
    N.STAGE_PROCESS: "A stage's process (self) time, per completed item.",
    N.LIVE_LEAD_TIME: "Lead time, first stage's start to last stage's end, per item that passed every stage.",
}


@dataclass(frozen=True)
class LivePlan:
    """A stream spec as the live derivation needs it: the store's stream, bucket bounds per
    stage (objective thresholds of the stage added) and for the lead time (end-to-end ones)."""

    stream: LiveStream
    stage_bounds: dict[str, tuple[float, ...]]
    lead_bounds: tuple[float, ...]
    #: Whether every stage of the spec is traced: only then is an item's first start to last
    #: end in the spans its lead time (else it is a part of it, and no lead time is emitted).
    lead: bool = True


def plan(spec: StreamSpec) -> LivePlan:
    """The live plan of ``spec``; UsageError when no stage is measured from traces."""
    staged = [s for s in spec.stages if s.traces is not None]
    if not staged:
        raise UsageError(f"{spec.path}: --stream needs stages with `traces:` selectors (none has one)")
    names = {s.name for s in staged}
    matches = tuple(StageMatch(s.name, s.traces.service, s.traces.span_name,  # type: ignore[union-attr]
                               {ATTRIBUTE_COLUMNS[k]: v for k, v in s.traces.attributes.items()})  # type: ignore[union-attr]
                    for s in staged)
    upstream = {s.name: next((u for u in s.upstream if u in names), None) for s in staged}
    labels = []
    for label in spec.segments.labels:
        column = ATTRIBUTE_COLUMNS.get(label, label)
        if column in LABEL_COLUMNS:
            labels.append(column)
        else:
            log.warning("%s: segment label %r names no span column; the live series do not carry it",
                        spec.path, label)
    by_target: dict[str, list[float]] = {}
    for o in spec.objectives:
        by_target.setdefault(o.target, []).append(o.threshold)
    stage_bounds = {s.name: bucket_bounds(by_target.get(s.name, ())) for s in staged}
    lead = len(staged) == len(spec.stages)
    if not lead:
        log.warning("%s: stages %s are not traced: the live series carry their traced stages' waits and "
                    "process times, and no lead time", spec.path,
                    ", ".join(s.name for s in spec.stages if s.traces is None))
    return LivePlan(LiveStream(spec.name, matches, upstream, tuple(labels)), stage_bounds,
                    bucket_bounds(by_target.get("end_to_end", ())), lead)


class LiveDeriver:
    """The receiver's sink and ``/metrics`` collector for the live value stream."""

    def __init__(self, plans: Sequence[LivePlan], limits: StoreLimits | None = None,
                 max_label_values: int = 100, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        names = [p.stream.name for p in plans]
        if len(set(names)) != len(names):
            raise UsageError(f"--stream: two specs name the same stream ({', '.join(sorted(names))})")
        self.limits = limits or StoreLimits()
        self.interval = interval
        self.clock = clock
        self.histograms = LiveHistograms(max_label_values)
        self._stores = [(p, JoinStore(p.stream, self.limits)) for p in plans]
        self._retired: list[JoinStore] = []  # stores replaced by a reload: their counts stay
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[tuple[bytes, int, float]] = []  # (payload, spans, arrival)
        self._queued = 0
        self.dropped = 0  # spans not queued: over max_spans between two flushes

    # -- the sink ------------------------------------------------------------------------

    def accept(self, payload: bytes, spans: int) -> None:
        """Queue an export's payload (decoded at the next flush, many at once); beyond
        ``max_spans`` queued spans the export is not queued, counted as dropped, and its
        traces are cut in the stores (never emitted from their other spans)."""
        with self._queue_lock:
            full = self._queued + spans > self.limits.max_spans
            if full:
                self.dropped += spans
            else:
                self._queue.append((payload, spans, self.clock()))
                self._queued += spans
                if self._queued >= self.limits.max_spans // 2:
                    self._wake.set()  # flush early rather than drop at the limit
        if full:
            # The items this export's spans belong to are cut: tell the stores, so they never
            # emit them from the spans that did arrive (their values would miss these).
            table = decode_payload(payload)
            hi, lo = table.column("trace_hi").to_numpy(), table.column("trace_lo").to_numpy()
            for _, store in self._stores:
                store.cut_traces(hi, lo)

    def _take_queue(self) -> None:
        with self._queue_lock:
            queue, self._queue, self._queued = self._queue, [], 0
        if not queue:
            return
        batch = payloads_batch([q[0] for q in queue])
        arrival = np.repeat(np.array([q[2] for q in queue]), [q[1] for q in queue])
        for _, store in self._stores:
            store.accept(batch, arrival)

    # -- flushing ------------------------------------------------------------------------

    def flush(self) -> int:
        """Flush every store now; returns the items completed."""
        done = 0
        with self._flush_lock:
            self._take_queue()
            for p, store in self._stores:
                out = store.flush(self.clock())
                done += out.completed
                stamp = time.time()
                for v in out.values:
                    self._observe(p, v, stamp)
        return done

    def _observe(self, p: LivePlan, v: Values, stamp: float) -> None:
        if v.stage is None and not p.lead:
            return  # the traced stages' span of an item is not its lead time
        fixed = {"stream": p.stream.name}
        if v.stage is not None:
            fixed["stage"] = v.stage
        bounds = p.lead_bounds if v.stage is None else p.stage_bounds[v.stage]
        self.histograms.observe(_METRIC[v.part], bounds, fixed, v.labels, v.seconds, v.trace_ids, stamp)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="latmap-live", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.flush()
            except Exception:  # a bug must not stop the receiver; it is logged every time
                log.exception("live value stream: flush failed")

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def reload(self, plans: Sequence[LivePlan]) -> None:
        """Swap in new plans: every open item is dropped (counted as ``reload``)."""
        with self._flush_lock:
            for _, store in self._stores:
                store.drop_all()
                self._retired.append(store)
            self._stores = [(p, JoinStore(p.stream, self.limits)) for p in plans]

    # -- the collector -------------------------------------------------------------------

    def describe(self) -> list[Any]:
        return []  # series appear as items complete: no fixed description

    def collect(self) -> Iterator[Any]:
        label_names = sorted({c for p, _ in self._stores for c in p.stream.label_columns})
        families = {
            N.STAGE_WAIT: HistogramMetricFamily(N.STAGE_WAIT, _HELP[N.STAGE_WAIT],
                                                labels=["stream", "stage", *label_names]),
            N.STAGE_PROCESS: HistogramMetricFamily(N.STAGE_PROCESS, _HELP[N.STAGE_PROCESS],
                                                   labels=["stream", "stage", *label_names]),
            N.LIVE_LEAD_TIME: HistogramMetricFamily(N.LIVE_LEAD_TIME, _HELP[N.LIVE_LEAD_TIME],
                                                    labels=["stream", *label_names]),
        }
        for metric, labels, series in self.histograms.series():
            fam = families[metric]
            keys = ["stream", "stage", *label_names] if metric != N.LIVE_LEAD_TIME else ["stream", *label_names]
            values = [labels.get(k, "") for k in keys]
            fam.add_metric(values, _buckets(series), series.total)
            fam.samples.append(Sample(metric, dict(zip(keys, values, strict=True)), 0.0,
                                      native_histogram=_native(series)))
        yield from families.values()
        yield from self._counters()

    def _counters(self) -> Iterator[Any]:
        every = [(p.stream.name, s) for p, s in self._stores] + [(s.stream.name, s) for s in self._retired]
        completed = CounterMetricFamily(N.LIVE_ITEMS_COMPLETED, "Items complete: through every stage they reached "
                                        "(to the stream's end, or stopped where no stage took them on).",
                                        labels=["stream"])
        incomplete = CounterMetricFamily(N.LIVE_ITEMS_INCOMPLETE, "Groups of spans dropped before their item "
                                         "was complete, by reason (ttl, busy, limit, reload).",
                                         labels=["stream", "reason"])
        unmatched = CounterMetricFamily(N.LIVE_SPANS_UNMATCHED, "Spans that matched no stage.", labels=["stream"])
        late = CounterMetricFamily(N.LIVE_SPANS_LATE, "Spans that arrived after their item was emitted.",
                                   labels=["stream"])
        dropped = CounterMetricFamily(N.LIVE_SPANS_DROPPED, "Spans not held: the store was full.", labels=["stream"])
        expired = CounterMetricFamily(N.LIVE_PRODUCER_EXPIRED, "Consumer spans whose linked producer had "
                                      "expired from the store.", labels=["stream"])
        negative = CounterMetricFamily(N.LIVE_NEGATIVE_WAITS, "Waits below zero (clock skew; kept).",
                                       labels=["stream", "stage"])
        sums: dict[str, Any] = {}
        for name, s in every:
            c = s.counts
            agg = sums.setdefault(name, {"completed": 0, "unmatched": 0, "dropped": 0, "expired": 0, "late": 0,
                                         "incomplete": {}, "negative": {}})
            agg["completed"] += c.items_completed
            agg["unmatched"] += c.spans_unmatched
            agg["dropped"] += c.spans_dropped
            agg["expired"] += c.producer_expired
            agg["late"] += c.spans_late
            for reason in INCOMPLETE_REASONS:
                agg["incomplete"][reason] = agg["incomplete"].get(reason, 0) + c.incomplete[reason]
            for stage, n in c.negative_waits.items():
                agg["negative"][stage] = agg["negative"].get(stage, 0) + n
        for name, agg in sums.items():
            agg["dropped"] += self.dropped  # not queued: lost to every stream
            completed.add_metric([name], agg["completed"])
            unmatched.add_metric([name], agg["unmatched"])
            dropped.add_metric([name], agg["dropped"])
            expired.add_metric([name], agg["expired"])
            late.add_metric([name], agg["late"])
            for reason, n in agg["incomplete"].items():
                incomplete.add_metric([name, reason], n)
            for stage, n in agg["negative"].items():
                negative.add_metric([name, stage], n)
        cut = CounterMetricFamily(N.LIVE_LABEL_VALUES_CUT, "Label values replaced by __other__ past the "
                                  "per-label limit.", labels=["label"])
        for label, n in sorted(self.histograms.cut.items()):
            cut.add_metric([label], n)
        open_items = GaugeMetricFamily(N.LIVE_OPEN_ITEMS, "Groups of spans waiting for the rest of their item.",
                                       labels=["stream"])
        held = GaugeMetricFamily(N.LIVE_HELD_SPANS, "Spans held by the live store.", labels=["stream"])
        for p, s in self._stores:
            open_items.add_metric([p.stream.name], s.open_items)
            held.add_metric([p.stream.name], s.held_spans)
        yield from (completed, incomplete, unmatched, late, dropped, expired, negative, cut, open_items, held)
        yield from self._flow(every)

    def _flow(self, every: list[tuple[str, JoinStore]]) -> Iterator[Any]:
        """Items per stage by outcome (every stage and outcome, from 0) and the inventory gauge
        of each stage that has an upstream stage (nothing is handed over to a first stage)."""
        items = CounterMetricFamily(N.STAGE_ITEMS, "Items at a stage by outcome: passed (handed on) or stopped "
                                    "(its last stage) partition the items in; failed (an error), else retried "
                                    "(processed more than once), the items not right the first time.",
                                    labels=["stream", "stage", "outcome"])
        inventory = GaugeMetricFamily(N.STAGE_INVENTORY, "Items handed over to a stage and not seen there yet "
                                      "(waiting, or in process until their span is exported).",
                                      labels=["stream", "stage"])
        totals: dict[tuple[str, str, str], int] = {}
        for p, _ in self._stores:
            for stage in p.stream.stages:
                for outcome in N.OUTCOMES:
                    totals[(p.stream.name, stage, outcome)] = 0
        for name, s in every:
            for stage, by in dict(s.counts.outcomes).items():  # copies: a flush may add to them
                for outcome, n in dict(by).items():
                    totals[(name, stage, outcome)] = totals.get((name, stage, outcome), 0) + n
        for key, n in totals.items():
            items.add_metric(list(key), n)
        for p, s in self._stores:
            held = s.inventory
            for stage in p.stream.stages:
                if p.stream.upstream.get(stage) is not None:
                    inventory.add_metric([p.stream.name, stage], held.get(stage, 0))
        yield from (items, inventory)


def _buckets(s: Series) -> list[tuple[str, float, PromExemplar] | tuple[str, float]]:
    cum = s.cumulative()
    out: list[tuple[str, float, PromExemplar] | tuple[str, float]] = []
    les = [*(repr(float(b)) for b in s.bounds), "+Inf"]
    for le, n, ex in zip(les, cum, s.exemplars, strict=True):
        if ex is None:
            out.append((le, float(n)))
        else:
            out.append((le, float(n), PromExemplar({"trace_id": ex.trace_id}, ex.value, ex.timestamp)))
    return out


def _native(s: Series) -> Any:
    n = s.native
    exemplars = [PromExemplar({"trace_id": ex.trace_id}, ex.value, ex.timestamp) for ex in s.exemplars if ex]
    return native_histogram(NATIVE_SCHEMA, ZERO_THRESHOLD, n.zero, int(s.counts.sum()), s.total,
                            n.positive.counts, n.positive.first, n.negative.counts, n.negative.first, exemplars)


def load_plans(paths: Sequence[str]) -> list[LivePlan]:
    """Load each ``--stream`` spec (SpecError names file:line) and plan it."""
    return [plan(load_spec(p)) for p in paths]


def serve(spool_dir: str, stream_paths: Sequence[str], *, limits: StoreLimits | None = None,
          max_label_values: int = 100, interval: float = 1.0,
          spool_limits: SpoolLimits | None = None, **serve_kwargs: Any) -> None:
    """``latmap serve --stream``: the receiver with the live value stream; SIGHUP reloads the specs."""
    deriver = LiveDeriver(load_plans(stream_paths), limits, max_label_values, interval)

    def reload(*_: object) -> None:
        try:
            plans = load_plans(stream_paths)
        except LatmapError as err:
            log.error("SIGHUP: the stream specs were not reloaded (the running ones stay): %s", err)
            return
        deriver.reload(plans)
        log.info("SIGHUP: %d stream spec(s) reloaded; open items dropped", len(plans))

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=reload, daemon=True).start())
    deriver.start()
    try:
        spool_receiver.serve_forever(spool_dir, limits=spool_limits, sinks=[deriver], collectors=[deriver],
                                     **serve_kwargs)
    finally:
        deriver.stop()
        if previous is not None:
            signal.signal(signal.SIGHUP, previous)
