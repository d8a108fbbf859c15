"""Datadog's HTTP API as latmap uses it: keys, rate limits, errors, and the four calls.

Over ``requests`` rather than the official ``datadog-api-client``: latmap needs four calls
(scalar and timeseries queries, the v1 query, span search) and full control of what the
client does on a 429 (a bounded wait with a progress message, from ``X-RateLimit-Reset``),
on a 5xx (retry with backoff) and on a 400/422 (Datadog's ``errors`` array shown as it is);
the generated client would add ~40 MB of models, retry on its own terms and raise its own
exception types for each of those. ``requests`` is already a base dependency.

Keys go in the ``DD-API-KEY`` / ``DD-APPLICATION-KEY`` headers of the session and nowhere
else: messages name the env vars (or files) they came from, never their values, and URLs
are shown without query strings.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from collectors.http import USER_AGENT, read_secret, send
from mapper.core.errors import QueryRejected, SourceError
from mapper.core.redact import quoted, remote_text
from mapper.core.spec import SourceSpec
from mapper.core.spec.datadog import DatadogOptions

log = logging.getLogger(__name__)

#: Called with a message for people while latmap waits on Datadog (rate limits, retries).
Notify = Callable[[str], None]


def _warn(message: str) -> None:
    log.warning("%s", message)


@dataclass(frozen=True)
class Unit:
    """Datadog's unit for a column or series: ``name`` (``microsecond``), ``family``
    (``time``) and ``scale_factor`` to the family's base unit (seconds for time)."""

    name: str
    family: str
    scale_factor: float


@dataclass(frozen=True)
class ScalarColumn:
    """One query's answer from ``/api/v2/query/scalar``: a value per group (one without a
    ``by``; none when there is no data), and the unit Datadog knows for it."""

    name: str
    values: tuple[float | None, ...]
    unit: Unit | None


@dataclass(frozen=True)
class TimeseriesAnswer:
    """``/api/v2/query/timeseries``: ``times`` in unix ms, one row of ``values`` per series
    (``None`` where Datadog has no point), and each series' query index, tags and unit."""

    times: tuple[int, ...]
    values: tuple[tuple[float | None, ...], ...]
    query_index: tuple[int, ...]
    group_tags: tuple[tuple[str, ...], ...]
    units: tuple[Unit | None, ...]


@dataclass(frozen=True)
class V1Series:
    """One series of ``/api/v1/query``: its scope (``host:a`` for a ``by {host}``), points as
    ``(unix ms, value or None)`` and unit."""

    scope: str
    metric: str
    points: tuple[tuple[float, float | None], ...]
    unit: Unit | None
    interval: float | None


def parse_unit(raw: Any, where: str = "unit") -> Unit | None:
    """Datadog's ``unit`` (a ``[unit, per_unit]`` pair or one object) as a Unit, or None when
    Datadog names none (null, an empty list, a shape without an object). A unit whose
    ``scale_factor`` is no positive finite number raises: every value would be scaled by it."""
    first = raw[0] if isinstance(raw, list) and raw else raw
    if not isinstance(first, Mapping):
        return None
    factor = first.get("scale_factor", 1.0)
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not (math.isfinite(factor) and factor > 0):
        raise SourceError(f"{where}: unit {remote_text(first.get('name'), 40)!r} has scale_factor "
                          f"{remote_text(repr(factor), 40)}, not a positive number")
    return Unit(remote_text(first.get("name"), 60), remote_text(first.get("family"), 60), float(factor))


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SourceError(f"{where}: not a number: {quoted(str(value), 40)}")
    return None if math.isnan(value) else float(value)


def parse_scalar(body: Any, where: str) -> list[ScalarColumn]:
    """The number columns of a scalar answer (``data.attributes.columns``)."""
    try:
        columns = body["data"]["attributes"]["columns"]
    except (KeyError, TypeError):
        raise SourceError(f"{where}: answer has no data.attributes.columns (not a scalar response)") from None
    if not isinstance(columns, list):
        raise SourceError(f"{where}: data.attributes.columns is not a list")
    out = []
    for i, col in enumerate(columns):
        if not isinstance(col, Mapping):
            raise SourceError(f"{where}: columns[{i}] is not an object")
        if col.get("type", "number") != "number":
            continue  # "group" columns carry the tags of a by-query
        values = col.get("values")
        if not isinstance(values, list):
            raise SourceError(f"{where}: columns[{i}].values is not a list")
        meta = col["meta"] if isinstance(col.get("meta"), Mapping) else {}
        out.append(ScalarColumn(str(col.get("name", "")),
                                tuple(_number(v, f"{where}: columns[{i}].values") for v in values),
                                parse_unit(meta.get("unit"), f"{where}: columns[{i}].meta")))
    return out


def parse_timeseries(body: Any, where: str) -> TimeseriesAnswer:
    """A timeseries answer (``data.attributes.{series, times, values}``)."""
    try:
        attrs = body["data"]["attributes"]
        series, times, values = attrs["series"], attrs["times"], attrs["values"]
    except (KeyError, TypeError):
        raise SourceError(f"{where}: answer has no data.attributes.series/times/values "
                          "(not a timeseries response)") from None
    if not (isinstance(series, list) and isinstance(times, list) and isinstance(values, list)):
        raise SourceError(f"{where}: series, times and values must be lists")
    if len(values) != len(series):
        raise SourceError(f"{where}: {len(series)} series but {len(values)} value rows")
    rows = []
    for i, row in enumerate(values):
        if not isinstance(row, list) or len(row) != len(times):
            raise SourceError(f"{where}: values[{i}] does not have one value per time ({len(times)})")
        rows.append(tuple(_number(v, f"{where}: values[{i}]") for v in row))
    if not all(isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t) for t in times):
        raise SourceError(f"{where}: times are not unix milliseconds")
    stamps = tuple(int(t) for t in times)
    index = []
    for i, s in enumerate(series):
        q = s.get("query_index", 0) if isinstance(s, Mapping) else 0
        if isinstance(q, bool) or not isinstance(q, int) or q < 0:
            raise SourceError(f"{where}: series[{i}].query_index is {remote_text(repr(q), 40)}, not a query's index")
        index.append(q)
    tags = []
    for i, s in enumerate(series):
        group = s.get("group_tags") if isinstance(s, Mapping) else None
        if group is not None and not isinstance(group, list):
            raise SourceError(f"{where}: series[{i}].group_tags is not a list")
        tags.append(tuple(remote_text(t, 200) for t in group or ()))
    return TimeseriesAnswer(
        stamps, tuple(rows), tuple(index), tuple(tags),
        tuple(parse_unit(s.get("unit"), f"{where}: series[{i}]") if isinstance(s, Mapping) else None
              for i, s in enumerate(series)))


def parse_v1_query(body: Any, where: str) -> list[V1Series]:
    """The series of a ``/api/v1/query`` answer; ``status: error`` raises with its message."""
    if not isinstance(body, Mapping):
        raise SourceError(f"{where}: answer is not a JSON object")
    if body.get("status") == "error":
        said = remote_text(body.get("error") or body.get("message") or "no reason given", 500)
        raise QueryRejected(f"{where}: Datadog rejected the query: {said}")
    series = body.get("series")
    if not isinstance(series, list):
        raise SourceError(f"{where}: answer has no series list (not a v1 query response)")
    out = []
    for i, s in enumerate(series):
        if not isinstance(s, Mapping) or not isinstance(s.get("pointlist"), list):
            raise SourceError(f"{where}: series[{i}] has no pointlist")
        points = []
        for j, pt in enumerate(s["pointlist"]):
            if not isinstance(pt, list) or len(pt) != 2:
                raise SourceError(f"{where}: series[{i}].pointlist[{j}] is not [timestamp, value]")
            stamp = _number(pt[0], f"{where}: series[{i}].pointlist[{j}][0]")
            if stamp is None or not math.isfinite(stamp):
                raise SourceError(f"{where}: series[{i}].pointlist[{j}] has no timestamp")
            points.append((stamp, _number(pt[1], f"{where}: series[{i}].pointlist[{j}][1]")))
        interval = s.get("interval")
        seconds = float(interval) if isinstance(interval, int | float) and not isinstance(interval, bool) else None
        if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
            seconds = None  # an interval that is no length of time is no interval
        out.append(V1Series(str(s.get("scope", "")), str(s.get("metric", "")), tuple(points),
                            parse_unit(s.get("unit"), f"{where}: series[{i}]"), seconds))
    return out


def errors_of(body: Any) -> str:
    """Datadog's ``errors`` array as one line: strings, or ``{title, detail}`` objects."""
    if not isinstance(body, Mapping):
        return ""
    errs = body.get("errors")
    if not isinstance(errs, list):
        return remote_text(body.get("error") or "", 500)
    parts = []
    for e in errs:
        if isinstance(e, Mapping):
            parts.append(": ".join(str(e[k]) for k in ("title", "detail") if e.get(k)))
        else:
            parts.append(str(e))
    return remote_text("; ".join(p for p in parts if p), 500)


class DatadogClient:
    """One Datadog site (or proxy) with its keys; every call answers parsed JSON or raises.

    ``sleep`` and ``clock`` are injectable so the rate-limit tests do not wait for real.
    """

    def __init__(self, spec: SourceSpec, notify: Notify | None = None, backoff: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        if spec.datadog is None:
            raise SourceError(f"{spec.place}: source {spec.name!r} is not a datadog source")
        self.spec = spec
        self.options: DatadogOptions = spec.datadog
        self.base = spec.url.rstrip("/")
        self.notify = notify or _warn
        self.backoff = backoff
        self.sleep = sleep
        self.clock = clock
        self.waited = 0.0  # seconds spent waiting on rate limits, against options.max_wait
        self.calls = 0
        self._resume_at = 0.0  # when X-RateLimit-Remaining hit 0: do not call before this
        where = f"source {spec.name!r} ({spec.place})"
        o = self.options
        api_key = read_secret(o.api_key_env, o.api_key_file, f"{where}: Datadog API key")
        app_key = read_secret(o.app_key_env, o.app_key_file, f"{where}: Datadog application key")
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json",
                                     "DD-API-KEY": api_key or "", "DD-APPLICATION-KEY": app_key or ""})

    @property
    def site(self) -> str:
        return self.options.site or self.base

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    # ------------------------------------------------------------------ transport

    def _wait(self, seconds: float, why: str, url: str) -> None:
        """Wait for a rate limit to reset, within the source's ``max_wait`` budget."""
        seconds = max(0.0, seconds)
        if self.waited + seconds > self.options.max_wait:
            raise SourceError(
                f"{url}: {why}; waiting {seconds:.0f}s more would exceed max_wait "
                f"{self.options.max_wait:.0f}s for source {self.spec.name!r} (raise max_wait, or map a "
                "shorter window)")
        self.notify(f"Datadog {self.site}: {why}; waiting {seconds:.0f}s "
                    f"({self.waited + seconds:.0f}s of max_wait {self.options.max_wait:.0f}s)")
        self.sleep(seconds)
        self.waited += seconds

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None,
             params: Mapping[str, Any] | None = None) -> Any:
        """Send one API call and answer its JSON body.

        429: wait ``X-RateLimit-Reset`` seconds (bounded by ``max_wait``) and try again;
        connection errors and 5xx: retry with backoff, ``retries`` times; 401/403: a key or
        site problem; 400/404/422: :class:`QueryRejected` with Datadog's ``errors``.
        """
        url = self.url(path)
        now = self.clock()
        if self._resume_at > now:
            self._wait(self._resume_at - now, "rate limit exhausted (X-RateLimit-Remaining: 0)", url)
        attempts = self.spec.retries + 1
        failures = 0
        last = ""
        while True:
            self.calls += 1
            # No redirects: requests would send the DD-API-KEY header on to another host.
            resp = send(self.session, method, url, self.spec.timeout, json=body, params=params,
                        allow_redirects=False, max_bytes=self.spec.max_response)
            if isinstance(resp, str):
                last = resp
            else:
                self._note_limits(resp)
                if resp.status_code == 429:  # at least the backoff: a "reset in 0s" must not spin
                    self._wait(max(_reset_seconds(resp, self.backoff), self.backoff), _limit_text(resp), url)
                    continue  # rate-limit waits are bounded by max_wait, not by retries
                if resp.status_code < 500:
                    return self._decode(resp, url)
                last = f"{url}: HTTP {resp.status_code}{_hint(resp)}"
            failures += 1
            if failures >= attempts:
                suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
                raise SourceError(last + suffix)
            delay = self.backoff * 2 ** (failures - 1)
            self.notify(f"Datadog {self.site}: {last.split(': ', 1)[-1]}; retrying in {delay:g}s "
                        f"({failures}/{attempts - 1})")
            self.sleep(delay)

    def _note_limits(self, resp: requests.Response) -> None:
        remaining = resp.headers.get("X-RateLimit-Remaining")
        if remaining is not None and remaining.strip() == "0" and resp.status_code != 429:
            self._resume_at = self.clock() + _reset_seconds(resp, self.backoff)

    def _decode(self, resp: requests.Response, url: str) -> Any:
        try:
            body = resp.json()
        except (ValueError, RecursionError):
            body = None
        status = resp.status_code
        if 300 <= status < 400:
            target = remote_text(resp.headers.get("Location", "?").split("?", 1)[0], 120)
            raise SourceError(f"{url}: HTTP {status} redirect to {target} not followed (the keys would go "
                              "with it); point the source's site or url at the API itself")
        if status in (401, 403):
            said = errors_of(body)
            raise SourceError(
                f"{url}: HTTP {status}{': ' + said if said else ''}: check {self.options.key_names} "
                f"and the site ({self.site})")
        if status >= 400:
            said = errors_of(body) or (remote_text(resp.text) if body is None else "")
            raise QueryRejected(f"{url}: HTTP {status}: Datadog rejected the query: {said or 'no reason given'}")
        if body is None:
            ctype = remote_text(resp.headers.get("Content-Type", "?"), 60)
            raise SourceError(f"{url}: HTTP {status}, answer is not JSON (Content-Type {ctype}, "
                              f"{len(resp.content)} bytes; truncated, or not the Datadog API?)")
        return body

    # ------------------------------------------------------------------ the calls

    def scalar(self, queries: Sequence[tuple[str, str, str]], start_ms: int, end_ms: int) -> list[ScalarColumn]:
        """``POST /api/v2/query/scalar``: each ``(name, query, aggregator)`` reduced over the
        whole ``[start, end]`` by Datadog (``aggregator`` ``percentile`` merges the sketches)."""
        body = {"data": {"type": "scalar_request", "attributes": {
            "from": start_ms, "to": end_ms,
            "queries": [{"data_source": "metrics", "name": n, "query": q, "aggregator": a} for n, q, a in queries],
            "formulas": [{"formula": n} for n, _, _ in queries],
        }}}
        where = self.url("/api/v2/query/scalar")
        return parse_scalar(self.call("POST", "/api/v2/query/scalar", body), where)

    def timeseries(self, queries: Sequence[tuple[str, str]], start_ms: int, end_ms: int,
                   interval_ms: int) -> TimeseriesAnswer:
        """``POST /api/v2/query/timeseries``: each ``(name, query)`` at ``interval_ms``."""
        body = {"data": {"type": "timeseries_request", "attributes": {
            "from": start_ms, "to": end_ms, "interval": interval_ms,
            "queries": [{"data_source": "metrics", "name": n, "query": q} for n, q in queries],
            "formulas": [{"formula": n} for n, _ in queries],
        }}}
        where = self.url("/api/v2/query/timeseries")
        return parse_timeseries(self.call("POST", "/api/v2/query/timeseries", body), where)

    def query_v1(self, query: str, start: int, end: int) -> list[V1Series]:
        """``GET /api/v1/query`` (unix seconds): one series per group, with its scope."""
        body = self.call("GET", "/api/v1/query", params={"from": start, "to": end, "query": query})
        where = self.url("/api/v1/query")
        series = parse_v1_query(body, where)
        for i, s in enumerate(series):
            # A rollup's first point may start up to one interval before ``from``; a point
            # further out (the future, another day) is not of this window and would be counted.
            slack = s.interval or 0.0
            for j, (stamp, _) in enumerate(s.points):
                if not start - slack <= stamp / 1000 <= end + slack:
                    raise SourceError(f"{where}: series[{i}].pointlist[{j}] at {stamp / 1000:.0f} is outside the "
                                      f"asked window {start}..{end} (series {remote_text(s.scope, 120)!r})")
        return series

    def search_spans(self, query: str, start_ms: int, end_ms: int, cursor: str | None,
                     limit: int = 1000) -> Any:
        """``POST /api/v2/spans/events/search``: one page (oldest first) of span events."""
        page: dict[str, Any] = {"limit": limit}
        if cursor:
            page["cursor"] = cursor
        body = {"data": {"type": "search_request", "attributes": {
            "filter": {"from": str(start_ms), "to": str(end_ms), "query": query},
            "options": {"timezone": "GMT"}, "page": page, "sort": "timestamp"}}}
        return self.call("POST", "/api/v2/spans/events/search", body)


def _reset_seconds(resp: requests.Response, fallback: float) -> float:
    """Seconds until the rate limit resets (``X-RateLimit-Reset``, else ``Retry-After``)."""
    for header in ("X-RateLimit-Reset", "Retry-After"):
        raw = resp.headers.get(header)
        if raw is not None:
            try:
                value = float(raw)
            except ValueError:
                continue
            if math.isfinite(value) and value >= 0:
                return value
    return fallback


def _limit_text(resp: requests.Response) -> str:
    h = resp.headers
    name = h.get("X-RateLimit-Name")
    limit, period = h.get("X-RateLimit-Limit"), h.get("X-RateLimit-Period")
    text = "rate limited (HTTP 429)"
    if name:
        text += f" on {name}"
    if limit and period:
        text += f", {limit} requests per {period}s"
    return text


def _hint(resp: requests.Response) -> str:
    try:
        said = errors_of(resp.json())
    except (ValueError, RecursionError):
        said = remote_text(resp.text, 120)
    return f": {said}" if said else ""

