"""``/metrics`` negotiation and the protobuf exposition (collectors/spool/exposition.py), checked
with a protobuf parser built from metrics.proto's field numbers (tests/native_exposition.py)."""

from __future__ import annotations

import math

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.samples import Exemplar, Sample

from collectors.spool.exposition import PROTOBUF_TYPE, metrics_response, native_histogram, wants_protobuf
from mapper.analysis.livehist import native_index
from tests.native_exposition import PROMETHEUS_242_ACCEPT, decode_delimited


class _Live:
    """A collector like the live stream's: classic buckets plus a native sample per series."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def collect(self):  # type: ignore[no-untyped-def]
        fam = HistogramMetricFamily("lead_seconds", "Lead time.", labels=["stream"])
        v = self.values
        le = [0.01, 0.1]
        cum = [int((v <= b).sum()) for b in le] + [v.size]
        ex = Exemplar({"trace_id": "ab" * 16}, 0.05, 1_700_000_000.25)
        fam.add_metric(["q"], [("0.01", cum[0]), ("0.1", cum[1], ex), ("+Inf", cum[2])], float(v.sum()))
        pos = v[v > 0]
        idx = native_index(pos)
        first = int(idx.min())
        nh = native_histogram(3, 2.0**-128, int((v == 0).sum()), v.size, float(v.sum()),
                              np.bincount(idx - first), first, np.array([1]), -40, [ex])
        fam.samples.append(Sample("lead_seconds", {"stream": "q"}, 0.0, native_histogram=nh))
        yield fam


def _registry(values: np.ndarray) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    Counter("spans", "Spans.", ["transport"], registry=reg).labels("http").inc(3)
    Gauge("open_items", "Open.", registry=reg).set(7)
    Histogram("latency_seconds", "Latency.", buckets=[0.1, 1], registry=reg).observe(0.5)
    Summary("size_bytes", "Size.", registry=reg).observe(10)
    reg.register(_Live(values))  # type: ignore[arg-type]
    return reg


def test_prometheus_with_native_histograms_gets_protobuf_others_get_text() -> None:
    assert wants_protobuf(PROMETHEUS_242_ACCEPT)
    assert not wants_protobuf("application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
    assert not wants_protobuf("")
    assert not wants_protobuf("application/vnd.google.protobuf;proto=other;encoding=delimited")
    assert not wants_protobuf("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                              "encoding=delimited;q=0.1,text/plain;q=0.5")


def test_every_family_in_protobuf_with_classic_and_native_buckets_in_one_message() -> None:
    values = np.array([0.0, 0.005, 0.02, 0.05, 0.05, 0.2])
    body, ctype = metrics_response(_registry(values), PROMETHEUS_242_ACCEPT)
    assert ctype == PROTOBUF_TYPE
    fams = {f.name: f for f in decode_delimited(body)}
    assert fams["spans_total"].type == 0 and fams["spans_total"].metric[0].counter.value == 3
    assert fams["open_items"].metric[0].gauge.value == 7
    assert fams["latency_seconds"].metric[0].histogram.sample_count == 1
    assert [b.cumulative_count for b in fams["latency_seconds"].metric[0].histogram.bucket] == [0, 1]
    assert fams["size_bytes"].type == 2 and fams["size_bytes"].metric[0].summary.sample_sum == 10
    assert not any(n.endswith("_created") for n in fams)
    h = fams["lead_seconds"].metric[0].histogram
    assert (h.sample_count, h.schema, h.zero_count) == (6, 3, 1)
    assert math.isclose(h.sample_sum, values.sum())
    assert [(b.upper_bound, b.cumulative_count) for b in h.bucket] == [(0.01, 2), (0.1, 5)]
    assert h.bucket[1].exemplar.label[0].value == "ab" * 16 and h.bucket[1].exemplar.timestamp.nanos == 250_000_000
    assert len(h.exemplars) == 1
    # the native buckets give back every positive value's bucket
    got: dict[int, int] = {}
    index, count = 0, 0
    deltas = iter(h.positive_delta)
    for span in h.positive_span:
        index += span.offset
        for _ in range(span.length):
            count += next(deltas)
            if count:
                got[index] = count
            index += 1
    want = np.unique(native_index(values[values > 0]), return_counts=True)
    assert got == dict(zip(want[0].tolist(), want[1].tolist(), strict=True))
    assert [(s.offset, s.length) for s in h.negative_span] == [(-40, 1)] and list(h.negative_delta) == [1]


def test_text_formats_leave_the_native_sample_out() -> None:
    reg = _registry(np.array([0.02, 0.05]))
    for accept in ("application/openmetrics-text; version=1.0.0", "text/plain", ""):
        body, _ = metrics_response(reg, accept)
        lines = [x for x in body.decode().splitlines() if x.startswith("lead_seconds")]
        assert lines and all(x.startswith(("lead_seconds_bucket", "lead_seconds_sum", "lead_seconds_count"))
                             for x in lines), lines
