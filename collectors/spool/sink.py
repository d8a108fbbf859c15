"""What the receiver hands acknowledged spans to: a :class:`SpanSink` (``latmap serve --stream``).

A sink sees each export's spans after the spool made them durable, in the request's thread,
decoded to one :class:`~mapper.core.spans.SpanBatch`. It must be quick (it delays the answer)
and must not raise: the receiver logs and counts what a sink raises and answers the export
as usual, because the spans are already safe on disk.
"""

from __future__ import annotations

from typing import Protocol

from mapper.core.spans import SpanBatch


class SpanSink(Protocol):
    """Takes the spans of each acknowledged export."""

    def accept(self, batch: SpanBatch) -> None: ...
