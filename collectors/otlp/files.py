"""Reading OTLP trace files: JSON lines, JSON documents, protobuf (plain or length-prefixed),
gzip-compressed or not. Decoding itself is :mod:`collectors.otlp.protobuf`'s and :mod:`collectors.otlp.json`'s.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import logging
import os
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from collectors.otlp.codec import Decoded, NotTraces, PayloadError, gc_paused
from collectors.otlp.json import decode_document, decode_json
from collectors.otlp.protobuf import decode_protobuf
from mapper.core.errors import SourceError

log = logging.getLogger(__name__)

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"

__all__ = ["read_trace_files"]


def read_trace_files(path: str | Path, *, batch_spans: int = 65_536,
                     with_attributes: bool = False) -> Iterator[Decoded]:
    """Decode a trace file, or every file under a directory (recursively, in sorted order).

    The format is recognised from the content, not the name:

    * JSON lines, one TracesData per line, as the Collector's ``file`` exporter writes;
    * one JSON document (any shape :func:`decode_json` accepts), e.g. a ``.json`` download;
    * one protobuf TracesData / ExportTraceServiceRequest (``.pb``, ``.binpb``);
    * length-prefixed protobuf, the ``file`` exporter's ``format: proto``: each message after
      a 4-byte big-endian length;
    * any of these gzip-compressed. (zstd, the exporter's ``compression: zstd``, is reported.)

    Files are streamed (a JSON-lines file is read line by line); consecutive lines or records
    are merged into one :class:`Decoded` of about ``batch_spans`` spans, de-duplicated. In a
    directory, hidden files (``.name``) and files holding something else (OTLP metrics or logs,
    other text) are skipped, with an INFO log line; a file named explicitly must be traces.

    ``with_attributes``: keep :attr:`SpanBatch.attributes` (every span and resource attribute,
    parsed on first use); by default they are let go as soon as a record is decoded (the map
    does not need them, and held raw they cost about the spans' wire size).

    Raises :class:`PayloadError` naming the file and line (``spans.jsonl:17: invalid JSON: ...``)
    or record (``spans.pb: record 3 at byte 1234: ...``), and SourceError when a file cannot be
    read.
    """
    root = Path(path)
    walk = root.is_dir()
    if walk:
        files = sorted(p for p in root.rglob("*")
                       if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
    elif root.is_file():
        files = [root]
    else:
        raise SourceError(f"{root}: no such file or directory")
    for file in files:
        try:
            with _open_stream(file) as stream:
                parts = _read_stream(stream, str(file))
                if not with_attributes:
                    parts = (_without_attributes(d) for d in parts)
                yield from _coalesce(parts, batch_spans)
        except NotTraces as err:
            if not walk:
                raise
            log.info("skipped %s", err)
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise PayloadError(f"{file}: corrupt gzip: {err}") from err
        except OSError as err:
            raise SourceError(f"{file}: cannot read: {err.strerror or err}") from err


def _without_attributes(decoded: Decoded) -> Decoded:
    batch = dataclasses.replace(decoded.batch, attributes=None)
    return Decoded(batch, decoded.rejected, decoded.warnings)


#: A gzip file may expand to this many times its own size, plus :data:`GZIP_FLOOR`: real OTLP
#: JSON compresses about 10-20x and protobuf less; a file expanding further is a gzip bomb (260 KB
#: of zeros becomes 256 MB) and is refused before it is held in memory.
MAX_GZIP_RATIO = 100
GZIP_FLOOR = 64 << 20


class _Capped(io.RawIOBase):
    """A gzip stream that stops with a PayloadError once more than ``cap`` bytes came out."""

    def __init__(self, unzipped: gzip.GzipFile, cap: int, name: str, size: int) -> None:
        self.unzipped, self.cap, self.name, self.size, self.out = unzipped, cap, name, size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.unzipped.readinto(buffer)
        self.out += n
        if self.out > self.cap:
            raise PayloadError(f"{self.name}: gzip expands past {self.cap:,} bytes ({MAX_GZIP_RATIO}x its "
                               f"{self.size:,} bytes and {GZIP_FLOOR >> 20} MiB more): refused as a gzip bomb")
        return n


@contextmanager
def _open_stream(file: Path) -> Iterator[Any]:
    """The file's bytes, gunzipped when they are gzip (any name), the expansion bounded."""
    with open(file, "rb") as handle:
        if handle.peek(2)[:2] == GZIP_MAGIC:
            size = os.fstat(handle.fileno()).st_size
            with gzip.GzipFile(fileobj=handle, mode="rb") as unzipped:
                capped = _Capped(unzipped, size * MAX_GZIP_RATIO + GZIP_FLOOR, str(file), size)
                yield io.BufferedReader(capped, buffer_size=1 << 20)
        else:
            yield handle


def _coalesce(parts: Iterable[Decoded], target: int) -> Iterator[Decoded]:
    pending: list[Decoded] = []
    count = 0
    for part in parts:
        pending.append(part)
        count += len(part.batch)
        if count >= target:
            yield Decoded.merge(pending)
            pending, count = [], 0
    if pending:
        yield Decoded.merge(pending)


def _read_stream(stream: Any, name: str) -> Iterator[Decoded]:
    head = stream.peek(4096)
    if not head:
        return
    if head.startswith(ZSTD_MAGIC):
        raise PayloadError(f"{name}: zstd-compressed (the file exporter's compression: zstd); decompress it first")
    first = head.lstrip(b" \t\r\n\xef\xbb\xbf")[:1]
    if first in (b"{", b"["):
        yield from _read_json(stream, name)
    elif head[:1] == b"\x0a":  # field 1 (resource_spans), length-delimited: one bare message
        yield _decode_record(stream.read(), name, "")
    elif head[0] < 0x08:  # a 4-byte big-endian length below 128 MiB: the file exporter's framing
        yield from _read_framed(stream, name)
    else:
        raise NotTraces(f"{name}: not OTLP traces (JSON, JSON lines or protobuf)")


def _decode_record(body: bytes, name: str, where: str) -> Decoded:
    if body[:4] == ZSTD_MAGIC:
        raise PayloadError(f"{name}{where}: zstd-compressed (the file exporter's compression: zstd); "
                           "decompress it first")
    try:
        if body.lstrip()[:1] in (b"{", b"["):
            return decode_json(body)
        return decode_protobuf(body)
    except PayloadError as err:
        raise type(err)(f"{name}{where}: {err}") from err


def _read_framed(stream: Any, name: str) -> Iterator[Decoded]:
    offset = 0
    record = 0
    while prefix := stream.read(4):
        record += 1
        where = f": record {record} at byte {offset}"
        if len(prefix) < 4:
            raise PayloadError(f"{name}{where}: truncated length prefix ({len(prefix)} of 4 bytes)")
        size = int.from_bytes(prefix, "big")
        body = _read_exact(stream, size)
        if len(body) < size:
            raise PayloadError(f"{name}{where}: truncated record ({len(body)} of {size} bytes)")
        yield _decode_record(body, name, where)
        offset += 4 + size


def _read_exact(stream: Any, size: int) -> bytes:
    """Up to ``size`` bytes, read in pieces so that a corrupt length does not allocate gigabytes."""
    chunks = []
    left = size
    while left > 0:
        chunk = stream.read(min(left, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_json(stream: Any, name: str) -> Iterator[Decoded]:
    lines = iter(stream)
    lineno = 0
    first = b""
    for first in lines:
        lineno += 1
        if first.strip():
            break
    text = first.strip().lstrip(b"\xef\xbb\xbf")
    if (text[:1], text[-1:]) in ((b"{", b"}"), (b"[", b"]")):
        # JSON lines: each line a whole document.
        yield _json_line(text, name, lineno)
        for line in lines:
            lineno += 1
            if line.strip():
                yield _json_line(line, name, lineno)
        return
    # Documents spread over lines (pretty-printed; `jq` output may hold several): read whole.
    try:
        document = (first + b"".join(lines)).decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise PayloadError(f"{name}: invalid JSON: not UTF-8 text (byte {err.start})") from err
    decoder = json.JSONDecoder()
    position = 0
    while True:
        while position < len(document) and document[position] in " \t\r\n":
            position += 1
        if position == len(document):
            return
        with gc_paused():
            try:
                doc, position = decoder.raw_decode(document, position)
            except json.JSONDecodeError as err:
                raise PayloadError(f"{name}:{lineno + err.lineno - 1}: invalid JSON: {err.msg} "
                                   f"at column {err.colno}") from err
            except RecursionError as err:
                raise PayloadError(f"{name}: invalid JSON: nested too deeply") from err
            try:
                decoded = decode_document(doc)
            except PayloadError as err:
                raise type(err)(f"{name}: {err}") from err
            del doc
        yield decoded


def _json_line(line: bytes, name: str, lineno: int) -> Decoded:
    with gc_paused():
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as err:
            raise PayloadError(f"{name}:{lineno}: invalid JSON: {err.msg} at column {err.colno}") from err
        except (UnicodeDecodeError, RecursionError) as err:
            raise PayloadError(f"{name}:{lineno}: invalid JSON: {err}") from err
        try:
            return decode_document(doc)
        except PayloadError as err:
            raise type(err)(f"{name}:{lineno}: {err}") from err
