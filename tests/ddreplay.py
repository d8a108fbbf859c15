"""A loopback stand-in for api.datadoghq.com: recorded real answers, and answers derived
from them in the same wire format.

Datadog cannot run here. The recorded interactions are the vcrpy cassettes of Datadog's own
API client (``tests/fixtures/datadog/cassettes``: Apache-2.0, DataDog/datadog-api-client-python
at 6d8f356e4a3fdf83307c9db00e7a081d56a47ea5, recorded against api.datadoghq.com; see
``tests/fixtures/PROVENANCE.md``). Tests replay them as they are; for latmap's own queries
(``p99:trade.alert.latency{service:alerting}``) the server builds answers of exactly the
recorded shape: the scalar and timeseries envelopes, the ``unit`` objects (``UNIT_*`` below are
copied from the recordings, or derived from the recorded microsecond one by changing its name
and factor) and the ``errors`` arrays.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.servers import FIXTURES, loopback_server

CASSETTES = FIXTURES / "datadog" / "cassettes"
OPENAPI = FIXTURES / "datadog" / "openapi_examples"

#: Recorded in test_scalar_cross_product_query_with_apm_dependency_stats_data_source_returns_ok_response.
UNIT_MICROSECOND = {"family": "time", "name": "microsecond", "plural": "microseconds",
                    "scale_factor": 0.000001, "short_name": "μs", "id": 9}
#: Derived from the recorded microsecond unit (Datadog's unit catalogue: millisecond, id 10).
UNIT_MILLISECOND = {"family": "time", "name": "millisecond", "plural": "milliseconds",
                    "scale_factor": 0.001, "short_name": "ms", "id": 10}
#: Recorded in test_scalar_cross_product_query_returns_ok_response.
UNIT_PERCENT = {"short_name": "%", "id": 17, "plural": "percent", "name": "percent",
                "family": "percentage", "scale_factor": 1.0}


@dataclass(frozen=True)
class Recorded:
    """One recorded interaction: the request Datadog's client sent, the answer it got."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    request_body: Any
    status: int
    content_type: str
    body: str

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def cassette(name: str) -> Recorded:
    """``"v2/test_scalar_cross_product_query_returns_ok_response"`` -> its one interaction."""
    doc = yaml.safe_load((CASSETTES / f"{name}.yaml").read_text(encoding="utf-8"))
    (inter,) = doc["interactions"]
    req, resp = inter["request"], inter["response"]
    url = urlsplit(req["uri"])
    return Recorded(req["method"], url.path, parse_qs(url.query),
                    json.loads(req["body"]) if req.get("body") else None, int(resp["status"]["code"]),
                    resp["headers"].get("content-type", ["application/json"])[0], resp["body"]["string"])


@dataclass
class Seen:
    """A request the server received (headers included, to check the keys were sent)."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]


Answer = tuple[int, Any, Mapping[str, str]]  # status, JSON body (or bytes), headers
Route = Callable[[Seen], Answer | None]


@dataclass
class DatadogReplay:
    """Routes tried in order; the first that answers wins; an unrouted request is a 599
    (the test sees it as a failure, not a silent pass)."""

    routes: list[Route] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def route(self, fn: Route) -> Route:
        self.routes.append(fn)
        return fn

    def recorded(self, rec: Recorded, times: int | None = None) -> None:
        """Answer requests to the recording's method and path with its recorded answer."""
        left = [times]

        def fn(req: Seen) -> Answer | None:
            if req.method != rec.method or req.path != rec.path or left[0] == 0:
                return None
            if left[0] is not None:
                left[0] -= 1
            return rec.status, rec.body.encode(), {"Content-Type": rec.content_type}
        self.routes.append(fn)

    def once(self, method: str, path: str, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        """Answer the next matching request once (a 429, a 503 ...)."""
        used = [False]

        def fn(req: Seen) -> Answer | None:
            if used[0] or req.method != method or req.path != path:
                return None
            used[0] = True
            return status, body, dict(headers or {})
        self.routes.insert(0, fn)

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        split = urlsplit(req.path)
        raw = getattr(req, "body", b"")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        seen = Seen(req.command, split.path, parse_qs(split.query), body, dict(req.headers.items()))
        with self.lock:
            self.seen.append(seen)
            routes = list(self.routes)
        for fn in routes:
            answer = fn(seen)
            if answer is not None:
                break
        else:
            answer = (599, {"errors": [f"ddreplay: no route for {seen.method} {seen.path}"]}, {})
        status, payload, headers = answer
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        req.send_response(status)
        hdrs = {"Content-Type": "application/json", **headers}
        for k, v in hdrs.items():
            req.send_header(k, v)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        with contextlib.suppress(OSError):
            req.wfile.write(data)

    def calls(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


@contextlib.contextmanager
def running_replay() -> Iterator[DatadogReplay]:
    replay = DatadogReplay()
    with loopback_server(replay.handle) as url:
        replay.url = url
        yield replay


# ---------------------------------------------------------------------- derived answers


def scalar_answer(columns: list[tuple[str, list[float], Mapping[str, Any] | None]]) -> dict[str, Any]:
    """A scalar response of the recorded shape: ``(name, values, unit or None)`` per column."""
    return {"data": {"type": "scalar_response", "attributes": {"columns": [
        {"values": values, "name": name, "meta": {"unit": [dict(unit), None] if unit else None}, "type": "number"}
        for name, values, unit in columns]}}}


def timeseries_answer(times: list[int], rows: list[list[float | None]],
                      units: list[Mapping[str, Any] | None]) -> dict[str, Any]:
    """A timeseries response of the recorded shape (one series per query, in order)."""
    return {"data": {"id": "0", "type": "timeseries_response", "attributes": {
        "series": [{"group_tags": [], "query_index": i, "unit": [dict(u), None] if u else None}
                   for i, u in enumerate(units)],
        "times": times, "values": rows}}}


def v1_answer(query: str, start: int, end: int, series: list[tuple[str, list[list[float | None]]]],
              unit: Mapping[str, Any] | None) -> dict[str, Any]:
    """A ``/api/v1/query`` response of the recorded shape: ``(scope, pointlist)`` per series."""
    return {"status": "ok", "resp_version": 1, "query": query, "res_type": "time_series", "message": "",
            "from_date": start * 1000, "to_date": end * 1000, "group_by": ["host"] if "by {host}" in query else [],
            "series": [{"metric": query.split(":", 1)[1].split("{", 1)[0], "scope": scope, "pointlist": pts,
                        "length": len(pts), "interval": 300, "aggr": query.split(":", 1)[0],
                        "expression": query, "display_name": query, "tag_set": [scope] if ":" in scope else [],
                        "attributes": {}, "query_index": 0,
                        "unit": [dict(unit), None] if unit else None,
                        "start": pts[0][0] if pts else None, "end": pts[-1][0] if pts else None}
                       for scope, pts in series],
            "times": [], "values": []}


def errors_answer(*errors: str) -> dict[str, Any]:
    """Datadog's error envelope, as recorded: ``{"errors": ["..."]}``."""
    return {"errors": list(errors)}


def scalar_queries(req: Seen) -> list[dict[str, Any]]:
    """The ``queries`` of a scalar or timeseries request body."""
    return list(req.body["data"]["attributes"]["queries"])
