"""Secrets never leave latmap, and what a remote server says is shown tamed.

Every secret latmap reads (a bearer token, a basic-auth password and the base64 of
``user:password`` that goes on the wire, Datadog's API and application keys, the Grafana
token, the receiver's token) is :func:`remember`-ed by the one function that reads secrets
(``collectors.http.read_secret``) or the client that builds the Basic header. From then on
:func:`redact` replaces each of them with ``***`` wherever they appear, and it is applied
in the places every output passes through: the text of every :class:`LatmapError`, every
log record (:class:`RedactFilter` on the CLI's handler), every file written by
``write_atomic`` and every line the CLI prints. So a proxy that echoes the request headers
in its error body cannot make latmap print, log or write a credential.

:func:`remote_text` is for text a remote source chose (an error body, a label value): it
removes control characters (no terminal escapes, no broken lines) and caps the length.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from urllib.parse import quote

__all__ = ["MASK", "MIN_SECRET", "RedactFilter", "for_terminal", "is_unicode_text", "printable", "quoted", "redact",
           "remember", "remember_basic", "remote_text"]

#: What a secret is replaced with.
MASK = "***"
#: Shorter values are not remembered: masking every "ab" of a report would hide the report,
#: and a 3-character credential protects nothing anyway.
MIN_SECRET = 4
#: How much of a remote server's own words a message quotes.
REMOTE_LIMIT = 200

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
# C0 and C1 control characters, DEL, and the Unicode line/paragraph separators and bidi
# overrides that reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def remember(value: str | None) -> str | None:
    """Remember ``value`` as a secret (also its URL-encoded form) and answer it unchanged."""
    global _pattern
    if value is None or len(value) < MIN_SECRET:
        return value
    with _lock:
        before = len(_secrets)
        _secrets.update({value, quote(value, safe="")})
        if len(_secrets) != before:
            # Longest first: a secret that contains another is masked whole. White space may
            # stand between any two characters: a proxy or a log formatter that spaces, wraps or
            # indents an echoed header must not get a credential past the mask.
            _pattern = re.compile("|".join(_spaced(s) for s in sorted(_secrets, key=len, reverse=True)))
    return value


def _spaced(secret: str) -> str:
    """A pattern matching ``secret`` with any white space between its characters."""
    return r"\s*".join(re.escape(c) for c in secret)


def remember_basic(username: str, password: str) -> None:
    """Remember a basic-auth password and the ``base64(user:password)`` sent on the wire."""
    remember(password)
    if password:
        remember(base64.b64encode(f"{username}:{password}".encode()).decode("ascii"))


def redact(text: str) -> str:
    """``text`` with every remembered secret replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def printable(text: str) -> str:
    """``text`` without control characters (each becomes a space): safe for one terminal line."""
    return _CONTROL.sub(" ", text)


_CONTROL_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def for_terminal(text: str) -> str:
    """``text`` fit for stdout/stderr: secrets masked, control characters other than newline
    and tab removed (no ESC or OSC sequence from a name or an answer reaches the terminal)."""
    return _CONTROL_BUT_LINES.sub("", redact(text))


def remote_text(text: object, limit: int = REMOTE_LIMIT) -> str:
    """What a remote server said, fit to quote: one line, no control characters, at most
    ``limit`` characters (``…`` marks a cut), secrets masked.

    Masked on the whole text first, then cut: cutting first could leave a prefix of a secret
    that the mask no longer recognises as one."""
    line = " ".join(printable(redact(str(text))).split())
    if len(line) > limit:
        line = line[:limit] + "…"
    return line


def is_unicode_text(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8: no lone surrogate (JSON's and YAML's ``\\ud800``
    escapes make them, and every file, header and terminal write would then fail)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def quoted(value: object, limit: int = 40) -> str:
    """``value`` quoted for a message: Python's repr (every control or odd character escaped),
    secrets masked, and at most ``limit`` characters in all, however the escapes expand it
    (``…`` marks a cut). Cutting the text before repr would not bound the result: one
    character can escape to ten."""
    shown = redact(repr(value))
    return shown if len(shown) <= limit else shown[: max(limit - 1, 1)] + "…"


class RedactFilter(logging.Filter):
    """A logging filter that formats the record and masks the secrets in it (install it on a
    handler, so records of every logger are covered)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
