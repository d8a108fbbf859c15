"""OTLP/HTTP requests as bytes: the framing checks, the body's size limit, gzip, and the
listener's limits; what the app (:mod:`collectors.spool.http_app`) and the server
(:mod:`collectors.spool.http_server`) both apply, and the stdlib benchmark receiver reuses.

Why framing is checked at all: the httptools parser (llhttp) refuses every ambiguous framing
of RFC 9112 §6.1-6.3 with 400 and closes the connection (Content-Length together with
Transfer-Encoding in either order, two Content-Lengths even when equal, ``Content-Length: 0,
0`` or ``+5``, ``Transfer-Encoding: xchunked`` or ``chunked, identity``, obs-folded headers, a
bad chunk size); what llhttp accepts and we still refuse: a transfer coding before
``chunked`` (``gzip, chunked``), answered 400 and the connection closed (:func:`framing_problem`).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

from collectors.otlp.codec import PayloadError
from collectors.spool.limits import require_positive
from mapper.core.errors import LatmapError

__all__ = ["BodyTooLargeError", "HttpLimits", "expects_continue", "framing_problem", "inflate_gzip",
           "unread_body_closes"]


class BodyTooLargeError(LatmapError):
    """The request body is over the limit (HTTP 413)."""


@dataclass(frozen=True)
class HttpLimits:
    """The OTLP/HTTP listener's limits (defaults are what ``latmap serve`` uses)."""

    max_connections: int = 256  # connections or requests in flight; past it: 503
    max_head_bytes: int = 64 << 10  # request line and headers together; past it: 400 and close
    head_timeout: float = 10.0  # seconds from a request's first byte to the end of its headers
    body_timeout: float = 60.0  # seconds to receive the whole body; past it: 408 and close
    keep_alive: int = 30  # an idle keep-alive connection is closed after this many seconds

    def __post_init__(self) -> None:
        require_positive(self, *(f.name for f in fields(self)))  # (zero connections serve nothing)


def inflate_gzip(data: bytes, limit: int) -> bytes:
    """Gunzip ``data`` (several members allowed), refusing past ``limit`` bytes of output.

    Inflates at most ``limit + 1`` bytes in total whatever the ratio, so a bomb costs only
    the limit. Raises BodyTooLargeError past the limit and PayloadError for bad gzip.
    """
    out: list[bytes] = []
    total = 0
    inflater = zlib.decompressobj(wbits=31)
    buf = data
    try:
        while True:
            chunk = inflater.decompress(buf, limit + 1 - total)
            total += len(chunk)
            out.append(chunk)
            if total > limit:
                raise BodyTooLargeError(f"gzip body inflates past {limit} bytes")
            if inflater.eof:
                buf = inflater.unused_data
                if not buf:
                    break
                inflater = zlib.decompressobj(wbits=31)
            else:
                buf = inflater.unconsumed_tail
                if not buf:
                    raise PayloadError("gzip body is truncated")
    except zlib.error as err:
        raise PayloadError(f"body is not valid gzip: {err}") from None
    return b"".join(out)


def framing_problem(lengths: Sequence[str], encodings: Sequence[str]) -> str | None:
    """Why a request's body length is ambiguous (RFC 9112 §6.1-6.3), or None.

    The parser refuses most of these before the app sees them; the app checks again, so a
    request that reaches it with any of them is still answered 400 and the connection closed.
    """
    if encodings:
        if lengths:
            return "both Content-Length and Transfer-Encoding"
        codings = [c.strip().lower() for e in encodings for c in e.split(",")]
        if codings != ["chunked"]:
            return "Transfer-Encoding other than chunked"
        return None
    if len(lengths) > 1:
        return "more than one Content-Length"
    if lengths and not lengths[0].strip().isdigit():
        return "Content-Length is not a number"
    return None


def expects_continue(headers: Mapping[str, list[str]]) -> bool:
    """Whether the client waits for ``100 Continue`` before it sends the body (RFC 9110 10.1.1)."""
    return any("100-continue" in v.lower() for v in headers.get("expect", []))


def unread_body_closes(headers: Mapping[str, list[str]], limit: int) -> bool:
    """An answer that leaves the body unread closes the connection unless the body is small
    and of known length (the server then reads past it to the next request), and the client
    is not waiting for ``100 Continue`` (it may then send the body or not: the connection's
    next bytes are unknown)."""
    lengths = headers.get("content-length", [])
    if "transfer-encoding" in headers or len(lengths) > 1 or expects_continue(headers):
        return True
    return bool(lengths) and (not lengths[0].strip().isdigit() or int(lengths[0]) > limit)
