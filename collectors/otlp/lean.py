"""Lean protobuf schemas: message classes built at import from a table of the fields a reader
keeps, in a private descriptor pool, so that upb parses only those (everything else stays
unparsed bytes) and no generated ``_pb2`` module is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

T = descriptor_pb2.FieldDescriptorProto
_OPT = T.LABEL_OPTIONAL
_REP = T.LABEL_REPEATED

#: message -> (field, number, type, message type or "map" or None)
Schema = Mapping[str, tuple[tuple[str, int, int, str | None], ...]]


#: Messages whose fields are all one oneof named ``value`` (OTLP's AnyValue: which one is set
#: is then known, even for a false bool or a zero int).
ONEOF_MESSAGES = frozenset({"AnyValue"})


def lean_messages(package: str, schema: Schema, repeated: set[tuple[str, str]]) -> dict[str, Any]:
    """The message classes of ``schema`` by name. A field whose target is ``"map"`` is
    ``map<string, AnyValue>`` (the wire layout of OTLP's ``repeated KeyValue``: a hash lookup in
    C instead of a Python loop); ``repeated`` names the repeated (message, field) pairs; the
    fields of :data:`ONEOF_MESSAGES` are one oneof."""
    fdp = descriptor_pb2.FileDescriptorProto(name=f"{package.replace('.', '_')}.proto", package=package,
                                             syntax="proto3")
    for msg_name, fields in schema.items():
        msg = fdp.message_type.add(name=msg_name)
        if msg_name in ONEOF_MESSAGES:
            msg.oneof_decl.add(name="value")
        for name, number, ftype, target in fields:
            if target == "map":
                entry = msg.nested_type.add(name="AttributesEntry")
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, type=T.TYPE_STRING, label=_OPT)
                entry.field.add(name="value", number=2, type=T.TYPE_MESSAGE, label=_OPT,
                                type_name=f".{package}.AnyValue")
                msg.field.add(name=name, number=number, type=ftype, label=_REP,
                              type_name=f".{package}.{msg_name}.AttributesEntry")
                continue
            label = _REP if (msg_name, name) in repeated else _OPT
            f = msg.field.add(name=name, number=number, type=ftype, label=label)
            if target:
                f.type_name = f".{package}.{target}"
            if msg_name in ONEOF_MESSAGES:
                f.oneof_index = 0
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
            for name in schema}
