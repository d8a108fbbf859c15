"""The ``datadog`` source of the stream spec: site, keys, accuracy, limits.

A Datadog source names its site by the documented name (``US1``, ``EU1`` ...) or by the
site's domain (``datadoghq.eu``), or gives an explicit ``url`` (a proxy, a test server).
Keys are named, never held: ``api_key_env``/``api_key_file`` and ``app_key_env``/
``app_key_file`` (default: the env vars ``DD_API_KEY`` and ``DD_APP_KEY``, as Datadog's own
tools use).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mapper.core.durations import parse_duration
from mapper.core.spec._parse import Problems, check_keys, str_field
from mapper.core.spec.keys import DATADOG_SOURCE
from mapper.core.urls import CREDENTIALS_HINT, url_problem
from mapper.core.yamlload import LDict

#: Datadog sites by their documented names, and the API host of each.
SITES: dict[str, str] = {
    "US1": "api.datadoghq.com",
    "US3": "api.us3.datadoghq.com",
    "US5": "api.us5.datadoghq.com",
    "EU1": "api.datadoghq.eu",
    "AP1": "api.ap1.datadoghq.com",
    "AP2": "api.ap2.datadoghq.com",
    "UK1": "api.uk1.datadoghq.com",
    "US1-FED": "api.ddog-gov.com",
    "US2-FED": "api.us2.ddog-gov.com",
}
#: The same sites by domain (``DD_SITE`` values): ``datadoghq.eu``, ``us3.datadoghq.com`` ...
SITE_DOMAINS: dict[str, str] = {host.removeprefix("api."): name for name, host in SITES.items()}
#: Datadog's documented relative accuracy for distribution percentiles (DDSketch).
DEFAULT_RELATIVE_ACCURACY = 0.01
#: Datadog metric names: a letter first, then letters, digits, '_' and '.' (at most 200).
METRIC_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,199}$")


@dataclass(frozen=True)
class DatadogOptions:
    """What a ``datadog`` source needs besides the URL (secrets by name only)."""

    site: str | None  # the documented site name, or None with an explicit url
    api_key_env: str | None = "DD_API_KEY"
    api_key_file: str | None = None
    app_key_env: str | None = "DD_APP_KEY"
    app_key_file: str | None = None
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY
    spans_query: str = ""  # extra span search filter, e.g. "env:prod"
    max_spans: int = 200_000
    max_wait: float = 120.0  # longest total wait on rate limits, in seconds

    @property
    def key_names(self) -> str:
        """``DD_API_KEY / DD_APP_KEY`` (or the files), for messages that must not hold keys."""
        return f"{self.api_key_env or self.api_key_file} / {self.app_key_env or self.app_key_file}"


def site_url(site: str) -> tuple[str, str] | None:
    """``(name, https://api-host)`` for a site name or domain, or None when unknown."""
    key = site.strip()
    name = key.upper() if key.upper() in SITES else SITE_DOMAINS.get(key.lower().removeprefix("app."))
    if name is None:
        return None
    return name, f"https://{SITES[name]}"


def parse_datadog(node: LDict, where: str, p: Problems) -> tuple[str, DatadogOptions]:
    """The API base URL and options of a ``kind: datadog`` source."""
    check_keys(node, DATADOG_SOURCE, where, p)
    site = str_field(node, "site", where, p)
    url = str_field(node, "url", where, p)
    name: str | None = None
    base = ""
    if (site is None) == (url is None):
        p.add(node.line, where, "give exactly one of site (US1, EU1, US3, US5, AP1 ...) or url")
    elif site is not None:
        found = site_url(site)
        if found is None:
            p.add(node.line_of("site"), f"{where}.site",
                  f"unknown Datadog site {site!r} (known: {', '.join(SITES)}, or their domains "
                  "such as datadoghq.eu; use url: for a proxy)")
        else:
            name, base = found
    elif url is not None:
        problem = url_problem(url)
        if problem == CREDENTIALS_HINT:  # not quoted: the URL holds the secret
            p.add(node.line_of("url"), f"{where}.url", problem)
        elif problem or not re.match(r"^https?://[^/\s@]+(/\S*)?$", url):
            p.add(node.line_of("url"), f"{where}.url", f"not an http(s) URL without credentials: {url!r}")
        base = url.rstrip("/")
    keys: dict[str, str | None] = {}
    for key in ("api_key", "app_key"):
        env, path = str_field(node, f"{key}_env", where, p), str_field(node, f"{key}_file", where, p)
        if env is not None and path is not None:
            p.add(node.line_of(f"{key}_file"), where, f"give only one of {key}_env, {key}_file")
        keys[f"{key}_env"] = env if env is not None or path is not None else f"DD_{key.upper()}"
        keys[f"{key}_file"] = path
    accuracy = DEFAULT_RELATIVE_ACCURACY
    if "relative_accuracy" in node:
        raw = node["relative_accuracy"]
        text = str(raw).strip()
        try:
            accuracy = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            accuracy = -1.0
        if not 0 < accuracy < 0.5:
            p.add(node.line_of("relative_accuracy"), f"{where}.relative_accuracy",
                  "must be a fraction like 0.01 or 1% (Datadog documents 1% for distributions)")
            accuracy = DEFAULT_RELATIVE_ACCURACY
    max_spans = node.get("max_spans", 200_000)
    if not isinstance(max_spans, int) or isinstance(max_spans, bool) or max_spans < 1:
        p.add(node.line_of("max_spans"), f"{where}.max_spans", "must be a whole number >= 1")
        max_spans = 200_000
    max_wait = 120.0
    if "max_wait" in node:
        try:
            max_wait = parse_duration(node["max_wait"])
        except ValueError as err:
            p.add(node.line_of("max_wait"), f"{where}.max_wait", str(err))
    return base, DatadogOptions(
        site=name, api_key_env=keys["api_key_env"], api_key_file=keys["api_key_file"],
        app_key_env=keys["app_key_env"], app_key_file=keys["app_key_file"],
        relative_accuracy=accuracy, spans_query=str_field(node, "spans_query", where, p) or "",
        max_spans=max_spans, max_wait=max_wait)


def check_filter(text: str) -> str | None:
    """Why a tag filter cannot be put inside ``metric{...}``, or None when it can."""
    if not text.strip():
        return "is empty (use * for every series)"
    if any(c in text for c in "{}\n"):
        return "must not contain braces or newlines (write the tags only, e.g. service:alerting,env:prod)"
    return None
