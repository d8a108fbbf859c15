"""HTTP for collectors: auth from env vars or files, TLS, timeouts, retries with backoff.

Secrets are read when the client is built and live only in the ``requests`` session. Every
secret is read by :func:`read_secret`, which remembers it with :mod:`mapper.core.redact`, so
no error message, log line or report can show it even when a server echoes the request
headers back; what a server says is quoted through ``remote_text`` (one line, capped).

Every client (Prometheus, scrape, Datadog, Grafana) reads answers through :func:`send` /
:func:`read_capped`: a body longer than the source's ``max_response`` is refused without
being read whole, and the body must arrive within the source's timeout.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import requests
import urllib3

from mapper.core.deadline import DeadlinePassed, call_within
from mapper.core.errors import SourceError
from mapper.core.files import BoundedReadError, read_bounded
from mapper.core.redact import remember, remember_basic, remote_text
from mapper.core.spec import SourceSpec

log = logging.getLogger(__name__)

#: Status codes worth retrying: the server may answer differently in a moment.
RETRY_STATUS = frozenset({429, 502, 503, 504})
USER_AGENT = "latmap (latency-mapper)"


#: A secret file larger than this is not a secret file (``/dev/zero`` must not be read for ever).
MAX_SECRET_BYTES = 64 << 10


def read_secret(env: str | None, file: str | None, what: str, header: bool = True) -> str | None:
    """The secret named by an env var or a file, stripped; ``None`` when neither is set.

    Fails closed: a named but missing, empty or whitespace-only env var or file, an unreadable,
    oversized or non-regular file is an error: silently sending no credentials would turn into
    a confusing 401 later, and a receiver started with an empty token would accept anyone.
    ``header``: the secret goes into an HTTP header as it is (a bearer token, an API key), so
    it must be visible ASCII; a password (sent base64-encoded) may be any text.
    """
    if env:
        value = os.environ.get(env)
        if value is None:
            raise SourceError(f"{what}: environment variable {env} is not set")
        if not value.strip():
            raise SourceError(f"{what}: environment variable {env} is empty")
        return _checked(value.strip(), f"{what}: environment variable {env}", header)
    if file:
        try:
            data = read_bounded(file, MAX_SECRET_BYTES, "secret file")
        except FileNotFoundError:
            raise SourceError(f"{what}: cannot read {file}: no such file") from None
        except BoundedReadError as err:
            raise SourceError(f"{what}: {err}") from None
        try:
            value = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise SourceError(f"{what}: {file}: not UTF-8 text") from None
        if not value:
            raise SourceError(f"{what}: {file} is empty")
        return _checked(value, f"{what}: {file}", header)
    return None


def _checked(value: str, where: str, header: bool) -> str:
    remember(value)  # masked from here on, even in the error below
    if header and not all("!" <= c <= "~" for c in value):
        raise SourceError(f"{where}: the secret has characters an HTTP header cannot carry "
                          "(white space, control or non-ASCII characters)")
    return value


class HttpClient:
    """A session bound to one source, answering parsed JSON or raising SourceError."""

    def __init__(self, spec: SourceSpec, backoff: float = 0.25) -> None:
        self.spec = spec
        self.base = spec.url.rstrip("/")
        self.backoff = backoff
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers.update(spec.headers)
        where = f"source {spec.name!r} ({spec.place})"
        token = read_secret(spec.bearer_token_env, spec.bearer_token_file, where)
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        if spec.basic_auth:
            password = read_secret(spec.basic_auth.password_env, spec.basic_auth.password_file, where, header=False)
            # As UTF-8 bytes (RFC 7617): requests encodes str as Latin-1 and fails on anything else.
            user = spec.basic_auth.username
            self.session.auth = requests.auth.HTTPBasicAuth(user.encode("utf-8"), (password or "").encode("utf-8"))
            remember_basic(user, password or "")
        if spec.insecure_skip_verify:
            self.session.verify = False
        elif spec.ca_file:
            self.session.verify = spec.ca_file

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                data: dict[str, Any] | None = None) -> requests.Response:
        """Send with retries on connection errors and 429/5xx; raise SourceError at the end."""
        url = self.url(path)
        attempts = self.spec.retries + 1
        last = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            resp = send(self.session, method, url, self.spec.timeout, params=params, data=data,
                        max_bytes=self.spec.max_response)
            if isinstance(resp, str):
                last = resp
            else:
                if resp.status_code in RETRY_STATUS or resp.status_code >= 500:
                    last = f"{url}: HTTP {resp.status_code}{_body_hint(resp)}"
                    log.info("retrying %s after HTTP %s", url, resp.status_code)
                    continue
                return resp
            log.info("retrying %s: %s", url, last)
        suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
        raise SourceError(last + suffix)

    def json(self, method: str, path: str, params: dict[str, Any] | None = None,
             data: dict[str, Any] | None = None) -> tuple[int, Any]:
        """Request and decode JSON, answering ``(status, body)``.

        Error statuses that carry a JSON body are returned (Prometheus explains its 4xx
        errors in the body); a non-JSON or truncated body is a SourceError.
        """
        resp = self.request(method, path, params=params, data=data)
        try:
            body = resp.json()
        except RecursionError as err:
            raise SourceError(f"{self.url(path)}: HTTP {resp.status_code}, answer is JSON nested too deeply "
                              f"({len(resp.content)} bytes); not a Prometheus API?") from err
        except (ValueError, json.JSONDecodeError) as err:
            ctype = remote_text(resp.headers.get("Content-Type", "?"), 60)
            raise SourceError(
                f"{self.url(path)}: HTTP {resp.status_code}, answer is not JSON "
                f"(Content-Type {ctype}, {len(resp.content)} bytes; truncated or not a "
                f"Prometheus API?)"
            ) from err
        return resp.status_code, body


#: The default cap on an answer's size (a source's ``max_response`` overrides it).
MAX_RESPONSE = 32 << 20
_CHUNK = 1 << 16


def send(session: requests.Session, method: str, url: str, timeout: float, max_bytes: int = MAX_RESPONSE,
         **kwargs: Any) -> requests.Response | str:
    """One request: its response (body read, at most ``max_bytes``), or why there is none (no
    answer in time, no connection) as a one-line message to retry on; any other request
    failure, and an answer beyond ``max_bytes``, raises SourceError.

    ``timeout`` bounds each wait for bytes, and the body has a deadline of its own; the whole
    request also has one (:func:`whole_request_deadline`): a server that keeps sending
    something other than an answer (``100 Continue`` for ever, one informational response
    after another) meets every per-read timeout and would otherwise hold the map for ever.
    The request then runs in a daemon thread that is abandoned past the deadline."""
    deadline = whole_request_deadline(timeout)
    try:
        return call_within(lambda: _send(session, method, url, timeout, max_bytes, **kwargs), deadline,
                           "latmap-http")
    except DeadlinePassed:
        return f"{url}: no complete answer within {deadline:g}s"


def whole_request_deadline(timeout: float) -> float:
    """The longest one request may take from start to read body: two per-read timeouts (the
    connection and the answer's head) and the body's deadline, plus a little."""
    return 3 * timeout + 2.0


def _send(session: requests.Session, method: str, url: str, timeout: float, max_bytes: int,
          **kwargs: Any) -> requests.Response | str:
    try:
        resp = session.request(method, url, timeout=timeout, stream=True, **kwargs)
        try:
            read_capped(resp, url, max_bytes, timeout)
        finally:
            resp.close()
        return resp
    except requests.Timeout:
        return f"{url}: no answer within {timeout:g}s"
    except requests.ConnectionError as err:
        return f"{url}: cannot connect ({connection_reason(err)})"
    except requests.RequestException as err:
        raise SourceError(f"{url}: request failed: {type(err).__name__}") from err


def read_capped(resp: requests.Response, url: str, max_bytes: int, timeout: float) -> bytes:
    """Read the body of a ``stream=True`` response into it, refusing one beyond ``max_bytes``
    (checked on ``Content-Length`` first, then while reading, after decompression) or one
    still arriving ``timeout`` seconds after the headers (a server that drips bytes)."""
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:  # compressed or not: the body is no smaller
        raise SourceError(f"{url}: answer of {int(declared)} bytes is larger than max_response "
                          f"({max_bytes} bytes); narrow the query or raise the source's max_response")
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    while True:
        # read1: what has arrived (decompressed), so a dripping server meets the deadline
        # instead of holding one read until a whole chunk is there.
        try:
            chunk = resp.raw.read1(_CHUNK, decode_content=True)
        except urllib3.exceptions.ReadTimeoutError as err:
            raise requests.Timeout(str(err)) from err
        except urllib3.exceptions.DecodeError as err:
            raise SourceError(f"{url}: answer cannot be decompressed ({type(err).__name__})") from err
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise requests.ConnectionError(str(err)) from err
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise SourceError(f"{url}: answer larger than max_response ({max_bytes} bytes); narrow the "
                              "query or raise the source's max_response")
        if time.monotonic() > deadline:
            raise requests.Timeout(f"{url}: body still arriving after {timeout:g}s")
        chunks.append(chunk)
    body = b"".join(chunks)
    resp._content = body  # what .content, .text and .json() answer from now on
    return body


def connection_reason(err: Exception) -> str:
    """Why a connection failed, in a few words (``connection refused``), never the URL."""
    text = str(err)
    for marker in ("Connection refused", "Name or service not known", "timed out",
                   "No route to host", "Connection reset", "certificate verify failed"):
        if marker in text:
            return marker.lower()
    return type(err).__name__


def _body_hint(resp: requests.Response) -> str:
    try:
        body = resp.json()
        if isinstance(body, dict) and body.get("error"):
            return f": {remote_text(body['error'])}"
    except (ValueError, RecursionError):
        pass
    text = remote_text(resp.text, 120)
    return f": {text}" if text else ""
