"""OTLP/gRPC for the receiver: the TraceService's ``Export``, answered the way the OTLP spec
says (UNAUTHENTICATED before anything is parsed, INVALID_ARGUMENT for a body that is not
OTLP, RESOURCE_EXHAUSTED / UNAVAILABLE with a ``google.rpc.RetryInfo`` when the spool cannot
take more). The body arrives as bytes; decoding and the durable append are the receiver's.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from collectors.otlp.codec import PayloadError
from collectors.spool.decode_pool import DecoderUnavailableError
from collectors.spool.store import SpoolBusyError, SpoolError, SpoolFullError

if TYPE_CHECKING:
    from collectors.spool.exporter import Exporter


class RichStatus(grpc.Status):
    """A gRPC status carrying a ``google.rpc.Status`` with details (e.g. RetryInfo)."""

    def __init__(self, code: grpc.StatusCode, message: str, retry_after: int) -> None:
        detail = status_pb2.Status(code=code.value[0], message=message)
        detail.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=Duration(seconds=retry_after)))
        self.code = code
        self.details = message
        self.trailing_metadata = (("grpc-status-details-bin", detail.SerializeToString()),)


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: Exporter) -> None:
        self.receiver = receiver

    def Export(  # the generated servicer's method name
        self, request: bytes, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        receiver = self.receiver
        started = time.perf_counter()
        code = "OK"
        try:
            metadata = {k.lower(): v for k, v in context.invocation_metadata()}
            auth = metadata.get("authorization")
            if not receiver.authorized(auth if isinstance(auth, str) else None):
                code = "UNAUTHENTICATED"
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
            try:
                outcome = receiver.export(bytes(request), "protobuf", "grpc")
            except PayloadError as err:
                code = "INVALID_ARGUMENT"
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
            except (SpoolBusyError, SpoolFullError) as err:
                code = "RESOURCE_EXHAUSTED"
                context.abort_with_status(RichStatus(grpc.StatusCode.RESOURCE_EXHAUSTED, str(err), err.retry_after))
            except (SpoolError, DecoderUnavailableError) as err:
                code = "UNAVAILABLE"
                context.abort_with_status(RichStatus(grpc.StatusCode.UNAVAILABLE, str(err), 5))
            resp = trace_service_pb2.ExportTraceServiceResponse()
            if outcome.rejected:
                resp.partial_success.rejected_spans = outcome.rejected_spans
                resp.partial_success.error_message = outcome.message()
            return resp
        finally:
            receiver.metrics.requests.labels("grpc", code).inc()
            receiver.metrics.latency.labels("grpc").observe(time.perf_counter() - started)
