"""The spec's ``sources:``: where numbers come from, and how latmap may reach them.

A source is checked at load without being contacted: its kind, an http(s) URL without
credentials in it, and the credentials named by env var or file (never written in the spec).
Every problem goes to the shared :class:`~mapper.core.spec._parse.Problems` with its line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mapper.core.spec import keys
from mapper.core.spec._parse import (
    DEFAULT_MAX_RESPONSE,
    Problems,
    check_keys,
    max_response_field,
    retries_timeout,
    str_field,
)
from mapper.core.spec.datadog import DatadogOptions, parse_datadog
from mapper.core.spec.engine import is_url
from mapper.core.urls import CREDENTIALS_HINT
from mapper.core.yamlload import LDict

SOURCE_KINDS = ("prometheus", "scrape", "traces", "datadog")
#: Source kinds that hold spans: latmap's spool / OTLP files, and Datadog APM.
TRACE_SOURCE_KINDS = ("traces", "datadog")


@dataclass(frozen=True)
class BasicAuth:
    username: str
    password_env: str | None = None
    password_file: str | None = None


@dataclass(frozen=True)
class SourceSpec:
    """Where numbers come from. Secrets are named (env var, file), never held here."""

    name: str
    kind: str
    url: str
    place: str
    bearer_token_env: str | None = None
    bearer_token_file: str | None = None
    basic_auth: BasicAuth | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    timeout: float = 30.0
    retries: int = 3
    path: str | None = None  # kind "traces": a spool directory, or OTLP files (file or dir)
    datadog: DatadogOptions | None = None  # kind "datadog": site, key names, limits
    max_response: int = DEFAULT_MAX_RESPONSE  # bytes: a longer answer is refused, not read whole


def parse_sources(doc: LDict, p: Problems) -> tuple[LDict, dict[str, SourceSpec]]:
    """The top-level ``sources:`` mapping as written (measurements look their source up in it,
    even one that failed to parse) and the sources that parsed, by name."""
    sources: dict[str, SourceSpec] = {}
    src = doc.get("sources")
    if not isinstance(src, LDict) or not src:
        p.add(doc.line_of("sources"), "sources", "define at least one source, like prom: {kind: prometheus, url: ...}")
        src = LDict()
    for sname, snode in src.items():
        made = parse_source(str(sname), snode, src.line_of(sname), p)
        if made:
            sources[str(sname)] = made
    return src, sources


def parse_source(name: str, node: Any, line: int, p: Problems) -> SourceSpec | None:
    """One source of any kind; ``None`` when it is not even a mapping."""
    where = f"sources.{name}"
    if not isinstance(node, LDict):
        p.add(line, where, "must be a mapping like {kind: prometheus, url: http://...}")
        return None
    if node.get("kind") == "datadog":
        api_base, options = parse_datadog(node, where, p)
        retries, timeout = retries_timeout(node, where, p)
        return SourceSpec(name=name, kind="datadog", url=api_base, place=p.at(line), timeout=timeout,
                          retries=retries, datadog=options, max_response=max_response_field(node, where, p))
    if node.get("kind") == "traces":
        check_keys(node, keys.TRACES_SOURCE, where, p)
        path = str_field(node, "path", where, p, required=True) or ""
        base = Path(p.path).parent if p.path not in ("<string>", "<demo>") else Path(".")
        resolved = path if Path(path).is_absolute() or is_url(path) else str(base / path)
        return SourceSpec(name=name, kind="traces", url="", place=p.at(line), path=resolved)
    return _http_source(name, node, line, where, p)


def _http_source(name: str, node: LDict, line: int, where: str, p: Problems) -> SourceSpec:
    """A Prometheus-compatible source (``prometheus``, ``scrape``): URL, credentials, TLS."""
    check_keys(node, keys.SOURCE, where, p)
    kind = str_field(node, "kind", where, p, required=True)
    if kind is not None and kind not in SOURCE_KINDS:
        p.add(node.line_of("kind"), f"{where}.kind",
              f"unknown source kind {kind!r} (known: {', '.join(SOURCE_KINDS)})")
    url = str_field(node, "url", where, p, required=True) or ""
    if url and not re.match(r"^https?://[^/\s]+", url):
        p.add(node.line_of("url"), f"{where}.url", f"not an http(s) URL: {url!r}")
    if "@" in url.split("//", 1)[-1].split("/", 1)[0]:
        p.add(node.line_of("url"), f"{where}.url", CREDENTIALS_HINT)
    basic = _basic_auth(node, where, p) if "basic_auth" in node else None
    if "bearer_token_env" in node and "bearer_token_file" in node:
        p.add(node.line_of("bearer_token_file"), where,
              "give only one of bearer_token_env, bearer_token_file")
    headers = _headers(node, where, p) if "headers" in node else {}
    ca_file, insecure = _tls(node, where, p) if "tls" in node else (None, False)
    retries, timeout = retries_timeout(node, where, p)
    return SourceSpec(
        name=name, kind=kind or "", url=url.rstrip("/"), place=p.at(line),
        bearer_token_env=str_field(node, "bearer_token_env", where, p),
        bearer_token_file=str_field(node, "bearer_token_file", where, p),
        basic_auth=basic, headers=headers, ca_file=ca_file, insecure_skip_verify=insecure,
        timeout=timeout, retries=retries, max_response=max_response_field(node, where, p),
    )


def _basic_auth(node: LDict, where: str, p: Problems) -> BasicAuth | None:
    """``basic_auth: {username, password_env | password_file}``: exactly one password place."""
    ba = node["basic_auth"]
    if not isinstance(ba, LDict):
        p.add(node.line_of("basic_auth"), f"{where}.basic_auth", "must be a mapping")
        return None
    check_keys(ba, keys.BASIC_AUTH, f"{where}.basic_auth", p)
    user = str_field(ba, "username", f"{where}.basic_auth", p, required=True) or ""
    penv = str_field(ba, "password_env", f"{where}.basic_auth", p)
    pfile = str_field(ba, "password_file", f"{where}.basic_auth", p)
    if (penv is None) == (pfile is None):
        p.add(ba.line, f"{where}.basic_auth", "give exactly one of password_env, password_file")
    return BasicAuth(user, penv, pfile)


def _headers(node: LDict, where: str, p: Problems) -> dict[str, str]:
    """Extra request headers; an ``Authorization`` header is refused (credentials stay out of
    the spec)."""
    h = node["headers"]
    if not isinstance(h, LDict) or not all(isinstance(v, str) for v in h.values()):
        p.add(node.line_of("headers"), f"{where}.headers", "must map header names to strings")
        return {}
    headers = {str(k): v for k, v in h.items()}
    for k in headers:
        if k.lower() == "authorization":
            p.add(h.line_of(k), f"{where}.headers.{k}",
                  "put credentials in bearer_token_env/_file or basic_auth, not in the spec")
    return headers


def _tls(node: LDict, where: str, p: Problems) -> tuple[str | None, bool]:
    """``tls: {ca_file, insecure_skip_verify}``."""
    t = node["tls"]
    if not isinstance(t, LDict):
        p.add(node.line_of("tls"), f"{where}.tls", "must be a mapping")
        return None, False
    check_keys(t, keys.TLS, f"{where}.tls", p)
    return str_field(t, "ca_file", f"{where}.tls", p), bool(t.get("insecure_skip_verify", False))
