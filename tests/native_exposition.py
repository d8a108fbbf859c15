"""A native-histogram exporter for the tests: Prometheus's protobuf exposition, hand-encoded.

prometheus-client for Python cannot expose native histograms, so this module encodes the
few messages of ``io.prometheus.client`` (metrics.proto: MetricFamily, Metric, LabelPair,
Histogram, BucketSpan) that a native histogram needs, and serves them length-delimited as
Prometheus's protobuf scrape expects. Field numbers are metrics.proto's.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable

import numpy as np

PROTOBUF_TYPE = ("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
                 "encoding=delimited")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _len(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def _double(field: int, value: float) -> bytes:
    return _key(field, 1) + struct.pack("<d", value)


def _uint(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value)


def _sint(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(_zigzag(value))


def bucket_index(values: np.ndarray, schema: int) -> np.ndarray:
    """Native bucket index of each positive value: bucket i is (2^((i-1)/2^s), 2^(i/2^s)]."""
    return np.ceil(np.log2(values) * 2.0**schema - 1e-9).astype(np.int64)


def histogram_family(name: str, values: np.ndarray, schema: int = 3,
                     labels: Iterable[tuple[str, str]] = ()) -> bytes:
    """One MetricFamily with one native histogram of ``values`` (all positive), delimited."""
    h = bytearray()
    h += _uint(1, int(values.size)) + _double(2, float(values.sum())) + _sint(5, schema)
    h += _double(6, 2.0**-128) + _uint(7, 0)
    if values.size:
        idx = bucket_index(values, schema)
        lo, hi = int(idx.min()), int(idx.max())
        counts = np.bincount(idx - lo, minlength=hi - lo + 1)
        h += _len(12, _sint(1, lo) + _uint(2, hi - lo + 1))
        prev = 0
        for c in counts.tolist():
            h += _sint(13, int(c) - prev)
            prev = int(c)
    metric = b"".join(_len(1, _len(1, k.encode()) + _len(2, v.encode())) for k, v in labels)
    metric += _len(7, bytes(h))
    family = _len(1, name.encode()) + _len(2, b"A native histogram.") + _uint(3, 4) + _len(4, metric)
    return _varint(len(family)) + family


def bounds(index: int, schema: int) -> tuple[float, float]:
    base = 2.0 ** (2.0**-schema)
    return base ** (index - 1), base**index


assert math.isclose(bounds(1, 0)[1], 2.0)
