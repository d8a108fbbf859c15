"""OTLP trace data into span columns: ``codec`` (what the decoders share: the errors, the reasons
a span is set aside, :class:`~collectors.otlp.codec.Decoded`), ``columns`` (the columns a
decoder fills and their vectorised checks), ``protobuf`` (the lean-schema protobuf decoder),
``json`` (OTLP/JSON and the dumps of Tempo and Jaeger) and ``files`` (the Collector's file
exporter, framed protobuf, documents, gzip/zstd).
"""
