"""A traced chain for ``latmap explain``: gateway -> pricing -> risk, six hosts run ``risk``
(resource ``host.name``) and one of them is ~10x slower; decoy attributes of no effect
(region, route, a batch size, ids, a constant, a rare flag, mixed-type and NaN/Inf values,
personal data). Built with :meth:`SpanBatch.from_columns` and :class:`SpanAttributes`
(until the OTLP decoders fill them)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mapper.core.spans import KIND_CONSUMER, KIND_SERVER, SCOPE_RESOURCE, SCOPE_SPAN, SpanAttributes, SpanBatch

MS = 1_000_000
T0 = 1_790_000_000 * 1_000_000_000
STAGES = ("gateway", "pricing", "risk")
HOSTS = tuple(f"risk-{i}" for i in range(6))
SLOW_HOST = "risk-3"


def chain(n: int = 3000, seed: int = 1, slow: str | None = SLOW_HOST, version_on_slow: str = "1.0",
          trace_base: int = 0) -> SpanBatch:
    """``n`` items; ``risk`` process ~10x slower on ``slow``; ``service.version`` is 1.0,
    except ``version_on_slow`` on the slow host's spans."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    host = rng.integers(0, 6, n)
    t0 = T0 + i * 10 * MS
    p = [rng.lognormal(np.log(m), 0.3, n) * MS for m in (2.0, 3.0, 5.0)]
    if slow is not None:
        p[2] = np.where(np.array(HOSTS, dtype=object)[host] == slow, p[2] * 10, p[2])
    w = [np.zeros(n), rng.lognormal(0.0, 0.3, n) * MS, rng.lognormal(0.0, 0.3, n) * MS]
    starts, ends, t = [], [], t0.astype(np.float64)
    for k in range(3):
        s = t + w[k]
        starts.append(s.astype(np.int64))
        ends.append((s + p[k]).astype(np.int64))
        t = s + p[k]
    rows = n * 3
    trace_lo = np.tile(i + 1 + trace_base, 3).astype(np.uint64)
    span_id = (np.repeat(np.arange(3), n) * n + np.tile(i, 3) + 1).astype(np.uint64)
    parent = np.r_[np.zeros(n), span_id[:n], span_id[n:2 * n]].astype(np.uint64)
    batch_cols = {
        "trace_hi": np.full(rows, 7, np.uint64), "trace_lo": trace_lo, "span_id": span_id, "parent_id": parent,
        "start_ns": np.concatenate(starts), "end_ns": np.concatenate(ends),
        "kind": np.repeat([KIND_SERVER, KIND_CONSUMER, KIND_CONSUMER], n).astype(np.int8),
        "service": np.repeat(np.array(STAGES, dtype=object), n),
        "name": np.repeat(np.array(["GET /quote", "price", "score"], dtype=object), n),
    }
    attrs = _attributes(rng, n, host, version_on_slow)
    return SpanBatch.from_columns(batch_cols, attributes=attrs)


def _attributes(rng: np.random.Generator, n: int, host: np.ndarray, version_on_slow: str) -> SpanAttributes:
    """Per span: resource host.name, service.version, cloud.region, deployment; span
    http.route, batch.size, user.id, request.id; a rare flag; a mixed attribute."""
    rows: list[np.ndarray] = []
    scope: list[np.ndarray] = []
    key: list[np.ndarray] = []
    value: list[np.ndarray] = []

    def add(stage: int, sc: int, k: str, v: Sequence[object] | np.ndarray, sel: np.ndarray | None = None) -> None:
        at = np.arange(n) if sel is None else np.flatnonzero(sel)
        vals = np.asarray(v, dtype=object)
        rows.append(stage * n + at)
        scope.append(np.full(at.size, sc, np.int8))
        key.append(np.full(at.size, k, dtype=object))
        value.append(vals[at] if vals.size == n else vals)

    hosts = np.array(HOSTS, dtype=object)[host]
    version = np.where(hosts == SLOW_HOST, version_on_slow, "1.0").astype(object)
    region = np.array(["eu", "us", "apac"], dtype=object)[rng.integers(0, 3, n)]
    for stage in range(3):
        add(stage, SCOPE_RESOURCE, "host.name", hosts if stage == 2 else np.full(n, f"{stage}-host", dtype=object))
        add(stage, SCOPE_RESOURCE, "service.version", version if stage == 2 else np.full(n, "1.0", dtype=object))
        add(stage, SCOPE_RESOURCE, "cloud.region", region)
        add(stage, SCOPE_RESOURCE, "deployment", np.full(n, "prod", dtype=object))
        add(stage, SCOPE_SPAN, "http.route", np.array(["/a", "/b", "/c", "/d"], dtype=object)[rng.integers(0, 4, n)])
        add(stage, SCOPE_SPAN, "batch.size", rng.integers(1, 200, n).astype(str).astype(object))
        add(stage, SCOPE_SPAN, "user.id", np.array([f"u{x}" for x in rng.integers(0, 10**9, n)], dtype=object))
        add(stage, SCOPE_SPAN, "request.id", np.array([f"r{x}" for x in range(n)], dtype=object))
        add(stage, SCOPE_SPAN, "rare.flag", np.full(n, "yes", dtype=object), rng.random(n) < 0.001)
        mixed = rng.normal(0, 1, n).round(3).astype(str).astype(object)
        mixed[rng.random(n) < 0.02] = "nan"
        mixed[rng.random(n) < 0.02] = "inf"
        mixed[rng.random(n) < 0.03] = "n/a"
        add(stage, SCOPE_SPAN, "queue.depth", mixed)
    return SpanAttributes.from_sparse(np.concatenate(rows), np.concatenate(scope), np.concatenate(key),
                                      np.concatenate(value), 3 * n)
