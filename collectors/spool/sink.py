"""What the receiver hands acknowledged spans to: a :class:`SpanSink` (``latmap serve --stream``).

A sink sees each export's spans after the spool made them durable, in the request's thread
(gRPC) or on the HTTP server's event loop (OTLP/HTTP), as the Arrow IPC payload the spool
wrote (:func:`collectors.spool.reader.payloads_batch` turns a list of them into one
:class:`~mapper.core.spans.SpanBatch`). Handing over the bytes rather than a decoded batch
lets a sink queue them and decode many exports at once, off the request path: one conversion
of a large table costs ~30% less per span than one per request. A sink must be quick (it
delays the answer and must not block the event loop) and must not raise: the receiver logs
and counts what a sink raises and answers the export as usual, because the spans are already
safe on disk.
"""

from __future__ import annotations

from typing import Protocol


class SpanSink(Protocol):
    """Takes the spans of each acknowledged export."""

    def accept(self, payload: bytes, spans: int) -> None:
        """Take one export's ``spans`` spans, as the spool record's Arrow IPC ``payload``."""
