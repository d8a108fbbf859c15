"""OTLP trace data into span columns: ``codec`` (the shared columns, the reasons a span is set
aside, and the protobuf decoder), ``json`` (OTLP/JSON and the dumps of Tempo and Jaeger) and
``files`` (the Collector's file exporter, framed protobuf, documents, gzip/zstd).
"""
