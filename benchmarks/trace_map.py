"""Part (b) of the trace benchmark: the whole ``latmap map`` over a spool of 1,000,000 spans,
next to a naive map (``MessageToDict`` plus a dict per span and Python loops per trace)
measured in the same run, cross-checked cell by cell. Run through ``trace_ingest.py
--part b`` (or ``all``); see that script for part (a).

The **linked variant** is the same stream from the same draws, with every consumer (the
``quotes`` consumer in alerting, the ``alerts`` consumer in notification) in a new trace
with a span link to its producer, and 10% of the notification consumers batched: one span
linked to 2-50 alerts, started when the last is ready. ``latmap map`` over its spool is
timed in the same run; its ratio to the parent variant's time is printed (target: at most
1.3x), and the waits (count, mean, p50, p99) and process counts of the stages before
notification must equal the parent variant's. Their process times are not compared: a
stage's self time leaves out the downstream spans that overlap it, and a batch moves its
items' notification span (it starts when the batch's last alert is ready), so a gateway
span that a notification used to overlap has more self time in the linked variant.
"""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otlp_load import ROOT, TARGET_RSS, kv, new_request

#: Part (b)'s value stream, in flow order: gateway -> marketdata -> pricing by synchronous HTTP
#: calls, pricing -> alerting and alerting -> notification through Kafka topics.
FLOW = ("gateway", "marketdata", "pricing", "alerting", "notification")
PERCENTILES = (0.5, 0.99, 0.9999)
TARGET_MAP_SECONDS = 5.0
TARGET_MAP_RATIO = 20.0
QUICK_SPANS = 50_000
_HOUR_NS = 3_600_000_000_000
_MS = 1_000_000
_FRAME = struct.Struct("<I")


@dataclass
class _Linker:
    """The linked variant's state: its own random draws (the stream's are not touched) and
    the notification batch being filled."""

    rng: random.Random
    pending: list[tuple[bytes, bytes, int, int]] = field(default_factory=list)
    target: int = 2
    skipped: int = 0  # spans of the parent shape not made (the batched items' own sends)

    def derived(self, trace: bytes, n: int) -> bytes:
        """The consumer's new trace id: the item's, with its first byte changed."""
        return bytes([trace[0] ^ (0x40 * n)]) + trace[1:]


def _stream_trace(rng: random.Random, scopes: dict[str, Any], t0: int, linker: _Linker | None = None) -> int:
    """One quote through the stream, as the spans of one trace starting at ``t0``; returns how many.

    Every trace has gateway, marketdata and pricing (server spans, nested INTERNAL work, a
    database call, the calls down the chain); 70% go on through the ``quotes`` topic to
    alerting (consumer span whose parent is the producer, nested rule evaluation), and 60% of
    those raise an alert through the ``alerts`` topic to notification (parent and link to the
    producer). 0.5% of notifications come from a host whose clock is behind: negative waits.
    """
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    trace = rng.getrandbits(128).to_bytes(16, "big")
    made = 0

    def span(svc: str, kind: int, name: str, start: int, end: int, parent: bytes,
             attrs: Sequence[tuple[str, str | int]] = (), link: bytes = b"", in_trace: bytes = b"",
             links: Sequence[tuple[bytes, bytes]] = (), sid: bytes = b"") -> bytes:
        nonlocal made
        sid = sid or rng.getrandbits(64).to_bytes(8, "big")
        s = scopes[svc].add(trace_id=in_trace or trace, span_id=sid, parent_span_id=parent, name=name, kind=kind,
                            start_time_unix_nano=start, end_time_unix_nano=end)
        s.attributes.extend(kv(k, v) for k, v in attrs)
        if link:
            s.links.add(trace_id=trace, span_id=link)
        for link_trace, link_span in links:
            s.links.add(trace_id=link_trace, span_id=link_span)
        made += 1
        return sid

    def lognormal(median_ns: float, sigma: float) -> int:
        return int(rng.lognormvariate(math.log(median_ns), sigma))

    start, dur, parent = t0, lognormal(20 * _MS, 0.5) + 2 * _MS, b""
    server = b""
    for depth, svc in enumerate(FLOW[:3]):
        http = [("http.request.method", "GET"), ("http.route", f"/{svc}/v1"), ("http.response.status_code", 200)]
        server = span(svc, Span.SPAN_KIND_SERVER, f"GET /{svc}/v1", start, start + dur, parent, http)
        work, work_end = start + rng.randint(2_000, 50_000), start + dur // 4
        inner = span(svc, Span.SPAN_KIND_INTERNAL, f"{svc} handle", work, work_end, server)
        if svc == "marketdata":
            span(svc, Span.SPAN_KIND_INTERNAL, "decode quotes", work + 1_000, (work + work_end) // 2, inner)
            span(svc, Span.SPAN_KIND_CLIENT, "SELECT quotes", work_end, work_end + dur // 20, server,
                 [("db.system", "postgresql"), ("db.statement", "SELECT * FROM quotes WHERE id=$1")])
        if depth == 2:
            break
        call_start, call_dur = start + dur // 3, dur // 2
        client = span(svc, Span.SPAN_KIND_CLIENT, f"call {FLOW[depth + 1]}", call_start, call_start + call_dur,
                      server, [("peer.service", FLOW[depth + 1])])
        net = rng.randint(20_000, 400_000)
        parent, start, dur = client, call_start + net, max(call_dur - 2 * net, 200_000)
    if rng.random() >= 0.7:
        return made
    p0 = start + dur * 8 // 10
    quotes = [("messaging.system", "kafka"), ("messaging.destination.name", "quotes")]
    pub = span("pricing", Span.SPAN_KIND_PRODUCER, "quotes publish", p0, p0 + 30_000, server, quotes)
    c0 = p0 + 30_000 + lognormal(3 * _MS, 1.0)
    cdur = lognormal(2 * _MS, 0.6) + 100_000
    t2 = linker.derived(trace, 1) if linker else trace  # linked: the consumer starts a new trace
    con = (span("alerting", Span.SPAN_KIND_CONSUMER, "quotes process", c0, c0 + cdur, b"", quotes, in_trace=t2,
                links=[(trace, pub)]) if linker
           else span("alerting", Span.SPAN_KIND_CONSUMER, "quotes process", c0, c0 + cdur, pub, quotes))
    e0, e1 = c0 + rng.randint(5_000, 50_000), c0 + cdur * 7 // 10
    rules = span("alerting", Span.SPAN_KIND_INTERNAL, "evaluate rules", e0, e1, con, in_trace=t2)
    span("alerting", Span.SPAN_KIND_INTERNAL, "match", e0 + 1_000, (e0 + e1) // 2, rules, in_trace=t2)
    if rng.random() >= 0.6:
        return made
    a0 = c0 + cdur * 8 // 10
    alerts = [("messaging.system", "kafka"), ("messaging.destination.name", "alerts")]
    pub = span("alerting", Span.SPAN_KIND_PRODUCER, "alerts publish", a0, a0 + 20_000, con, alerts, in_trace=t2)
    wait = lognormal(8 * _MS, 0.8) if rng.random() >= 0.005 else -rng.randint(10_000, 2 * _MS)
    n0, ndur = a0 + 20_000 + wait, lognormal(4 * _MS, 0.5) + 500_000
    post0 = n0 + rng.randint(10_000, 100_000)
    if linker is None:
        send = span("notification", Span.SPAN_KIND_CONSUMER, "alerts send", n0, n0 + ndur, pub, alerts, link=pub)
        span("notification", Span.SPAN_KIND_CLIENT, "POST /v1/send", post0, n0 + ndur * 9 // 10, send,
             [("peer.service", "smtp-relay")])
        return made
    # the same draws as the parent shape, whatever is made of them
    send_sid, post_sid = (rng.getrandbits(64).to_bytes(8, "big") for _ in range(2))
    if linker.rng.random() < 0.1:  # batched: sent with the next 1-49 alerts, when the last is ready
        linker.pending.append((t2, pub, n0, ndur))
        if len(linker.pending) < linker.target:
            linker.skipped += 2
            return made + 2
        batch, linker.pending, linker.target = linker.pending, [], linker.rng.randint(2, 50)
        n0 = max(b[2] for b in batch)
        ndur = batch[0][3]
        post0 = n0 + (post0 - batch[-1][2])
        links = [(b[0], b[1]) for b in batch]
    else:
        links = [(t2, pub)]
    t3 = linker.derived(trace, 2)
    send = span("notification", Span.SPAN_KIND_CONSUMER, "alerts send", n0, n0 + ndur, b"", alerts, in_trace=t3,
                links=links, sid=send_sid)
    span("notification", Span.SPAN_KIND_CLIENT, "POST /v1/send", post0, n0 + ndur * 9 // 10, send,
         [("peer.service", "smtp-relay")], in_trace=t3, sid=post_sid)
    return made


def build_stream_requests(total_spans: int, seed: int = 11, end_ns: int | None = None,
                          linked: bool = False) -> tuple[list[tuple[bytes, int]], int]:
    """Export requests of >= ``total_spans`` distinct spans of :data:`FLOW` traces, and that count.

    Built like part (a)'s (500-2000 spans a request, one resource per service, the same
    attributes), but the traces follow one value stream so that they can be mapped. Traces
    start in time order over the hour before ``end_ns`` (default: now) minus one hour, as a
    Collector forwards them; one request in 200 is sent twice (a retried export), so the map
    has duplicates to drop.
    """
    rng = random.Random(seed)
    linker = _Linker(random.Random(seed + 1)) if linked else None
    end = (time.time_ns() if end_ns is None else end_ns) - _HOUR_NS
    step = _HOUR_NS * 14 // max(total_spans, 1)  # ~14 spans a trace: the traces fill the hour
    t = end - _HOUR_NS
    made = 0
    requests: list[tuple[bytes, int]] = []
    while made < total_spans:
        target = rng.randint(500, 2000)
        req, scopes = new_request(FLOW)
        n = 0
        while n < target:
            n += _stream_trace(rng, scopes, t, linker)
            t += rng.randint(0, 2 * step)
        body = req.SerializeToString()
        requests.append((body, n))
        if len(requests) % 200 == 3:  # the 3rd, the 203rd ... request is retried
            requests.append((body, n))
        made += n
    if linker is not None:
        made -= linker.skipped  # the batched items' own sends, and the last batch (never sent)
    return requests, made


def write_spool(requests: Sequence[tuple[bytes, int]], directory: Path) -> tuple[int, int]:
    """Send every request through the receiver's export path into a spool at ``directory``,
    then compact it all to Parquet; returns (Parquet files, their bytes).

    :meth:`Receiver.export` is what ``latmap serve`` runs for each OTLP request (decode, append,
    fsync); only the HTTP framing is left out, and decoding runs in this process (the workers
    run the same function, and take seconds to start). Segments are cut at
    ~1/60 of the data, as ``segment_age=60s`` cuts an hour of traffic in production, so the
    map reads a realistic number of Parquet files.
    """
    from collectors.spool.receiver import Receiver
    from collectors.spool.store import Spool, SpoolLimits

    segment = max(1 << 18, sum(len(b) for b, _ in requests) // 120)  # columns ~ half the protobuf
    with Spool(directory, SpoolLimits(segment_bytes=segment), compact=False) as spool:
        with Receiver(spool, http=None, grpc=None, decode_workers=0) as rx:
            outcomes = [rx.export(body, "protobuf", "bench") for body, _ in requests]
        spool.rotate()
        spool.compact()
    rejected = sum(o.rejected_spans for o in outcomes)
    if rejected:
        raise RuntimeError(f"the receiver rejected {rejected} spans: {outcomes[0].rejected}")
    leftover = list((directory / "_wal").glob("*.wal"))
    if leftover:
        raise RuntimeError(f"{len(leftover)} segments were not compacted")
    files = list(directory.glob("date=*/hour=*/*.parquet"))
    return len(files), sum(f.stat().st_size for f in files)


STREAM_SPEC = """\
name: quotes-bench
window: 3h
percentiles: [{percentiles}]
sources:
  spans: {{kind: traces, path: "{spool}"}}
stages:
{stages}
"""


def write_stream_spec(path: Path, spool: Path) -> None:
    stages = "\n".join(f"  - {{name: {s}, owner: {s}-team, traces: {{source: spans, service: {s}}}}}" for s in FLOW)
    path.write_text(STREAM_SPEC.format(percentiles=", ".join(f"{100 * q:g}" for q in PERCENTILES), spool=spool,
                                       stages=stages))


# --- the naive map ------------------------------------------------------------------------




# --- measuring and comparing --------------------------------------------------------------


@dataclass(frozen=True)
class MapRun:
    run: str
    seconds: float  # wall time of the whole process, interpreter start included
    peak_rss_mib: float  # the process's own peak RSS (ru_maxrss from wait4)
    exit_code: int
    cpu_seconds: float  # user + system time of the process (all its threads): steady when others share the CPUs


@dataclass(frozen=True)
class CrossCheck:
    against: str  # "report" (report.json of the CLI run) or "library" (the same numbers unrounded)
    what: str  # "pricing wait", "hop marketdata->pricing", "end to end"
    stat: str  # "present", "count", "mean" or a percentile label ("p99")
    latmap: float | None
    naive: float | None
    ok: bool
    note: str = ""


@dataclass(frozen=True)
class PartB:
    spans: int
    requests: int
    traces: int
    parquet_files: int
    parquet_mib: float
    latmap: MapRun
    naive: MapRun
    checks: tuple[CrossCheck, ...]
    missed: tuple[str, ...]  # targets missed
    failed: tuple[str, ...]  # the run itself failed: a process exited badly, or the numbers disagree
    linked: LinkedRun | None = None  # the linked variant, when run
    examples: ExamplesRun | None = None  # map with and without examples, when run

    @property
    def ratio(self) -> float:
        return self.naive.seconds / self.latmap.seconds


@dataclass(frozen=True)
class LinkedRun:
    """``latmap map`` over the linked variant's spool, and its comparison with the parent variant."""

    spans: int
    run: MapRun
    ratio: float  # its wall time over the parent variant's
    cpu_ratio: float
    cells: int  # parts compared with the parent variant (stages before notification)
    differ: tuple[str, ...]
    codes: tuple[str, ...]  # the report's check codes about links and items


#: The linked variant's time over the parent variant's, at most.
TARGET_LINKED_RATIO = 1.3
#: ``latmap map`` choosing examples (the default, 3 per percentile) over the same map without
#: (``examples: {count: 0}``), at most (issue 17).
TARGET_EXAMPLES_RATIO = 1.10
#: Runs of each, interleaved, whose medians are compared (the machine is shared).
EXAMPLE_REPEATS = 3


@dataclass(frozen=True)
class ExamplesRun:
    """``latmap map`` with and without examples over the same spool, runs interleaved; and,
    in this process, the selection alone against the library's map without it."""

    with_seconds: tuple[float, ...]
    without_seconds: tuple[float, ...]
    with_cpu: tuple[float, ...]
    without_cpu: tuple[float, ...]
    library_map_seconds: float  # build_map without examples, in this process
    choose_seconds: float  # choosing the examples of that map, in this process
    chosen: int  # examples chosen (all parts and percentiles, the median contrast included)

    @property
    def ratio(self) -> float:
        return statistics.median(self.with_seconds) / statistics.median(self.without_seconds)

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(self.with_cpu) / statistics.median(self.without_cpu)

    @property
    def library_ratio(self) -> float:
        return (self.library_map_seconds + self.choose_seconds) / self.library_map_seconds


def examples_overhead(spec: Path, work: Path, until: int, window: int, repeats: int = EXAMPLE_REPEATS) -> ExamplesRun:
    """Time ``latmap map`` with examples (the spec as written) and without (``examples:
    {count: 0}``), ``repeats`` times each, alternating so that load on the machine hits both."""
    from mapper.analysis.examples import choose
    from mapper.analysis.latency import example_thresholds
    from mapper.app.pipeline import build_map
    from mapper.core.model import Window
    from mapper.core.spec import load_spec

    without = work / "stream-no-examples.yaml"
    without.write_text(spec.read_text() + "examples: {count: 0}\n")
    runs: dict[bool, list[MapRun]] = {True: [], False: []}
    for i in range(repeats):
        for with_examples in ((True, False) if i % 2 == 0 else (False, True)):
            cmd = [sys.executable, "-m", "mapper", "map", "-c", str(spec if with_examples else without),
                   "--until", str(until), "--window", f"{window}s", "--format", "json", "--no-progress"]
            runs[with_examples].append(run_measured("examples" if with_examples else "no-examples", cmd,
                                                    work / f"examples-{with_examples}-{i}.json"))
    plain = load_spec(without)
    t0 = time.perf_counter()
    lm = build_map(plain, Window(float(until - window), float(until)))
    t1 = time.perf_counter()
    assert lm.traces is not None
    chosen = choose(lm.traces, example_thresholds(plain.percentiles, lm.stages, lm.end_to_end), 3)
    t2 = time.perf_counter()
    return ExamplesRun(tuple(r.seconds for r in runs[True]), tuple(r.seconds for r in runs[False]),
                       tuple(r.cpu_seconds for r in runs[True]), tuple(r.cpu_seconds for r in runs[False]),
                       t1 - t0, t2 - t1, sum(len(v) for v in chosen.by_key.values()))


def linked_variant(total_spans: int, end_ns: int, work: Path, parent: MapRun, parent_report: Path,
                   until: int, window: int) -> LinkedRun:
    """Build the linked variant from the same draws, spool it, time ``latmap map`` on it and
    compare every part of the stages before notification with the parent variant's report."""
    requests, spans = build_stream_requests(total_spans, end_ns=end_ns, linked=True)
    spool = work / "spool-linked"
    write_spool(requests, spool)
    del requests
    spec = work / "stream-linked.yaml"
    write_stream_spec(spec, spool)
    run = run_measured("linked", [sys.executable, "-m", "mapper", "map", "-c", str(spec), "--until", str(until),
                                  "--window", f"{window}s", "--format", "json", "--no-progress"],
                       work / "linked-report.json")
    differ: list[str] = []
    cells = 0
    codes: tuple[str, ...] = ()
    if run.exit_code == 0:
        mine = json.loads((work / "linked-report.json").read_text())
        theirs = json.loads(parent_report.read_text())
        codes = tuple(sorted({c["code"] for c in mine["checks"] if c["code"].startswith(("link-", "incomplete"))}))
        for a, b in zip(theirs["stages"], mine["stages"], strict=True):
            if a["name"] == "notification":
                continue  # the batches change it
            for part, keys in (("wait", ("count", "mean", "p50", "p99")), ("process", ("count",))):
                for key in keys:
                    cells += 1
                    x = None if a[part] is None else _numbers(a[part][key])
                    y = None if b[part] is None else _numbers(b[part][key])
                    if x != y:
                        differ.append(f"{a['name']} {part} {key}: parent {x!r}, linked {y!r}")
    return LinkedRun(spans, run, run.seconds / parent.seconds, run.cpu_seconds / parent.cpu_seconds, cells,
                     tuple(differ), codes)


def _numbers(cell: Any) -> Any:
    """A report cell without its examples (they name different traces in the two variants)."""
    return {k: v for k, v in cell.items() if k != "examples"} if isinstance(cell, dict) else cell


def run_measured(run: str, cmd: Sequence[str], out: Path) -> MapRun:
    """Run ``cmd`` with stdout to ``out`` (stderr next to it); its wall time and own peak RSS."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with open(out, "wb") as stdout, open(out.with_suffix(".stderr"), "wb") as stderr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return MapRun(run, seconds, usage.ru_maxrss / 1024, proc.returncode, usage.ru_utime + usage.ru_stime)


def _num(x: float) -> float:
    """As report.json writes numbers: 9 significant digits."""
    return float(f"{x:.9g}")


def _as_reported(got: float, want: float) -> bool:
    """``got`` (from report.json) is ``want`` written to 9 significant digits.

    An interpolated percentile of integer nanoseconds often sits exactly half-way between two
    9-digit numbers, and there one ulp of difference in how the interpolation is computed
    (numpy's ``a + g*(b-a)`` against ``statistics.quantiles``' weighted sum) decides which way
    it rounds; so the rounding of a neighbour within 1e-12 counts too.
    """
    return got in (_num(want), _num(want * (1 - 1e-12)), _num(want * (1 + 1e-12)))


def _same(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def library_numbers(spec_path: Path, until: float, window: float) -> dict[str, Any]:
    """latmap's numbers before report.json rounds them: the library call the CLI makes
    (:func:`mapper.app.pipeline.build_map`, same spec and window), in report.json's shape."""
    from mapper.app.pipeline import build_map, window_for
    from mapper.core.distribution import Distribution, percentile_label
    from mapper.core.model import MeasurementResult
    from mapper.core.spec import load_spec

    spec = load_spec(spec_path)
    lm = build_map(spec, window_for(spec, window, until))

    def latency(d: Distribution | None) -> dict[str, Any] | None:
        if d is None:
            return None
        out: dict[str, Any] = {"count": d.count, "mean": d.mean}
        for q in spec.percentiles:
            e = d.quantile(q)
            out[percentile_label(q)] = {"value": e.value, "note": e.note}
        return out

    def part(r: MeasurementResult | None) -> dict[str, Any] | None:
        return None if r is None else latency(r.distribution)

    return {"stages": [{"name": s.stage.name, "wait": part(s.wait), "process": part(s.process),
                        "total": latency(s.total)} for s in lm.stages],
            "hops": [{"from": h.source, "to": h.target, "latency": latency(h.latency)} for h in lm.hops],
            "end_to_end": latency(lm.end_to_end)}


def cross_check(latmap: dict[str, Any], naive: dict[str, Any], against: str) -> list[CrossCheck]:
    """Every count, mean and percentile of latmap's numbers against the naive ones.

    ``against="report"``: ``latmap`` is report.json, whose numbers have 9 significant digits
    (see :func:`_as_reported`); ``"library"``: the unrounded numbers of :func:`library_numbers`,
    which must agree within 1e-9 (relative). A percentile latmap declines ("too few samples")
    must be one the naive run has too few samples for as well.
    """
    from mapper.core.distribution import min_count, percentile_label

    agree = _as_reported if against == "report" else _same
    out: list[CrossCheck] = []

    def cells(what: str, lat: dict[str, Any] | None, nv: dict[str, Any] | None) -> None:
        if lat is None or nv is None:
            out.append(CrossCheck(against, what, "present", None if lat is None else lat["count"],
                                  None if nv is None else nv["count"], lat is None and nv is None))
            return
        out.append(CrossCheck(against, what, "count", lat["count"], nv["count"], lat["count"] == nv["count"]))
        out.append(CrossCheck(against, what, "mean", lat["mean"], nv["mean"], agree(lat["mean"], nv["mean"])))
        for q in PERCENTILES:
            label = percentile_label(q)
            got, want = lat[label]["value"], nv["quantiles"][str(q)]
            if got is None:
                few = nv["count"] < min_count(q)
                out.append(CrossCheck(against, what, label, None, want, few, "both: too few samples" if few else
                                      f"latmap gives none: {lat[label]['note']}"))
            else:
                out.append(CrossCheck(against, what, label, got, want, agree(got, want)))

    for stage in latmap["stages"]:
        for part in ("wait", "process", "total"):
            cells(f"{stage['name']} {part}", stage[part], naive["parts"].get(f"{stage['name']}/{part}"))
    for hop in latmap["hops"]:
        cells(f"hop {hop['from']}->{hop['to']}", hop["latency"], naive["parts"].get(f"{hop['to']}/total"))
    cells("end to end", latmap["end_to_end"], naive["lead"])
    return out


def part_b(total_spans: int, workdir: Path | None = None, with_linked: bool = True,
           example_repeats: int = EXAMPLE_REPEATS) -> PartB:
    """Build the spool, then time ``latmap map`` and the naive map over it, each in its own process."""
    with tempfile.TemporaryDirectory(prefix="latmap-bench-map-") as tmp:
        work = workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        end_ns = time.time_ns()
        requests, spans = build_stream_requests(total_spans, end_ns=end_ns)
        proto = sum(len(b) for b, _ in requests)
        with open(work / "requests.bin", "wb") as f:
            for body, _ in requests:
                f.write(_FRAME.pack(len(body)) + body)
        t1 = time.perf_counter()
        spool = work / "spool"
        files, size = write_spool(requests, spool)
        n_requests = len(requests)
        del requests
        print(f"built {n_requests} requests, {spans:,} distinct spans, {proto / 2**20:.0f} MiB of protobuf in "
              f"{t1 - t0:.1f} s; spooled and compacted into {files} Parquet files ({size / 2**20:.0f} MiB) "
              f"in {time.perf_counter() - t1:.1f} s", flush=True)
        spec = work / "stream.yaml"
        write_stream_spec(spec, spool)
        until = end_ns // 1_000_000_000 + 60
        window = 3 * 3600
        config = {"services": list(FLOW), "upstream": [None, *range(len(FLOW) - 1)],
                  "start_ns": int((float(until) - float(window)) * 1e9), "end_ns": int(float(until) * 1e9),
                  "percentiles": list(PERCENTILES)}
        (work / "naive.json").write_text(json.dumps(config))
        latmap = run_measured("latmap", [sys.executable, "-m", "mapper", "map", "-c", str(spec), "--until",
                                         str(until), "--window", f"{window}s", "--format", "json", "--no-progress"],
                              work / "latmap-report.json")
        script = str(Path(__file__).with_name("trace_ingest.py"))
        naive = run_measured("naive", [sys.executable, script, "--naive-map", str(work / "requests.bin"),
                                       str(work / "naive.json")], work / "naive-result.json")
        failed = []
        for r in (latmap, naive):
            if r.exit_code != 0:
                err = (work / f"{r.run}-{'report' if r.run == 'latmap' else 'result'}.stderr").read_text()
                failed.append(f"{r.run} exited {r.exit_code}: {err.strip()[-2000:]}")
        checks: list[CrossCheck] = []
        traces = 0
        if not failed:
            report = json.loads((work / "latmap-report.json").read_text())
            result = json.loads((work / "naive-result.json").read_text())
            traces = result["traces"]
            checks = cross_check(report, result, "report")
            checks += cross_check(library_numbers(spec, float(until), float(window)), result, "library")
            if result["spans"] != spans:
                failed.append(f"the naive map kept {result['spans']:,} spans, {spans:,} were generated")
            if result["first_span_ties"]:
                failed.append(f"{result['first_span_ties']} stages start with two spans at once: the first is "
                              "ambiguous, so waits may legitimately differ")
            failed += [f"latmap ({c.against}) and the naive map disagree on {c.what} {c.stat}: {c.latmap!r} vs "
                       f"{c.naive!r} {c.note}" for c in checks if not c.ok]
        examples = None
        if not failed and example_repeats > 0:
            print("latmap map with and without examples...", flush=True)
            examples = examples_overhead(spec, work, until, window, example_repeats)
        linked = None
        if not failed and with_linked:
            print("linked variant: every consumer in a new trace, 10% of notifications batched...", flush=True)
            linked = linked_variant(total_spans, end_ns, work, latmap, work / "latmap-report.json", until, window)
            if linked.run.exit_code != 0:
                failed.append(f"latmap on the linked variant exited {linked.run.exit_code}")
            failed += [f"linked variant differs from the parent variant: {d}" for d in linked.differ]
    missed = []
    if linked is not None and linked.ratio > TARGET_LINKED_RATIO:
        missed.append(f"linked variant {linked.ratio:.2f}x the parent variant's time > {TARGET_LINKED_RATIO}x")
    if examples is not None and examples.ratio > TARGET_EXAMPLES_RATIO:
        missed.append(f"examples add {examples.ratio - 1:.1%} to latmap map > {TARGET_EXAMPLES_RATIO - 1:.0%}")
    if latmap.seconds >= TARGET_MAP_SECONDS:
        missed.append(f"latmap map {latmap.seconds:.2f} s >= {TARGET_MAP_SECONDS} s")
    if naive.seconds / latmap.seconds < TARGET_MAP_RATIO:
        missed.append(f"ratio {naive.seconds / latmap.seconds:.1f}x < {TARGET_MAP_RATIO}x")
    if latmap.peak_rss_mib * 2**20 >= TARGET_RSS:
        missed.append(f"latmap map peak RSS {latmap.peak_rss_mib:.0f} MiB >= 1 GiB")
    return PartB(spans, n_requests, traces, files, size / 2**20, latmap, naive, tuple(checks), tuple(missed),
                 tuple(failed), linked, examples)


def print_table_b(r: PartB) -> None:
    print(f"{'run':<8} {'spans':>10} {'traces':>8} {'seconds':>8} {'ratio':>7} {'CPU s':>7} {'ratio':>7} "
          f"{'peak RSS':>10} {'exit':>4}")
    for m in (r.latmap, r.naive):
        print(f"{m.run:<8} {r.spans:>10,} {r.traces:>8,} {m.seconds:>8.2f} {r.naive.seconds / m.seconds:>6.1f}x "
              f"{m.cpu_seconds:>7.2f} {r.naive.cpu_seconds / m.cpu_seconds:>6.1f}x {m.peak_rss_mib:>6.0f} MiB "
              f"{m.exit_code:>4}")
    print("seconds: wall time of each process, interpreter start and imports included; CPU s: its user + system "
          "time\n(all threads; does not move when other work shares the machine); peak RSS: its own ru_maxrss")
    if r.linked is not None:
        lk = r.linked
        m = lk.run
        print(f"{'linked':<8} {lk.spans:>10,} {'':>8} {m.seconds:>8.2f} {'':>7} {m.cpu_seconds:>7.2f} {'':>7} "
              f"{m.peak_rss_mib:>6.0f} MiB {m.exit_code:>4}")
        print(f"linked variant (every consumer in a new trace, 10% of notifications batched 2-50): "
              f"{lk.ratio:.2f}x the parent variant's wall time, {lk.cpu_ratio:.2f}x its CPU time "
              f"(target <= {TARGET_LINKED_RATIO:g}x: {'met' if lk.ratio <= TARGET_LINKED_RATIO else 'MISSED'}); "
              f"{lk.cells} cells (waits, process counts) before notification equal to the parent variant's: "
              f"{'yes' if not lk.differ else 'NO'}; checks: {', '.join(lk.codes) or 'none'}")
    if r.examples is not None:
        ex = r.examples
        print(f"examples: latmap map with examples (3 per percentile) {statistics.median(ex.with_seconds):.2f} s, "
              f"without {statistics.median(ex.without_seconds):.2f} s (medians of {len(ex.with_seconds)} interleaved "
              f"runs each): {ex.ratio:.3f}x wall, {ex.cpu_ratio:.3f}x CPU (target <= {TARGET_EXAMPLES_RATIO:g}x: "
              f"{'met' if ex.ratio <= TARGET_EXAMPLES_RATIO else 'MISSED'}); in this process the selection alone "
              f"takes {ex.choose_seconds * 1000:.0f} ms for {ex.chosen} examples against "
              f"{ex.library_map_seconds:.2f} s for the map ({ex.library_ratio:.3f}x)")
    targets = [(f"latmap map < {TARGET_MAP_SECONDS:g} s", r.latmap.seconds < TARGET_MAP_SECONDS),
               (f">= {TARGET_MAP_RATIO:g}x the naive map", r.ratio >= TARGET_MAP_RATIO),
               ("latmap peak RSS < 1 GiB", r.latmap.peak_rss_mib * 2**20 < TARGET_RSS)]
    print("targets: " + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in targets))
    cells = {(c.against, c.what, c.stat): c for c in r.checks}
    print(f"{'per hop (s), report.json':<32} {'latmap p50':>14} {'naive p50':>14} {'latmap p99':>14} {'naive p99':>14}")
    for what in dict.fromkeys(c.what for c in r.checks):
        p50, p99 = cells.get(("report", what, "p50")), cells.get(("report", what, "p99"))
        if p50 is None or p99 is None or what.startswith("hop "):
            continue  # no such part (a first stage's wait); hops repeat the stage totals
        name = what.replace(" total", " hop (wait+process)")
        print(f"{name:<32} {p50.latmap or 0:>14.9g} {p50.naive or 0:>14.9g} {p99.latmap or 0:>14.9g} "
              f"{p99.naive or 0:>14.9g}")
    for against, how in (("report", "at report.json's 9 significant digits"), ("library", "within 1e-9, unrounded")):
        mine = [c for c in r.checks if c.against == against]
        pct = [c for c in mine if c.stat.startswith("p") and c.stat != "present" and c.latmap is not None]
        rel = max((abs(c.latmap - c.naive) / abs(c.naive) for c in pct if c.latmap is not None and c.naive),
                  default=0.0)
        print(f"cross-check ({against}): {len(mine)} cells (counts, means, percentiles of every wait, process, hop "
              f"and the lead time; {len(pct)} percentiles with a value), {sum(not c.ok for c in mine)} disagree "
              f"{how}; largest relative difference of a percentile {rel:.1e}")


