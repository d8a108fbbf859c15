"""HTTP for collectors: auth from env vars or files, TLS, timeouts, retries with backoff.

Secrets are read when the client is built and live only in the ``requests`` session; no
error message, log line or report ever contains them (URLs are shown without credentials
or query strings).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import requests

from mapper.core.errors import SourceError
from mapper.core.spec import SourceSpec

log = logging.getLogger(__name__)

#: Status codes worth retrying: the server may answer differently in a moment.
RETRY_STATUS = frozenset({429, 502, 503, 504})
USER_AGENT = "latmap (latency-mapper)"


def read_secret(env: str | None, file: str | None, what: str) -> str | None:
    """The secret named by an env var or a file, stripped; ``None`` when neither is set.

    A named but missing env var or unreadable file is an error: silently sending no
    credentials would turn into a confusing 401 later.
    """
    if env:
        value = os.environ.get(env)
        if value is None or not value.strip():
            raise SourceError(f"{what}: environment variable {env} is not set")
        return value.strip()
    if file:
        try:
            return Path(file).read_text(encoding="utf-8").strip()
        except OSError as err:
            raise SourceError(f"{what}: cannot read {file}: {err.strerror}") from err
    return None


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
            password = read_secret(spec.basic_auth.password_env, spec.basic_auth.password_file, where)
            self.session.auth = (spec.basic_auth.username, password or "")
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
            resp = send(self.session, method, url, self.spec.timeout, params=params, data=data)
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
        except (ValueError, json.JSONDecodeError) as err:
            ctype = resp.headers.get("Content-Type", "?")
            raise SourceError(
                f"{self.url(path)}: HTTP {resp.status_code}, answer is not JSON "
                f"(Content-Type {ctype}, {len(resp.content)} bytes; truncated or not a "
                f"Prometheus API?)"
            ) from err
        return resp.status_code, body


def send(session: requests.Session, method: str, url: str, timeout: float, **kwargs: Any) -> requests.Response | str:
    """One request: its response, or why there is none (no answer in time, no connection) as
    a one-line message to retry on; any other request failure raises SourceError."""
    try:
        return session.request(method, url, timeout=timeout, **kwargs)
    except requests.Timeout:
        return f"{url}: no answer within {timeout:g}s"
    except requests.ConnectionError as err:
        return f"{url}: cannot connect ({connection_reason(err)})"
    except requests.RequestException as err:
        raise SourceError(f"{url}: request failed: {type(err).__name__}") from err


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
            return f": {str(body['error'])[:200]}"
    except ValueError:
        pass
    text = resp.text.strip().replace("\n", " ")[:120]
    return f": {text}" if text else ""
