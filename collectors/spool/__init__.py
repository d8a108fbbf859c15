"""The span spool and the OTLP receiver that fills it: ``store`` (write-ahead segments, fsync
before the ack, compaction into hive-partitioned Parquet, reading a window back),
``payload`` (a record's Arrow IPC payload, the links column), ``receiver`` (OTLP/HTTP and
OTLP/gRPC, ``latmap serve``) and ``decode_pool`` (decoding in worker processes).
"""

from typing import TYPE_CHECKING

from mapper.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from collectors.spool import decode_pool, payload, receiver, store

__all__ = ["decode_pool", "payload", "receiver", "store"]

__getattr__ = lazy_getattr(__name__, __all__)
