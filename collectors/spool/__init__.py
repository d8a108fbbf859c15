"""The span spool and the OTLP receiver that fills it: ``store`` (the writer: fsync before the
ack, group commit), with ``wal`` (write-ahead segments as files), ``compaction`` (into
hive-partitioned Parquet, retention), ``locks`` (one or several writers) and ``limits``
(capacity, the full/busy errors); ``reader`` (the on-disk format, reading a window back),
``payload`` (a record's Arrow IPC payload, the links column), ``receiver`` (OTLP/HTTP and
OTLP/gRPC, ``latmap serve``; the HTTP app in ``http_app``, its server in ``http_server``,
framing and limits in ``http_framing``, the gRPC service in ``grpc_service``, both
transports seeing the receiver as an ``exporter``; ``/metrics`` content negotiation and the
protobuf exposition in ``exposition``) and ``decode_pool`` (decoding in worker processes),
``sink`` (what takes acknowledged spans as they arrive: the live value stream).
"""

from typing import TYPE_CHECKING

from mapper.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from collectors.spool import (
        compaction,
        decode_pool,
        exporter,
        exposition,
        grpc_service,
        http_app,
        http_framing,
        http_server,
        limits,
        locks,
        payload,
        reader,
        receiver,
        sink,
        store,
        wal,
    )

__all__ = ["compaction", "decode_pool", "exporter", "exposition", "grpc_service", "http_app", "http_framing",
           "http_server", "limits", "locks", "payload", "reader", "receiver", "sink", "store", "wal"]

__getattr__ = lazy_getattr(__name__, __all__)
