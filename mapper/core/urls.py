"""URLs that reach latmap (the spec, ``--prometheus``, ``--push``, ``--pushgateway``): http(s),
and never with credentials in them.

A ``user:password@`` in a URL would travel into stdout, every report and the Grafana
provisioning files; credentials belong in ``bearer_token_env``/``_file`` or ``basic_auth``
(and ``--token-env``/``--token-file`` for Grafana), which latmap reads, sends, and masks.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mapper.core.errors import UsageError
from mapper.core.redact import remote_text

__all__ = ["CREDENTIALS_HINT", "check_http_url", "url_problem"]

CREDENTIALS_HINT = ("credentials in the URL are refused; use bearer_token_env/bearer_token_file or "
                    "basic_auth (password_env/password_file) in the spec, --token-env/--token-file for Grafana")


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be used (not http(s), no host, credentials in it), or ``None``."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "not an http(s) URL: it contains whitespace or control characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not an http(s) URL"
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "not an http(s) URL"
    if "@" in parts.netloc:
        return CREDENTIALS_HINT
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError:
        return "not an http(s) URL: bad port"
    return None


def check_http_url(url: str, option: str) -> str:
    """``url`` when it is fit (see :func:`url_problem`), else a UsageError naming ``option``;
    the URL is quoted without its user info, so the refusal does not print the password."""
    problem = url_problem(url)
    if problem is None:
        return url
    shown = url
    if "@" in url:
        scheme, _, rest = url.rpartition("//")
        shown = f"{scheme}//" * bool(scheme) + rest.rsplit("@", 1)[-1]
    raise UsageError(f"{option}: {problem}: {remote_text(shown, 120)!r}")
