"""What the OTLP transports (``http_app``, ``grpc_service``) need of the receiver, and what an
export comes to. The transports see the receiver through :class:`Exporter` only, so they
import nothing of ``receiver`` (which builds them): the data flows one way, transport ->
receiver -> spool.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["ExportOutcome", "Exporter", "RequestMetrics"]


@dataclass(frozen=True)
class ExportOutcome:
    """What one export request came to once its spans were durable."""

    accepted: int
    rejected: Mapping[str, int]  # reason -> spans set aside

    @property
    def rejected_spans(self) -> int:
        return sum(self.rejected.values())

    def message(self) -> str:
        """The partial-success ``error_message`` ("" when nothing was rejected)."""
        if not self.rejected:
            return ""
        parts = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.rejected.items()))
        return f"{self.rejected_spans} spans rejected ({parts})"


class RequestMetrics(Protocol):
    """The per-request series a transport counts into (``/metrics``)."""

    requests: Counter  # by transport and answer
    latency: Histogram  # receipt to answer, by transport


class Exporter(Protocol):
    """The receiver as a transport sees it: the token check, the export (durable when it
    returns), the body limit and the ``/metrics`` registry."""

    max_body_bytes: int
    metrics_public: bool

    @property
    def metrics(self) -> RequestMetrics: ...

    @property
    def registry(self) -> CollectorRegistry: ...

    def authorized(self, header: str | None) -> bool: ...

    def export(self, body: bytes, encoding: str, transport: str) -> ExportOutcome: ...

    async def export_async(self, body: bytes, encoding: str, transport: str,
                           executor: Executor | None = None) -> ExportOutcome: ...
