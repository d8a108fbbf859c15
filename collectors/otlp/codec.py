"""What the OTLP trace decoders share: the errors, the reasons a span is set aside or repaired,
and :class:`Decoded`, the spans of one payload with those counts.

The decoders are pure functions: :func:`collectors.otlp.protobuf.decode_protobuf` and
:func:`collectors.otlp.json.decode_json` take a request body and return a :class:`Decoded`;
:func:`collectors.otlp.files.read_trace_files` is the only reader of files. They fill the same
columns (:class:`collectors.otlp.columns.RawColumns`) and apply the same checks there. The OTLP
receiver answers HTTP 400 with a :class:`PayloadError`'s message, and reports
``sum(Decoded.rejected.values())`` as the partial success's ``rejected_spans``.

What the caller can rely on:

* A payload that cannot be parsed at all raises :class:`PayloadError` (one line, naming the
  place: ``file:line``, the record, the JSON path). A span that parses but cannot be used
  (wrong id length, no timestamps, end before start, a duplicate ...) is set aside and counted
  in ``Decoded.rejected`` under one of :data:`REJECT_REASONS`; the first matching reason wins,
  so the counts add up to the number of spans dropped.
* A span that is usable but was repaired is kept and counted in ``Decoded.warnings`` under
  one of :data:`WARNING_REASONS`: no ``service.name`` (the OTel default ``unknown_service``, or
  ``unknown_service:<process.executable.name>``, is used, as SDKs do), an unknown kind or status
  code (0 is used), a link with a malformed id (kept with zero ids, so the map counts it;
  the ``link_*`` columns get none), or a string value longer than
  :data:`MAX_VALUE_CHARS` (cut), or a ``tracestate`` whose OpenTelemetry sampling threshold
  (``ot=th:...``) is not 1-14 lowercase hex digits (the span is kept, its sampling unknown).
* Rows keep the payload's order; within one :class:`Decoded` a (trace id, span id) pair
  appears once (the first copy wins: retried exports resend the same span).
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from mapper.core.errors import LatmapError
from mapper.core.spans import DUPLICATE_SPAN, SpanBatch, dedupe

__all__ = [
    "BAD_LINK_ID",
    "BAD_PARENT_ID_LENGTH",
    "BAD_SPAN_ID_LENGTH",
    "BAD_TIMESTAMP",
    "BAD_TRACE_ID_LENGTH",
    "DUPLICATE_SPAN",
    "END_BEFORE_START",
    "INVALID_PARENT_ID",
    "INVALID_SAMPLING_THRESHOLD",
    "INVALID_SPAN_ID",
    "INVALID_TRACE_ID",
    "LONG_VALUE",
    "MAX_VALUE_CHARS",
    "MISSING_SERVICE_NAME",
    "MISSING_TIMESTAMPS",
    "REJECT_REASONS",
    "UNKNOWN_SERVICE",
    "UNKNOWN_SPAN_KIND",
    "UNKNOWN_STATUS_CODE",
    "WARNING_REASONS",
    "Decoded",
    "NotTraces",
    "PayloadError",
    "gc_paused",
    "nonzero_counts",
]


class PayloadError(LatmapError):
    """A body or trace file that cannot be decoded at all; the receiver answers HTTP 400.

    The message is one line: the place (``file:line``, ``file: record N at byte B``, a JSON
    path) and what is wrong (``invalid protobuf: ...``, ``invalid JSON: ...``).
    """


class NotTraces(PayloadError):
    """Content that is something else (metrics, logs, YAML ...): skipped in a directory walk."""


# Reasons a span is set aside (Decoded.rejected), in the order they are tested.
BAD_TRACE_ID_LENGTH = "bad trace id length"
INVALID_TRACE_ID = "invalid trace id"  # all zeros, or JSON text that is neither hex nor base64
BAD_SPAN_ID_LENGTH = "bad span id length"
INVALID_SPAN_ID = "invalid span id"
BAD_PARENT_ID_LENGTH = "bad parent span id length"
INVALID_PARENT_ID = "invalid parent span id"
BAD_TIMESTAMP = "bad timestamp"  # negative, past 2262 (does not fit int64 ns), or not an integer
MISSING_TIMESTAMPS = "missing timestamps"  # start or end is 0 (absent)
END_BEFORE_START = "end before start"
REJECT_REASONS: tuple[str, ...] = (
    BAD_TRACE_ID_LENGTH, INVALID_TRACE_ID, BAD_SPAN_ID_LENGTH, INVALID_SPAN_ID, BAD_PARENT_ID_LENGTH,
    INVALID_PARENT_ID, BAD_TIMESTAMP, MISSING_TIMESTAMPS, END_BEFORE_START, DUPLICATE_SPAN,
)

# Reasons a span was kept but repaired (Decoded.warnings).
MISSING_SERVICE_NAME = "missing service.name"
UNKNOWN_SPAN_KIND = "unknown span kind"
UNKNOWN_STATUS_CODE = "unknown status code"
BAD_LINK_ID = "bad link id"
LONG_VALUE = "long value truncated"
INVALID_SAMPLING_THRESHOLD = "invalid sampling threshold"
WARNING_REASONS: tuple[str, ...] = (
    MISSING_SERVICE_NAME, UNKNOWN_SPAN_KIND, UNKNOWN_STATUS_CODE, BAD_LINK_ID, LONG_VALUE,
    INVALID_SAMPLING_THRESHOLD,
)

#: The service of spans whose resource has no ``service.name`` (OTel resource semantic conventions).
UNKNOWN_SERVICE = "unknown_service"
#: Longest kept span name, service or attribute value, in characters; longer ones are cut.
MAX_VALUE_CHARS = 1024

@dataclass(frozen=True)
class Decoded:
    """The spans of one payload (or file chunk), with what was set aside and what was repaired.

    ``rejected``: reason -> spans dropped (sums to the OTLP ``rejected_spans``).
    ``warnings``: reason -> spans kept after a repair (not errors; worth showing).
    """

    batch: SpanBatch
    rejected: Mapping[str, int]
    warnings: Mapping[str, int] = field(default_factory=dict)

    @property
    def rejected_spans(self) -> int:
        return sum(self.rejected.values())

    @staticmethod
    def merge(parts: Iterable[Decoded]) -> Decoded:
        """One Decoded from several: batches concatenated and de-duplicated, counts added."""
        parts = list(parts)
        if len(parts) == 1:
            return parts[0]
        rejected: Counter[str] = Counter()
        warnings: Counter[str] = Counter()
        for part in parts:
            rejected.update(part.rejected)
            warnings.update(part.warnings)
        batch, duplicates = dedupe(SpanBatch.concat([p.batch for p in parts]))
        rejected[DUPLICATE_SPAN] += duplicates
        return Decoded(batch, nonzero_counts(rejected), nonzero_counts(warnings))


def nonzero_counts(counter: Mapping[str, int]) -> dict[str, int]:
    """The non-zero counts as plain ints, sorted by reason (what ``Decoded`` holds)."""
    return {k: int(v) for k, v in sorted(counter.items()) if v}


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a decoder allocates millions of acyclic objects.

    Each allocation burst otherwise triggers collections that scan everything built so far:
    json.loads of a large body runs 4-5x faster without them, the protobuf copy loop about a
    third faster. Reference counting still frees memory; nothing built here has cycles. The
    previous state is restored (concurrent decoders leave it enabled when it was).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
