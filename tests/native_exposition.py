"""Native histograms for the tests: an exporter's body (encoded by the product's
:mod:`collectors.spool.exposition`) and an independent decoder of Prometheus's protobuf
exposition, built from metrics.proto's field numbers with the protobuf runtime, so the
hand-written encoder is checked against a real protobuf parser.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from collectors.spool.exposition import PROTOBUF_TYPE, encode_families, native_histogram
from mapper.analysis.livehist import native_index

__all__ = ["PROMETHEUS_242_ACCEPT", "PROTOBUF_TYPE", "bounds", "bucket_index", "decode_delimited",
           "histogram_family"]

#: The Accept header of Prometheus 2.42 with --enable-feature=native-histograms (scrape/scrape.go).
PROMETHEUS_242_ACCEPT = ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                         "encoding=delimited;q=0.7,application/openmetrics-text;version=1.0.0;q=0.5,"
                         "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,"
                         "*/*;q=0.2")


def bucket_index(values: np.ndarray, schema: int) -> np.ndarray:
    """Native bucket index of each positive value: bucket i is (2^((i-1)/2^s), 2^(i/2^s)]."""
    return native_index(values, schema)


def histogram_family(name: str, values: np.ndarray, schema: int = 3,
                     labels: Iterable[tuple[str, str]] = ()) -> bytes:
    """One MetricFamily with one native histogram of ``values`` (all positive), delimited."""
    m = Metric(name, "A native histogram.", "histogram")
    idx = native_index(values, schema) if values.size else np.zeros(0, np.int64)
    first = int(idx.min()) if idx.size else 0
    counts = np.bincount(idx - first) if idx.size else np.zeros(0, np.int64)
    nh = native_histogram(schema, 2.0**-128, 0, int(values.size), float(values.sum()), counts, first)
    m.samples.append(Sample(name, dict(labels), 0.0, native_histogram=nh))
    return encode_families([m])


def bounds(index: int, schema: int) -> tuple[float, float]:
    base = 2.0 ** (2.0**-schema)
    return base ** (index - 1), base**index


assert math.isclose(bounds(1, 0)[1], 2.0)


def _messages() -> Any:
    f = descriptor_pb2.FileDescriptorProto(name="latmap_test_metrics.proto", package="io.prometheus.client",
                                           syntax="proto2")
    T = descriptor_pb2.FieldDescriptorProto
    rep, opt = T.LABEL_REPEATED, T.LABEL_OPTIONAL

    def msg(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        m = f.message_type.add(name=name)
        for fname, number, label, ftype, type_name in fields:
            fd = m.field.add(name=fname, number=number, label=label, type=ftype)
            if type_name:
                fd.type_name = f".io.prometheus.client.{type_name}"

    msg("LabelPair", ("name", 1, opt, T.TYPE_STRING, ""), ("value", 2, opt, T.TYPE_STRING, ""))
    msg("Timestamp", ("seconds", 1, opt, T.TYPE_INT64, ""), ("nanos", 2, opt, T.TYPE_INT32, ""))
    msg("Exemplar", ("label", 1, rep, T.TYPE_MESSAGE, "LabelPair"), ("value", 2, opt, T.TYPE_DOUBLE, ""),
        ("timestamp", 3, opt, T.TYPE_MESSAGE, "Timestamp"))
    msg("Gauge", ("value", 1, opt, T.TYPE_DOUBLE, ""))
    msg("Counter", ("value", 1, opt, T.TYPE_DOUBLE, ""), ("exemplar", 2, opt, T.TYPE_MESSAGE, "Exemplar"))
    msg("Untyped", ("value", 1, opt, T.TYPE_DOUBLE, ""))
    msg("Quantile", ("quantile", 1, opt, T.TYPE_DOUBLE, ""), ("value", 2, opt, T.TYPE_DOUBLE, ""))
    msg("Summary", ("sample_count", 1, opt, T.TYPE_UINT64, ""), ("sample_sum", 2, opt, T.TYPE_DOUBLE, ""),
        ("quantile", 3, rep, T.TYPE_MESSAGE, "Quantile"))
    msg("Bucket", ("cumulative_count", 1, opt, T.TYPE_UINT64, ""), ("upper_bound", 2, opt, T.TYPE_DOUBLE, ""),
        ("exemplar", 3, opt, T.TYPE_MESSAGE, "Exemplar"))
    msg("BucketSpan", ("offset", 1, opt, T.TYPE_SINT32, ""), ("length", 2, opt, T.TYPE_UINT32, ""))
    msg("Histogram", ("sample_count", 1, opt, T.TYPE_UINT64, ""), ("sample_sum", 2, opt, T.TYPE_DOUBLE, ""),
        ("bucket", 3, rep, T.TYPE_MESSAGE, "Bucket"), ("schema", 5, opt, T.TYPE_SINT32, ""),
        ("zero_threshold", 6, opt, T.TYPE_DOUBLE, ""), ("zero_count", 7, opt, T.TYPE_UINT64, ""),
        ("negative_span", 9, rep, T.TYPE_MESSAGE, "BucketSpan"), ("negative_delta", 10, rep, T.TYPE_SINT64, ""),
        ("positive_span", 12, rep, T.TYPE_MESSAGE, "BucketSpan"), ("positive_delta", 13, rep, T.TYPE_SINT64, ""),
        ("exemplars", 16, rep, T.TYPE_MESSAGE, "Exemplar"))
    msg("Metric", ("label", 1, rep, T.TYPE_MESSAGE, "LabelPair"), ("gauge", 2, opt, T.TYPE_MESSAGE, "Gauge"),
        ("counter", 3, opt, T.TYPE_MESSAGE, "Counter"), ("summary", 4, opt, T.TYPE_MESSAGE, "Summary"),
        ("untyped", 5, opt, T.TYPE_MESSAGE, "Untyped"), ("histogram", 7, opt, T.TYPE_MESSAGE, "Histogram"))
    msg("MetricFamily", ("name", 1, opt, T.TYPE_STRING, ""), ("help", 2, opt, T.TYPE_STRING, ""),
        ("type", 3, opt, T.TYPE_INT32, ""), ("metric", 4, rep, T.TYPE_MESSAGE, "Metric"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("io.prometheus.client.MetricFamily"))


_FAMILY = _messages()


def decode_delimited(body: bytes) -> list[Any]:
    """The MetricFamily messages of a delimited protobuf exposition."""
    out, pos = [], 0
    while pos < len(body):
        size = shift = 0
        while True:  # the length prefix: a varint
            byte = body[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        fam = _FAMILY()
        fam.ParseFromString(body[pos:pos + size])
        out.append(fam)
        pos += size
    return out
