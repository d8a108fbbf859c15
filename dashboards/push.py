"""Upsert a dashboard through Grafana's HTTP API, idempotently and without clobbering.

The steps (each a plain HTTP call, so a test server can answer them):

1. ``GET /api/dashboards/uid/<uid>``: a dashboard with our uid whose ``tags`` is not a list
   holding ``latmap`` (:func:`is_latmaps`; a string ``"latmap"`` is not) is someone else's:
   refuse (:class:`UsageError`, nothing written) unless ``force``.
2. ``GET /api/folders``: find the folder by title. If the stored dashboard already equals
   ours (ignoring ``id`` and ``version``) and sits in that folder, stop: nothing is written.
3. ``POST /api/folders`` when the folder is missing, then ``POST /api/dashboards/db`` with
   ``folderUid``, ``overwrite`` (only when the stored dashboard was checked above) and a
   commit ``message``.

Errors are :class:`SourceError` naming the Grafana URL (never the token): 401/403 say to
check the token and its rights, 412 says someone else changed or named the dashboard; an
answer of the wrong shape (a list for an object, a uid that is no string) names the field.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from collectors.http import MAX_RESPONSE, USER_AGENT, read_secret, send
from mapper.core.errors import SourceError, UsageError
from mapper.core.redact import remember, remote_text
from mapper.core.urls import check_http_url

__all__ = ["LATMAP_TAG", "PushResult", "is_latmaps", "push_dashboard", "token_from"]

log = logging.getLogger(__name__)

#: The tag that marks a dashboard as latmap's own (and so safe to overwrite).
LATMAP_TAG = "latmap"
#: Keys Grafana assigns on save; they do not make two dashboards different.
_VOLATILE = ("id", "version")


class PushResult(NamedTuple):
    """What a push did. ``status`` is ``created``, ``updated`` or ``unchanged``."""

    uid: str
    status: str
    folder_uid: str | None
    url: str | None = None
    version: int | None = None


def token_from(env: str | None, file: str | None) -> str:
    """The Grafana token from ``--token-env VAR`` or ``--token-file F``; one is required."""
    token = read_secret(env, file, "Grafana token")
    if not token:
        raise UsageError("--push needs a token: --token-env VAR or --token-file FILE")
    return token


def _safe(url: str) -> str:
    """``url`` without user info, query or fragment: fit for a message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


class _Grafana:
    def __init__(self, url: str, token: str, folder: str | None, timeout: float) -> None:
        self.base = url.rstrip("/")
        self.shown = _safe(url)
        self.folder = folder
        self.timeout = timeout
        remember(token)  # a token passed in from Python, not read by read_secret
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT,
                                     "Accept": "application/json"})

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             allow: tuple[int, ...] = ()) -> tuple[int, Any]:
        where = f"Grafana {self.shown}{path}"
        # Through collectors.http.send: the body capped, the whole request under a deadline
        # (a server answering 100 Continue for ever cannot hold the push), no redirect (the
        # token stays here).
        resp = send(self.session, method, self.base + path, self.timeout, MAX_RESPONSE, json=body,
                    allow_redirects=False)
        if isinstance(resp, str):
            if ": cannot connect" in resp:
                raise SourceError(f"{where}: cannot connect (is Grafana running at {self.shown}?)")
            raise SourceError(f"{where}: no answer within {self.timeout:g}s")
        status = resp.status_code
        try:
            data = resp.json() if resp.content else None
        except (ValueError, RecursionError):
            data = None
        message = remote_text(data.get("message", "")) if isinstance(data, dict) else ""
        if status in (401, 403):
            scope = f"folder {self.folder!r}" if self.folder else "the General folder"
            what = "refused the token" if status == 401 else "denied the token"
            raise SourceError(
                f"{where}: HTTP {status}: Grafana {what}: check --token-env/--token-file and "
                f"that it has Editor rights on {scope}" + (f" ({message})" if message else ""))
        if status == 412:
            kind = remote_text(data.get("status", ""), 40) if isinstance(data, dict) else ""
            hint = {"version-mismatch": "the dashboard was changed in Grafana since it was read",
                    "name-exists": "another dashboard in the folder has the same title",
                    "plugin-dashboard": "a plugin provides this dashboard"}.get(
                        kind, "precondition failed")
            raise SourceError(f"{where}: HTTP 412 {kind or ''}: {hint}; push again, or use "
                              "--force to overwrite" + (f" ({message})" if message else ""))
        if status in allow or 200 <= status < 300:
            if data is None and 200 <= status < 300:
                raise SourceError(f"{where}: HTTP {status}, answer is not JSON (not Grafana's API?)")
            return status, data
        raise SourceError(f"{where}: HTTP {status}" + (f": {message}" if message else ""))


def _comparable(dashboard: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dashboard.items() if k not in _VOLATILE}


# Every field read from a Grafana answer is checked for its type here: an answer of the wrong
# shape (a list for an object, a number for a uid, a string for tags) is a one-line
# SourceError naming the URL and the field, never a traceback and never a guess.


def _object(data: Any, where: str, what: str = "the answer") -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SourceError(f"{where}: {what} is {_kind(data)}, expected a JSON object (not Grafana's API?)")
    return data


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _uid(data: dict[str, Any], where: str, field: str = "uid") -> str:
    uid = data.get("uid")
    if not isinstance(uid, str) or not uid:
        shown = "missing" if uid is None else f"{_kind(uid)} ({remote_text(repr(uid), 40)})"
        raise SourceError(f"{where}: {field} is {shown}, expected a non-empty string")
    return uid


def _optional(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    """``data[key]`` when it is of ``kind`` (bool is no int), None when missing or null."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SourceError(f"{where}: {key} is {_kind(value)}, expected {kind.__name__}")
    return value


def is_latmaps(dashboard: dict[str, Any]) -> bool:
    """Whether a stored dashboard is latmap's own: ``tags`` a list holding :data:`LATMAP_TAG`.
    A string ``tags`` (``"latmap-like"``), a tag inside a nested list, or no tags is someone
    else's dashboard."""
    tags = dashboard.get("tags")
    return isinstance(tags, list) and any(isinstance(t, str) and t == LATMAP_TAG for t in tags)


def _find_folder(g: _Grafana, title: str) -> str | None:
    where = f"Grafana {g.shown}/api/folders"
    _, folders = g.call("GET", "/api/folders?limit=1000")
    if not isinstance(folders, list):
        raise SourceError(f"{where}: the answer is {_kind(folders)}, expected a list of folders")
    for i, f in enumerate(folders):
        if isinstance(f, dict) and f.get("title") == title:
            return _uid(f, where, f"[{i}].uid (folder {remote_text(repr(title), 80)})")
    return None


def push_dashboard(url: str, dashboard: dict[str, Any], folder: str | None, token: str,
                   force: bool = False, message: str = "latmap: update dashboard",
                   timeout: float = 30.0) -> PushResult:
    """Create or update ``dashboard`` (which must have a ``uid``) in ``folder`` (a title;
    ``None``: the General folder) of the Grafana at ``url``.

    Idempotent: when Grafana already holds the same dashboard in that folder, nothing is
    written and the result's status is ``unchanged``. ``dashboard`` is not modified.
    """
    check_http_url(url, "--push")
    uid = dashboard.get("uid")
    if not uid:
        raise UsageError("the dashboard has no uid: cannot upsert it idempotently")
    g = _Grafana(url, token, folder, timeout)
    path = f"/api/dashboards/uid/{quote(str(uid), safe='')}"
    where = f"Grafana {g.shown}{path}"
    status, stored = g.call("GET", path, allow=(404,))
    existing: dict[str, Any] | None = None
    meta: dict[str, Any] = {}
    if status != 404:
        stored = _object(stored, where)
        existing = _object(stored.get("dashboard"), where, "dashboard")
        meta = _object(stored.get("meta") or {}, where, "meta")
        if not is_latmaps(existing) and not force:
            title = existing.get("title")
            raise UsageError(
                f"Grafana {g.shown}: dashboard uid {uid!r} ({remote_text(repr(title), 80)}) exists and "
                f"is not tagged {LATMAP_TAG!r} (tags must be a list holding it): not overwriting it "
                "(use --force to replace it)")
    folder_uid = _find_folder(g, folder) if folder else None
    if existing is not None and (not folder or folder_uid is not None):
        same_folder = (_optional(meta, "folderUid", str, f"{where}: meta") or "") == (folder_uid or "")
        if same_folder and _comparable(existing) == _comparable(dashboard):
            log.info("Grafana %s: dashboard %s unchanged", g.shown, uid)
            return PushResult(str(uid), "unchanged", folder_uid, _optional(meta, "url", str, f"{where}: meta"),
                              _optional(existing, "version", int, f"{where}: dashboard"))
    if folder and folder_uid is None:
        _, created = g.call("POST", "/api/folders", {"title": folder})
        folder_uid = _uid(_object(created, f"Grafana {g.shown}/api/folders"), f"Grafana {g.shown}/api/folders")
        log.info("Grafana %s: created folder %r (%s)", g.shown, folder, folder_uid)
    body_dash = copy.deepcopy(dashboard)
    body_dash["id"] = None
    body_dash.pop("version", None)
    body: dict[str, Any] = {"dashboard": body_dash, "overwrite": existing is not None,
                            "message": message}
    if folder_uid:
        body["folderUid"] = folder_uid
    _, saved = g.call("POST", "/api/dashboards/db", body)
    where = f"Grafana {g.shown}/api/dashboards/db"
    saved = _object(saved, where)
    return PushResult(str(uid), "updated" if existing is not None else "created", folder_uid,
                      _optional(saved, "url", str, where), _optional(saved, "version", int, where))
