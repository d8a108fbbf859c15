"""The live value stream: a bounded join store that turns arriving spans into per-item values.

``latmap serve --stream`` hands every acknowledged batch to :meth:`JoinStore.accept`. The spans
of one item arrive in different requests, from different services, seconds apart, so the
store holds the spans that match a stage of the stream until their item is complete, then
computes the item's values with the very kernels the map uses
(:func:`mapper.analysis.traces.build_trace_table`: stage matching, self time, hand-over by
parent or span link, lead time), so a live value equals the map's value for the same spans.

What the store holds is grouped at each :meth:`JoinStore.flush` (a timer calls it, about once
a second): traces joined by a span link in either direction are one **group** (the item, or
the items of a fan-out or a batch, exactly the paths :mod:`mapper.analysis.items` follows).
A group is **complete** when its items came in through the stream's entry (every stage it has,
has its upstream stage too), no span of it arrived for ``settle`` seconds (a stage's spans of
one item come in one or a few requests; the quiet time lets the late ones join), and it holds
no **open hand-over** (:mod:`mapper.analysis.liveflow`: a PRODUCER span, or a CLIENT call to a
next stage's service, that no span of the next stage has taken yet). Items need not reach the
last stage: an item complete at a stage that handed nothing on **stopped** there (a tick that
raises no alert), counted as complete, and its values and per-stage outcomes are emitted. An
open hand-over is an item waiting before the next stage (the inventory gauge): its group
waits for the consumer's span (the slow items of a batch or a fan-out, the tail, come later
and must not be cut off as late). At ``ttl`` a group still holding open hand-overs emits its
items and counts those whose hand-over was not taken as incomplete (``ttl``, one per item), or
is dropped as incomplete when all of its items wait. ``settle`` must cover the export delay
between services and a broker's redelivery delay (a redelivery after its item left is late).

Bounds (:class:`StoreLimits`, like the Collector's servicegraph connector's ``store``): a group
open for longer than ``ttl`` is dropped as **incomplete**; beyond ``max_items`` open groups or
``max_spans`` spans held, the oldest groups are dropped (also incomplete, reason ``limit``);
between two flushes at most ``max_spans`` more spans are taken in, the rest counted as
``dropped`` and not held (a span counts as one plus its span links, for both bounds: a link
costs about what a span does, and batch consumers carry hundreds); the traces such a drop cut
into are never emitted (their values would miss the dropped spans): their groups leave as
incomplete (``limit``) and their later spans count as late. So memory never grows past about
``2 * max_spans`` spans, whatever arrives. Everything is counted (:class:`Counts`): spans that
match no stage, items completed, groups expired incomplete (by reason), consumers whose
producer had already expired, negative waits (clock skew; kept, not clamped, as the map keeps
them).

A stage present only through a child span is not complete yet: a held INTERNAL, CLIENT or
PRODUCER span whose parent is not held (in a stage matched by service alone, that parent is
the same service's, so the same stage's, typically exported later on its SDK's own timer)
keeps its group waiting, since the stage's wait and process would be the child's. Such a
span whose parent never comes (an instrumentation that parents an INTERNAL span on a remote
span of an untraced service) leaves its group incomplete at ``ttl``, never with a wrong value.

A group that is incomplete is never emitted: a receiver that sees part of an item (its other
spans went to another receiver) reports it as incomplete, never a wrong wait.

**Busy groups** (settle starvation): a group that has a span of every stage but never goes
quiet for ``settle`` (a long-lived trace that keeps getting spans, a loop of consumers linked
into one component) reaches ``ttl`` still receiving spans. It is dropped with its own reason,
``busy`` (not ``ttl``, which means a stage never showed up), and not emitted: its next span
could change its lead time or add a stage visit, so any value emitted from it might be wrong.
A stream with such items needs a longer ``--live-ttl`` or a shorter ``--live-settle``, or its
traces are sessions rather than items. Spans of a busy group's traces that come after it was
dropped are counted as late (below), not as a new group.

**Late spans**: a span that arrives after its item was emitted (its trace ended the quiet
time, then one more span came) is not a new item. The store remembers the traces it emitted
(the last ``max_spans`` of them, a bounded ring of 64-bit keys); a group containing one of
them, or linked to one of them (a consumer in a new trace), at a flush is dropped and its
spans counted as ``spans_late``, not as an incomplete group.
The emitted values stand (the late span was not in them). A span later than the ring's memory
falls back to an incomplete group (``ttl``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from collectors.spool.limits import LimitError, require_positive
from mapper.analysis.flow_spans import upstream_indices
from mapper.analysis.items import id_key
from mapper.analysis.liveflow import open_handovers, pending_items, reached, stage_outcomes
from mapper.analysis.livegroups import Grouped, grouped, groups, in_sorted, truncated_groups
from mapper.analysis.traces import StageMatch, TraceTable, build_trace_table, match_stages
from mapper.core.spans import KIND_CLIENT, KIND_INTERNAL, KIND_PRODUCER, SpanBatch

#: Why a group left the store without being emitted.
EXPIRED_TTL = "ttl"
EXPIRED_LIMIT = "limit"
EXPIRED_RELOAD = "reload"
#: A complete group that never went quiet for ``settle`` before ``ttl`` (settle starvation).
EXPIRED_BUSY = "busy"
#: Every reason, as ``/metrics`` lists them.
INCOMPLETE_REASONS = (EXPIRED_TTL, EXPIRED_BUSY, EXPIRED_LIMIT, EXPIRED_RELOAD)


@dataclass(frozen=True)
class StoreLimits:
    """How much the store may hold, and for how long (seconds, items, spans)."""

    ttl: float = 10.0
    max_items: int = 10_000
    max_spans: int = 200_000
    settle: float = 1.0

    def __post_init__(self) -> None:
        """Refuse limits under which nothing is ever emitted (:class:`LimitError`, naming the field)."""
        require_positive(self, "ttl", "max_items", "max_spans")
        if not (isinstance(self.settle, int | float) and self.settle >= 0):
            raise LimitError("settle", f"{self.settle!r} is not a number >= 0")
        if self.settle >= self.ttl:
            # an item is emitted once quiet for ``settle`` and dropped ``ttl`` after its first span
            raise LimitError("settle", f"{self.settle:g} s is not shorter than the ttl ({self.ttl:g} s): "
                             "every item would be dropped before it could be emitted")


@dataclass(frozen=True)
class LiveStream:
    """What the store needs of a stream spec: its stages' selectors in flow order, each
    stage's upstream stage (None: first), and the span columns kept per item as labels."""

    name: str
    matches: tuple[StageMatch, ...]
    upstream: Mapping[str, str | None]
    label_columns: tuple[str, ...] = ()

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(m.stage for m in self.matches)


@dataclass(frozen=True)
class Values:
    """One part's values of completed items: seconds, the trace id (hex) of each item for the
    exemplar, and each label column's value per value (``str`` or None)."""

    stage: str | None  # None: the lead time
    part: str  # "wait" | "process" | "lead"
    seconds: np.ndarray
    trace_ids: np.ndarray
    labels: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Counts:
    """Running totals since the store started (what ``/metrics`` shows as counters)."""

    spans_matched: int = 0
    spans_unmatched: int = 0
    spans_dropped: int = 0  # taken in over the per-flush bound: not held
    items_completed: int = 0
    lead_times: int = 0
    incomplete: Counter[str] = field(default_factory=Counter)  # reason -> groups
    producer_expired: int = 0  # consumer spans linked to a span that expired before
    spans_late: int = 0  # spans of a trace whose item had already left (emitted, or dropped as busy)
    negative_waits: Counter[str] = field(default_factory=Counter)  # stage -> waits < 0
    #: stage -> outcome (passed, stopped, failed, retried) -> items emitted
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Flush:
    """What one flush emitted, and what the store holds after it."""

    values: tuple[Values, ...]
    completed: int
    expired: Mapping[str, int]
    open_items: int
    held_spans: int
    #: Per stage, the emitted items by outcome (:func:`mapper.analysis.liveflow.stage_outcomes`).
    outcomes: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


class JoinStore:
    """Spans of one stream until their item is complete; thread-safe (accept from request
    threads, flush from a timer). Times are the caller's clock (``time.monotonic()``)."""

    def __init__(self, stream: LiveStream, limits: StoreLimits | None = None) -> None:
        self.stream = stream
        self.limits = limits or StoreLimits()
        self.counts = Counts()
        self._lock = threading.Lock()
        self._chunks: list[tuple[SpanBatch, np.ndarray]] = []  # (matched spans, arrival per span)
        self._pending = 0  # spans accepted since the last flush, plus their links (the bound's cost)
        self._pending_rows = 0  # spans accepted since the last flush
        self._held: tuple[SpanBatch, np.ndarray] | None = None  # what the last flush kept
        self._open_items = 0
        self._up = upstream_indices(stream.stages, stream.upstream)
        #: Per stage: open hand-overs to it held after the last flush (items waiting before it).
        self.inventory: dict[str, int] = {}
        # Keys of spans dropped incomplete (bounded ring): a consumer linked to one of them
        # is counted as "producer expired" instead of waiting for it in vain.
        self._expired = np.zeros(0, dtype=np.uint64)
        # Keys of traces emitted (bounded ring): a later span of one of them is late.
        self._emitted = np.zeros(0, dtype=np.uint64)
        self._emitted_sorted = self._emitted  # the same keys sorted, for the lookups
        # Keys of traces some of whose spans were dropped at accept since the last flush.
        self._truncated: list[np.ndarray] = []
        self._truncated_n = 0

    # -- taking spans in -----------------------------------------------------------------

    def accept(self, batch: SpanBatch, now: float | np.ndarray) -> None:
        """Keep ``batch``'s spans that match a stage; count the others. ``now``: when the spans
        arrived, one time for all or one per span."""
        if len(batch) == 0:
            return
        stage_i = match_stages(batch, self.stream.matches)
        keep = np.flatnonzero(stage_i >= 0)
        with self._lock:
            self.counts.spans_unmatched += len(batch) - keep.size
            room = self.limits.max_spans - self._pending
            # A span link costs about what a span does (four 64-bit columns): each span counts
            # as itself plus its links, so batch consumers with 100 links each cannot hold 100x
            # the memory the bound promises.
            cost = np.cumsum(1 + batch.all_links.counts(len(batch))[keep])
            fit = int(np.searchsorted(cost, room, side="right"))
            if fit < keep.size:
                self.counts.spans_dropped += keep.size - fit
                # The traces cut into must not be emitted with part of their spans: remember
                # them (bounded like the other rings) so the flush drops them as incomplete.
                gone = keep[fit:]
                self._note_cut(batch.trace_hi[gone], batch.trace_lo[gone])
                keep, cost = keep[:fit], cost[:fit]
            if not keep.size:
                return
            self.counts.spans_matched += keep.size
            self._pending += int(cost[-1])
            self._pending_rows += keep.size
            taken = batch if keep.size == len(batch) else batch.take(keep)
            arrival = np.broadcast_to(np.asarray(now, dtype=np.float64), (len(batch),))[keep]
            self._chunks.append((taken, arrival))

    def cut_traces(self, trace_hi: np.ndarray, trace_lo: np.ndarray) -> None:
        """Spans of these traces were lost before reaching the store (an export dropped under
        load): their items are left incomplete (``limit``) and never emitted from the rest."""
        with self._lock:
            self._note_cut(np.asarray(trace_hi, np.uint64), np.asarray(trace_lo, np.uint64))

    def _note_cut(self, hi: np.ndarray, lo: np.ndarray) -> None:
        """Remember traces cut into (the lock held), bounded like the other rings."""
        if self._truncated_n < self.limits.max_spans and hi.size:
            keys = np.unique(id_key(hi, lo, np.zeros(hi.size, np.uint64)))[:self.limits.max_spans]
            self._truncated.append(keys)
            self._truncated_n += keys.size

    @property
    def open_items(self) -> int:
        """Groups held after the last flush."""
        return self._open_items

    @property
    def held_spans(self) -> int:
        with self._lock:
            held = len(self._held[0]) if self._held is not None else 0
            return held + self._pending_rows

    # -- grouping, emitting, expiring ----------------------------------------------------

    def flush(self, now: float) -> Flush:
        """Group what is held; emit complete groups, drop expired ones, enforce the limits."""
        chunks, held, truncated = self._take_pending()
        if not chunks:
            self.inventory = {}
            return Flush((), 0, {}, 0, 0)
        g = grouped(chunks, len(held[0]) if held is not None else 0)
        lim = self.limits
        quiet = now - g.last >= lim.settle
        aged = now - g.first >= lim.ttl
        stage_i = match_stages(g.b, self.stream.matches)
        pending, to = open_handovers(g.b, stage_i, self.stream.matches, self.stream.upstream)
        late = self._late(g)
        entered = reached(self._present(g, stage_i, quiet), self._up) & ~late
        waiting = np.bincount(g.group[pending], minlength=g.n) > 0
        ready = entered & quiet & (~waiting | aged)
        busy = entered & ~waiting & ~quiet & aged
        expired = ~ready & ~busy & ~late & aged
        ready, expired, table, stragglers = self._stragglers(g, ready, expired, waiting, pending)
        cut = self._over_limits(g, ~ready & ~expired & ~busy & ~late)
        if truncated:  # spans of these groups were dropped at accept: incomplete, never emitted
            trunc = truncated_groups(g, truncated)
            cut |= trunc
            ready &= ~trunc
            expired &= ~trunc
            busy &= ~trunc
            late &= ~trunc
            if trunc.any():
                table = None  # built again without them
        kept = (~ready & ~expired & ~busy & ~cut & ~late)[g.group] & pending
        self.inventory = {self.stream.stages[k]: int(n) for k, n in
                          enumerate(np.bincount(to[kept], minlength=len(self._up))) if n}
        return self._settle(g, _Fate(ready, expired, busy, cut, late), table, stragglers)

    def _take_pending(self) -> tuple[list[tuple[SpanBatch, np.ndarray]], tuple[SpanBatch, np.ndarray] | None,
                                     list[np.ndarray]]:
        """Everything accepted since the last flush, after what that flush held (first), and
        the keys of the traces cut into since; those traces' later spans count as late."""
        with self._lock:
            chunks, self._chunks, self._pending, self._pending_rows = self._chunks, [], 0, 0
            held = self._held
            truncated, self._truncated, self._truncated_n = self._truncated, [], 0
        if truncated:  # their later spans are late, never a new (partial) item
            keys = np.unique(np.concatenate(truncated))
            self._emitted = np.concatenate([self._emitted, keys])[-self.limits.max_spans:]
            self._emitted_sorted = np.sort(self._emitted)
        if held is not None:
            chunks.insert(0, held)
        return chunks, held, truncated

    def _present(self, g: Grouped, stage_i: np.ndarray, quiet: np.ndarray) -> np.ndarray:
        """Per group and stage: whether the group has a span of the stage that counts yet.

        A span made inside an operation of its own service (INTERNAL, CLIENT, PRODUCER) whose
        parent is not held yet: the parent is of the same service, so of the same stage when
        the stage is matched by service alone, and comes in a later export (each service's
        SDK exports on its own timer). Until it comes the stage's wait and process would be
        the child's, not the stage's: the group waits (and expires at ttl if it never comes).
        Looked up only in the groups that could be emitted now (quiet)."""
        b, group = g.b, g.group
        stage_i = stage_i.astype(np.int64)
        present = np.zeros((g.n, len(self.stream.matches)), dtype=bool)
        present[group, stage_i] = True
        rows = np.flatnonzero(quiet[group])
        by_service = np.array([m.span_name is None and not m.attributes for m in self.stream.matches])
        inner = rows[np.isin(b.kind[rows], (KIND_INTERNAL, KIND_CLIENT, KIND_PRODUCER))
                     & (b.parent_id[rows] != 0) & by_service[stage_i[rows]]]
        if inner.size:
            held_keys = np.sort(id_key(b.trace_hi[rows], b.trace_lo[rows], b.span_id[rows]))
            orphan = ~in_sorted(id_key(b.trace_hi[inner], b.trace_lo[inner], b.parent_id[inner]), held_keys)
            present[group[inner[orphan]], :] = False
        return present

    def _late(self, g: Grouped) -> np.ndarray:
        """Groups with a new span of a trace already emitted, or linked to one (a consumer in a
        new trace linked to an emitted producer's trace). Held spans were checked when they came."""
        late = np.zeros(g.n, dtype=bool)
        b, fresh = g.b, g.fresh
        if self._emitted_sorted.size and fresh < len(b):
            hi, lo = b.trace_hi[fresh:], b.trace_lo[fresh:]
            hit = in_sorted(id_key(hi, lo, np.zeros(hi.size, np.uint64)), self._emitted_sorted)
            late[g.group[fresh:][hit]] = True
            links = b.all_links
            new = links.row >= fresh
            if new.any():
                lhi, llo = links.trace_hi[new], links.trace_lo[new]
                hit = in_sorted(id_key(lhi, llo, np.zeros(lhi.size, np.uint64)), self._emitted_sorted)
                late[g.group[links.row[new][hit]]] = True
        return late

    def _stragglers(self, g: Grouped, ready: np.ndarray, expired: np.ndarray, waiting: np.ndarray,
                    pending: np.ndarray) -> tuple[np.ndarray, np.ndarray, TraceTable | None, int]:
        """The ready groups, the expired ones, the ready groups' table when it can be reused,
        and the items to count incomplete.

        A group still holding an open hand-over at ttl (a batch or a fan-out whose slowest
        item's consumer never came) emits its items and counts those whose hand-over was not
        taken as incomplete; a group all of whose items wait is expired instead."""
        if not ready.any():
            return ready, expired, None, 0
        rows = g.rows(ready)
        table = self._table(g.b.take(rows))
        at_ttl = ready & waiting
        if not at_ttl.any():
            return ready, expired, table, 0
        items_n, pend_n = pending_items(table, pending[rows], g.group[rows], g.n)
        gone = at_ttl & (pend_n >= items_n)
        stragglers = int(pend_n[at_ttl & ~gone].sum())
        if gone.any():  # the table is built again for the groups that are ready
            return ready & ~gone, expired | gone, None, stragglers
        return ready, expired, table, stragglers

    def _over_limits(self, g: Grouped, open_g: np.ndarray) -> np.ndarray:
        """Open groups past ``max_items`` or ``max_spans`` (a span counts with its links): the
        oldest go first."""
        lim = self.limits
        open_i = np.flatnonzero(open_g)
        size = np.bincount(g.group, weights=1 + g.b.all_links.counts(len(g.b)), minlength=g.n)
        newest_first = open_i[np.argsort(g.first[open_i], kind="stable")][::-1]
        fits = (np.arange(newest_first.size) < lim.max_items) & (np.cumsum(size[newest_first]) <= lim.max_spans)
        cut = np.zeros(g.n, dtype=bool)
        cut[newest_first[~fits]] = True
        return cut

    def _settle(self, g: Grouped, fate: _Fate, table: TraceTable | None, stragglers: int) -> Flush:
        """Emit the ready groups, forget the gone ones, hold the rest; count it all."""
        b, group = g.b, g.group
        values: tuple[Values, ...] = ()
        completed = 0
        outcomes: dict[str, dict[str, int]] = {}
        if fate.ready.any():
            rows = g.rows(fate.ready)
            sub = b.take(rows)
            if table is None:
                table = self._table(sub)
            values, completed = self._emit(table)
            outcomes = stage_outcomes(table, sub, self.stream.matches, self.stream.upstream)
            completed -= stragglers  # emitted with their group, but not through: counted incomplete
            self._remember_emitted(b, rows)
        if fate.busy.any():  # its later spans are late too, not a new group
            self._remember_emitted(b, g.rows(fate.busy))
        gone = fate.expired | fate.busy | fate.cut
        if gone.any():
            self._remember_expired(b, g.rows(gone))
        keep_g = ~fate.ready & ~gone & ~fate.late
        keep = g.rows(keep_g)
        kept = (b.take(keep), g.arrival[keep]) if keep.size else None
        expired_n = {EXPIRED_TTL: int(fate.expired.sum()) + stragglers, EXPIRED_BUSY: int(fate.busy.sum()),
                     EXPIRED_LIMIT: int(fate.cut.sum())}
        with self._lock:
            self._held = kept
            self._open_items = int(keep_g.sum())
            self.counts.spans_late += int(fate.late[group].sum())
            self.counts.items_completed += completed
            for stage, by in outcomes.items():
                self.counts.outcomes.setdefault(stage, Counter()).update(by)
            for reason, n in expired_n.items():
                if n:
                    self.counts.incomplete[reason] += n
        return Flush(values, completed, {k: v for k, v in expired_n.items() if v}, int(keep_g.sum()),
                     int(keep.size), outcomes)

    def drop_all(self, reason: str = EXPIRED_RELOAD) -> int:
        """Drop every open group (a spec reload), counted as incomplete; returns how many."""
        with self._lock:
            chunks, self._chunks, self._pending, self._pending_rows = self._chunks, [], 0, 0
            if self._held is not None:
                chunks.insert(0, self._held)
            self._held, self._open_items = None, 0
        n = groups(SpanBatch.concat([c[0] for c in chunks]))[1] if chunks else 0
        if n:
            with self._lock:
                self.counts.incomplete[reason] += n
        return n

    def _table(self, b: SpanBatch) -> TraceTable:
        """The map's kernel over ``b`` (whole groups), with the trace ids and label columns."""
        s = self.stream
        return build_trace_table(b, s.matches, s.upstream, ("trace_hi", "trace_lo", *s.label_columns))

    def _emit(self, table: TraceTable) -> tuple[tuple[Values, ...], int]:
        """The values of the complete groups in ``table`` (:meth:`_table` of their spans)."""
        s = self.stream
        hi = table.labels["trace_hi"]
        lo = table.labels["trace_lo"]
        ids = np.array([f"{int(h):016x}{int(v):016x}" for h, v in zip(hi, lo, strict=True)], dtype=object)
        out: list[Values] = []
        for stage in s.stages:
            f = table.stage_frame(stage)
            item = f["trace"].to_numpy()
            labels = {c: table.labels[c][item] for c in s.label_columns}
            out.append(Values(stage, "process", f["process"].to_numpy(), ids[item], labels))
            wait = f["wait"].to_numpy()
            has = ~np.isnan(wait)
            if has.any():
                neg = int(np.sum(wait[has] < 0))
                if neg:
                    with self._lock:
                        self.counts.negative_waits[stage] += neg
                out.append(Values(stage, "wait", wait[has], ids[item][has],
                                  {c: v[has] for c, v in labels.items()}))
        lead_items = table.lead_traces
        out.append(Values(None, "lead", table.lead, ids[lead_items],
                          {c: table.labels[c][lead_items] for c in s.label_columns}))
        with self._lock:
            self.counts.lead_times += int(table.lead.size)
        return tuple(out), int(table.traces)

    def _remember_emitted(self, b: SpanBatch, rows: np.ndarray) -> None:
        """Remember the traces of emitted (or busy) rows (bounded: the last ``max_spans`` traces)."""
        keys = np.unique(id_key(b.trace_hi[rows], b.trace_lo[rows], np.zeros(rows.size, np.uint64)))
        self._emitted = np.concatenate([self._emitted, keys])[-self.limits.max_spans:]
        self._emitted_sorted = np.sort(self._emitted)

    def _remember_expired(self, b: SpanBatch, rows: np.ndarray) -> None:
        """Count links to spans that expired earlier, then remember these spans (bounded)."""
        links = b.all_links
        if len(links) and self._expired.size:
            mine = np.isin(links.row, rows)
            keys = id_key(links.trace_hi[mine], links.trace_lo[mine], links.span_id[mine])
            late = int(np.isin(keys, self._expired).sum())
            if late:
                with self._lock:
                    self.counts.producer_expired += late
        keys = id_key(b.trace_hi[rows], b.trace_lo[rows], b.span_id[rows])
        self._expired = np.concatenate([self._expired, keys])[-self.limits.max_spans:]


@dataclass(frozen=True, eq=False)
class _Fate:
    """Per group, what this flush does with it (masks over groups)."""

    ready: np.ndarray  # emitted
    expired: np.ndarray  # dropped incomplete at ttl
    busy: np.ndarray  # complete but never quiet until ttl: dropped, its later spans late
    cut: np.ndarray  # dropped over the limits, or cut into at accept
    late: np.ndarray  # spans of emitted traces: dropped and counted late


def live_stream(name: str, matches: Sequence[StageMatch], upstream: Mapping[str, str | None],
                label_columns: Sequence[str] = ()) -> LiveStream:
    """A :class:`LiveStream` (a convenience for callers that build the selectors themselves)."""
    return LiveStream(name, tuple(matches), dict(upstream), tuple(label_columns))
