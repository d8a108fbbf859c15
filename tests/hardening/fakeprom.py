"""A loopback Prometheus that answers latmap's queries with hostile bodies.

Real Prometheus cannot be made to store ``le="-Inf"`` with counts, a ``quantile="abc"``, or an
answer whose ``_count`` disagrees with its buckets on demand; this server answers the queries
latmap's collectors send (:mod:`collectors.promcount`, :mod:`collectors.promql`) with the
wire format Prometheus uses (``{"status": "success", "data": {"resultType", "result"}}``),
so the real decoding and collecting code runs on the hostile values.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from tests.servers import loopback_server, reply

PART = "latmap_count_part"


def vector(rows: Sequence[tuple[Mapping[str, str], Any]], at: float = 1000.0) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": dict(labels), "value": [at, v if isinstance(v, str) else repr(float(v))]} for labels, v in rows]}}


@dataclass
class FakeProm:
    """``buckets``: (labels with ``le``, increase) per ``_bucket`` series; ``count``/``total``:
    the ``_count`` and ``_sum`` increases; ``quantiles``: summary series (labels, value);
    ``answers``: raw answers by a substring of the query, tried first."""

    buckets: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    count: float | None = None
    total: float | None = 0.0
    quantiles: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)

    def answer(self, q: str) -> Any:
        for key, body in self.answers.items():
            if key in q:
                return body
        if 'quantile!=""' in q:
            return vector(self.quantiles)
        if "count_over_time(up" in q or q.startswith("up"):
            return vector([])
        if "_count" in q and "label_replace" not in q:  # the raw samples of _count
            if self.count is None:
                return {"status": "success", "data": {"resultType": "matrix", "result": []}}
            return {"status": "success", "data": {"resultType": "matrix", "result": [
                {"metric": {"__name__": "x_count"}, "values": [[0, "0"], [1000, repr(float(self.count))]]}]}}
        if "_bucket" in q:
            return vector([({**labels, PART: "increase"}, v) for labels, v in self.buckets])
        if "_count" in q:
            return vector([] if self.count is None else [({PART: "increase"}, self.count)])
        if "_sum" in q:
            return vector([] if self.total is None else [({PART: "increase"}, self.total)])
        return vector([])

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        body = getattr(req, "body", b"").decode()
        query = (parse_qs(body).get("query") or [""])[0]
        self.queries.append(query)
        reply(req, 200, json.dumps(self.answer(query)).encode())


@contextlib.contextmanager
def fake_prometheus(fake: FakeProm) -> Iterator[str]:
    with loopback_server(fake.handle) as url:
        yield url
