"""Errors that latmap raises on purpose.

Every error carries the *place* it is about (``file:line``, a URL, a field name) in its
message, so the CLI can print it as one line and a scheduler can act on the exit code.
Anything that is not a :class:`LatmapError` is a bug in latmap, not bad input.
"""

from __future__ import annotations

from mapper.core.redact import redact


class LatmapError(Exception):
    """Base class: a problem with the user's input or environment, with its place.

    ``exit_code`` is what the CLI returns for it (2: usage, config or source error).
    """

    exit_code: int = 2

    def __str__(self) -> str:
        # Masked when shown, not when raised: a secret remembered after the error was made
        # (or an error made before the client read its token) is masked all the same.
        return redact(super().__str__())


class SpecError(LatmapError):
    """The stream spec is wrong; the message starts with ``file:line:``."""


class SourceError(LatmapError):
    """A source (Prometheus, scrape endpoint ...) failed or answered something unusable.

    The message names the URL (never with credentials) and what was wrong.
    """


class QueryRejected(SourceError):
    """The back end answered but refused one measurement's query (HTTP 400/422 with its
    reasons). The rest of the map can still be drawn: the part gets no data and an error
    check carrying the back end's own words."""


class UsageError(LatmapError):
    """A CLI argument is wrong (bad duration, bad time, conflicting options)."""


class OutputError(LatmapError):
    """An output cannot be written where the user asked (``--out`` under ``/proc``, a read-only
    or full disk, a file where a folder should be); the message names the path."""


class DataError(LatmapError):
    """Data that was read cannot make a distribution (e.g. buckets with no +Inf)."""
