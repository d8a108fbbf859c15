"""``/metrics`` content negotiation and Prometheus's protobuf exposition, hand-encoded.

prometheus-client (0.26) writes the text format and OpenMetrics 1.0, neither of which carries
a native histogram that Prometheus reads; Prometheus scrapes native histograms only from its
protobuf exposition (``io.prometheus.client.MetricFamily`` messages, each length-delimited).
:func:`metrics_response` answers a scrape in the format its ``Accept`` header prefers:

* ``application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited``
  (Prometheus asks for it first with ``--enable-feature=native-histograms``, or with
  ``scrape_protocols`` in later versions): **every** family of the registry is encoded, so the
  scrape loses nothing. Counters, gauges, summaries and classic histograms as their protobuf
  messages (``_created`` samples are left out), info and state sets as gauges, anything else
  untyped. A histogram sample that carries a prometheus-client ``NativeHistogram``
  (``Sample.native_histogram``) puts its schema, zero bucket, spans and deltas into the *same*
  ``Histogram`` message as the classic buckets of the same labels, as Prometheus expects with
  ``scrape_classic_histograms`` (it keeps both) and without it (the native one wins).
  Exemplars: each classic bucket's (``Bucket.exemplar``), and the native histogram's own list
  (``Histogram.exemplars``, read by Prometheus >= 2.49).
* OpenMetrics (exemplars) or the text format otherwise, by prometheus-client, without the
  native samples (their text form is not one Prometheus 2.x parses).

Field numbers are metrics.proto's (``prometheus/client_model``). Only this module writes them,
so ``/metrics`` of the receiver's HTTP server or of any other server is one call.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import BucketSpan, Exemplar, NativeHistogram, Sample

__all__ = ["PROTOBUF_TYPE", "encode_families", "metrics_response", "native_histogram", "wants_protobuf"]

PROTOBUF_TYPE = ("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
                 "encoding=delimited")
#: Gaps of at most this many empty buckets stay inside one span (zero deltas), as client_golang does.
SPAN_GAP = 2

# MetricType of metrics.proto
_COUNTER, _GAUGE, _SUMMARY, _UNTYPED, _HISTOGRAM, _GAUGE_HISTOGRAM = 0, 1, 2, 3, 4, 5


def _varint(n: int) -> bytes:
    n &= 0xFFFFFFFFFFFFFFFF  # negative int64: two's complement, ten bytes
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _len(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def _double(field: int, value: float) -> bytes:
    return _key(field, 1) + struct.pack("<d", value)


def _uint(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value)


def _sint(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint((value << 1) ^ (value >> 63))


def _str(field: int, text: str) -> bytes:
    return _len(field, text.encode())


def _labels(labels: dict[str, str]) -> bytes:
    return b"".join(_len(1, _str(1, k) + _str(2, v)) for k, v in sorted(labels.items()))


def _exemplar(ex: Exemplar) -> bytes:
    out = b"".join(_len(1, _str(1, k) + _str(2, v)) for k, v in sorted(ex.labels.items()))
    out += _double(2, float(ex.value))
    if ex.timestamp is not None:
        ts = float(ex.timestamp)
        sec = math.floor(ts)
        out += _len(3, _uint(1, sec) + _uint(2, round((ts - sec) * 1e9) % 1_000_000_000))
    return out


def native_histogram(schema: int, zero_threshold: float, zero_count: int, count: int, total: float,
                     positive: np.ndarray, positive_first: int, negative: np.ndarray | None = None,
                     negative_first: int = 0, exemplars: Sequence[Exemplar] = ()) -> NativeHistogram:
    """prometheus-client's ``NativeHistogram`` from dense bucket counts: ``positive[i]`` values
    in bucket ``positive_first + i`` (bucket ``k`` is ``(b^(k-1), b^k]``, ``b = 2^(2^-schema)``),
    ``negative`` likewise for ``-v``. Empty runs longer than :data:`SPAN_GAP` split the spans;
    deltas are each bucket's count minus the previous one's (vectorised)."""
    pos_spans, pos_deltas = _spans(np.asarray(positive, dtype=np.int64), positive_first)
    neg_spans, neg_deltas = (_spans(np.asarray(negative, dtype=np.int64), negative_first)
                             if negative is not None else ((), ()))
    return NativeHistogram(count, total, schema, zero_threshold, zero_count, pos_spans or None,
                           neg_spans or None, pos_deltas or None, neg_deltas or None, list(exemplars) or None)


def _spans(counts: np.ndarray, first: int) -> tuple[tuple[BucketSpan, ...], tuple[int, ...]]:
    nz = np.flatnonzero(counts)
    if nz.size == 0:
        return (), ()
    breaks = np.flatnonzero(np.diff(nz) > SPAN_GAP + 1)
    starts = np.concatenate(([nz[0]], nz[breaks + 1]))
    ends = np.concatenate((nz[breaks], [nz[-1]])) + 1  # exclusive
    offsets = np.concatenate(([starts[0] + first], starts[1:] - ends[:-1]))
    spans = tuple(BucketSpan(int(o), int(n)) for o, n in zip(offsets, ends - starts, strict=True))
    kept = np.concatenate([counts[s:e] for s, e in zip(starts, ends, strict=True)])
    deltas = np.diff(kept, prepend=0)
    return spans, tuple(int(d) for d in deltas)


def _histogram(samples: list[Sample], family: str, gauge: bool) -> bytes:
    count = total = None
    native: NativeHistogram | None = None
    buckets = b""
    for s in samples:
        if s.native_histogram is not None:
            native = s.native_histogram
        elif s.name.endswith("_bucket"):
            le = float(s.labels["le"])
            if math.isinf(le):
                count = count if count is not None else s.value
                ex = s.exemplar
                if ex is not None:  # the +Inf bucket's exemplar: no bucket message carries it
                    buckets += _len(3, _uint(1, int(s.value)) + _double(2, math.inf) + _len(3, _exemplar(ex)))
                continue
            b = _uint(1, int(s.value)) + _double(2, le)
            if s.exemplar is not None:
                b += _len(3, _exemplar(s.exemplar))
            buckets += _len(3, b)
        elif s.name in (family + "_count", family + "_gcount"):
            count = s.value
        elif s.name in (family + "_sum", family + "_gsum"):
            total = s.value
    if native is not None:
        count = native.count_value if count is None else count
        total = native.sum_value if total is None else total
    out = _uint(1, int(count or 0)) + _double(2, float(total or 0.0)) + buckets
    if native is not None:
        out += _sint(5, native.schema) + _double(6, native.zero_threshold) + _uint(7, int(native.zero_count))
        for spans, deltas, span_field, delta_field in ((native.neg_spans, native.neg_deltas, 9, 10),
                                                        (native.pos_spans, native.pos_deltas, 12, 13)):
            for sp in spans or ():
                out += _len(span_field, _sint(1, sp.offset) + _uint(2, sp.length))
            for d in deltas or ():
                out += _sint(delta_field, int(d))
        for ex in native.nh_exemplars or ():
            out += _len(16, _exemplar(ex))
    elif not gauge and not buckets and count is None:
        return b""
    return out


def _family(name: str, doc: str, kind: int, metrics: Iterable[bytes]) -> bytes:
    body = _str(1, name) + _str(2, doc) + _uint(3, kind) + b"".join(_len(4, m) for m in metrics)
    return _varint(len(body)) + body


def _by_labels(samples: Iterable[Sample], drop: str) -> dict[tuple[tuple[str, str], ...], list[Sample]]:
    groups: dict[tuple[tuple[str, str], ...], list[Sample]] = {}
    for s in samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != drop))
        groups.setdefault(key, []).append(s)
    return groups


def _encode_family(m: Metric) -> Iterator[bytes]:
    if m.type in ("histogram", "gaugehistogram"):
        metrics = []
        for key, samples in _by_labels(m.samples, "le").items():
            h = _histogram(samples, m.name, m.type == "gaugehistogram")
            metrics.append(_labels(dict(key)) + _len(7, h))
        yield _family(m.name, m.documentation, _HISTOGRAM if m.type == "histogram" else _GAUGE_HISTOGRAM, metrics)
    elif m.type == "summary":
        metrics = []
        for key, samples in _by_labels(m.samples, "quantile").items():
            summ = b""
            quantiles = b""
            for s in samples:
                if s.name == m.name + "_count":
                    summ += _uint(1, int(s.value))
                elif s.name == m.name + "_sum":
                    summ += _double(2, float(s.value))
                elif s.name == m.name and "quantile" in s.labels:
                    quantiles += _len(3, _double(1, float(s.labels["quantile"])) + _double(2, float(s.value)))
            metrics.append(_labels(dict(key)) + _len(4, summ + quantiles))
        yield _family(m.name, m.documentation, _SUMMARY, metrics)
    else:
        # counters (``_total`` samples: the family name Prometheus stores), gauges, info, state
        # sets, unknown: one family per sample name, ``_created`` left out
        by_name: dict[str, list[bytes]] = {}
        for s in m.samples:
            if s.name.endswith("_created") or s.native_histogram is not None:
                continue
            if m.type == "counter":
                value = _double(1, float(s.value)) + (_len(2, _exemplar(s.exemplar)) if s.exemplar else b"")
                by_name.setdefault(s.name, []).append(_labels(s.labels) + _len(3, value))
            elif m.type in ("gauge", "info", "stateset"):
                by_name.setdefault(s.name, []).append(_labels(s.labels) + _len(2, _double(1, float(s.value))))
            else:
                by_name.setdefault(s.name, []).append(_labels(s.labels) + _len(5, _double(1, float(s.value))))
        kind = {"counter": _COUNTER, "gauge": _GAUGE, "info": _GAUGE, "stateset": _GAUGE}.get(m.type, _UNTYPED)
        for name, metrics in by_name.items():
            yield _family(name, m.documentation, kind, metrics)


def encode_families(families: Iterable[Metric]) -> bytes:
    """The delimited protobuf exposition of prometheus-client metric families."""
    return b"".join(chunk for m in families for chunk in _encode_family(m))


def wants_protobuf(accept_header: str) -> bool:
    """True when ``Accept`` prefers (highest q, first on a tie) the delimited MetricFamily protobuf
    over OpenMetrics and the text format."""
    best_q, best = -1.0, False
    for part in accept_header.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        fields = {}
        for p in params:
            k, _, v = p.partition("=")
            fields[k.strip().lower()] = v.strip()
        try:
            q = float(fields.get("q", "1"))
        except ValueError:
            q = 0.0
        media = media.lower()
        if media == "application/vnd.google.protobuf":
            ok = (fields.get("proto") == "io.prometheus.client.MetricFamily"
                  and fields.get("encoding") == "delimited")
        else:
            ok = media in ("application/openmetrics-text", "text/plain", "*/*", "text/*")
        if ok and q > 0 and q > best_q:
            best_q, best = q, media == "application/vnd.google.protobuf"
    return best


class _ClassicOnly:
    """A registry's families without their native-histogram samples (for the text formats)."""

    def __init__(self, registry: Collector) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for m in self.registry.collect():
            if any(s.native_histogram is not None for s in m.samples):
                copy = Metric(m.name, m.documentation, m.type, m.unit)
                copy.samples = [s for s in m.samples if s.native_histogram is None]
                yield copy
            else:
                yield m


def metrics_response(registry: Collector, accept_header: str) -> tuple[bytes, str]:
    """The ``/metrics`` body and its content type for a scrape sending ``accept_header``."""
    if wants_protobuf(accept_header or ""):
        return encode_families(registry.collect()), PROTOBUF_TYPE
    encoder, content_type = choose_encoder(accept_header or "")
    return encoder(_ClassicOnly(registry)), content_type  # type: ignore[arg-type]
