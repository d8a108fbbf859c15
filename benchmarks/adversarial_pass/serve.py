"""Part ``serve``: ``latmap serve`` with a token against raw sockets (malformed, oversized and
gzip-bomb bodies, every ambiguous framing, slowloris heads and bodies, resets mid-body, wrong
content types and encodings, bad tokens, hostile JSON and protobuf, too many connections, an
HTTP/2 preface, shapes OTLP/JSON does not have), and ``latmap serve`` started with settings
it must refuse (an empty token file, ``--max-disk 0`` ...).

Clean means an answer of the right class (or the connection closed where that is the
answer), the server still alive and answering, and not one traceback in its log.
"""

from __future__ import annotations

import gzip
import os
import signal
import socket
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from .common import TOKEN, Case, Probe, Server, Tally, exchange, exits, free_port, leaks, otlp_request
from .common import head as _head

Send = Callable[[int], tuple[bytes, bool]]
Right = Callable[[bytes, bool], bool]


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _varint(len(payload)) + payload


def tiny_spans(n: int) -> bytes:
    """An export of ``n`` spans of two bytes each (no ids, no times): ~2 bytes a span."""
    return _field(0x0A, _field(0x12, b"\x12\x00" * n))


def serve_cases(quick: bool) -> list[tuple[str, Send, Right]]:
    """(name, what to send given the port, whether the answer is the right one)."""
    smuggled = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"

    def status(*codes: int) -> Callable[[bytes, bool], bool]:
        return lambda out, closed: any(out.startswith(b"HTTP/1.1 %d " % c) for c in codes)

    def refused_and_closed(out: bytes, closed: bool) -> bool:
        return out.startswith(b"HTTP/1.1 400 ") and closed and out.count(b"HTTP/1.") == 1

    def closed_silently(out: bytes, closed: bool) -> bool:
        return closed and (out == b"" or out.startswith((b"HTTP/1.1 400", b"HTTP/1.1 408")))

    def body(payload: bytes, extra: bytes = b"", **kw: Any) -> bytes:
        return _head(extra + b"Content-Length: %d\r\n\r\n" % len(payload), **kw) + payload

    good = otlp_request(5, trace=0xADADAD)
    bomb = gzip.compress(b"\x00" * (200 << 20), compresslevel=9)
    deep_json = b'{"resourceSpans": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    deep_pb = b"\x0a\xff\xff\xff\x0f" + b"\x0a\x80\x80\x04" * 1000
    cases: list[tuple[str, Send, Right]] = [
        ("valid export", lambda p: exchange(p, body(good) + b""), status(200)),
        ("random bytes as protobuf", lambda p: exchange(p, body(os.urandom(4096))), status(400, 200)),
        ("truncated protobuf", lambda p: exchange(p, body(good[: len(good) // 2])), status(400, 200)),
        ("deeply nested protobuf", lambda p: exchange(p, body(deep_pb)), status(400)),
        # a field with another wire type is an unknown field to protobuf: an empty request, or 400
        ("protobuf with wrong wire types", lambda p: exchange(p, body(b"\x0d\x01\x02\x03\x04" * 100)),
         status(400, 200)),
        ("JSON: not JSON", lambda p: exchange(p, body(b"{not json", ctype=b"application/json")), status(400)),
        ("JSON: deep nesting", lambda p: exchange(p, body(deep_json, ctype=b"application/json")), status(400)),
        ("JSON: wrong types", lambda p: exchange(p, body(b'{"resourceSpans": [{"scopeSpans": "x"}]}',
                                                         ctype=b"application/json")), status(400, 200)),
        ("JSON: huge numbers", lambda p: exchange(p, body(
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"AAAAAAAAAAAAAAAAAAAAAA==","spanId":'
            b'"AAAAAAAAAAE=","startTimeUnixNano":"1' + b"0" * 400 + b'","endTimeUnixNano":1e999}]}]}]}',
            ctype=b"application/json")), status(400, 200)),
        ("JSON: a string of 10 MB", lambda p: exchange(p, body(b'{"x": "' + b"a" * (10 << 20) + b'"}',
                                                               ctype=b"application/json")), status(400, 200)),
        # over twice the 20 MiB limit: refused from the head; under it, read (drained) first, then refused
        ("body over the limit (Content-Length 50 MB, 64 KB sent)",
         lambda p: exchange(p, _head(b"Content-Length: 52428800\r\n\r\n") + b"x" * 65536), status(413)),
        ("body over the limit (30 MB sent)",
         lambda p: exchange(p, _head(b"Content-Length: 31457280\r\n\r\n") + b"x" * 31457280, wait=20), status(413)),
        ("gzip bomb (200 MB of zeros)", lambda p: exchange(p, body(bomb, b"Content-Encoding: gzip\r\n")), status(413)),
        ("truncated gzip", lambda p: exchange(p, body(gzip.compress(good)[:-10], b"Content-Encoding: gzip\r\n")),
         status(400)),
        ("gzip header, plain body", lambda p: exchange(p, body(good, b"Content-Encoding: gzip\r\n")), status(400)),
        ("Content-Encoding br", lambda p: exchange(p, body(good, b"Content-Encoding: br\r\n")), status(415)),
        ("Content-Type text/plain", lambda p: exchange(p, body(good, ctype=b"text/plain")), status(415)),
        ("no Content-Type", lambda p: exchange(p, b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                                               + TOKEN.encode() + b"\r\nContent-Length: 0\r\n\r\n"), status(415)),
        ("no token", lambda p: exchange(p, body(good, token=None)), status(401)),
        ("wrong token", lambda p: exchange(p, body(good, token="wrong")), status(401)),
        ("token as Basic", lambda p: exchange(p, body(good).replace(b"Bearer", b"Basic")), status(401)),
        ("token of 60 KB", lambda p: exchange(p, body(good, token="t" * 60_000)), status(401, 400)),
        ("token with a prefix of the right one", lambda p: exchange(p, body(good, token=TOKEN[:-1])), status(401)),
        ("no Content-Length, no body", lambda p: exchange(p, _head(b"\r\n")), status(411)),
        ("wrong path", lambda p: exchange(p, body(good).replace(b"/v1/traces", b"/v1/logs")), status(404)),
        ("PUT", lambda p: exchange(p, body(good).replace(b"POST", b"PUT", 1)), status(405)),
        ("absurd method", lambda p: exchange(p, body(good).replace(b"POST", b"FOO\x01", 1)), refused_and_closed),
        ("URL of 100 KB", lambda p: exchange(p, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
         refused_and_closed),
        ("10,000 headers", lambda p: exchange(p, _head(b"X-A: b\r\n" * 10_000 + b"Content-Length: 0\r\n\r\n")),
         refused_and_closed),
        ("HTTP/0.9-style request line", lambda p: exchange(p, b"GET /metrics\r\n\r\n"),
         lambda out, closed: closed and out.startswith((b"HTTP/1.1 200", b"HTTP/1.1 400"))),
        ("binary garbage instead of HTTP", lambda p: exchange(p, os.urandom(2048)), refused_and_closed),
        ("TLS hello on the plain port", lambda p: exchange(p, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
                                                          + os.urandom(200)), refused_and_closed),
        ("Expect: 100-continue", lambda p: exchange(p, body(good, b"Expect: 100-continue\r\n")),
         lambda out, closed: b"HTTP/1.1 200 " in out),
        ("pipelined exports", lambda p: exchange(p, body(good, close=False) * 2 + body(good), wait=5),
         lambda out, closed: out.count(b"HTTP/1.1 200 ") == 3),
        ("chunked export", lambda p: exchange(p, _head(b"Transfer-Encoding: chunked\r\n\r\n") + b"%x\r\n" % len(good)
                                              + good + b"\r\n0\r\n\r\n"), status(200)),
        ("chunked with a bad size", lambda p: exchange(p, _head(b"Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n")),
         refused_and_closed),
        ("chunked over the limit", lambda p: exchange(
            p, [_head(b"Transfer-Encoding: chunked\r\n\r\n")] + [b"100000\r\n" + b"x" * 0x100000 + b"\r\n"] * 22,
            wait=15), lambda out, closed: out.startswith(b"HTTP/1.1 413") and closed),
    ]
    framings = [
        ("CL + TE", b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
        ("TE + CL", b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n"),
        ("TE: xchunked", b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"),
        ("TE: chunked, identity", b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n"),
        ("TE: gzip, chunked", b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"),
        ("TE twice", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
        ("TE obs-fold", b"Transfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\n"),
        ("TE with a space before the colon", b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n"),
        ("TE: CHUNKED in capitals", b"Transfer-Encoding: CHUNKED\r\nContent-Length: 3\r\n", b"0\r\n\r\n"),
        ("two different Content-Lengths", b"Content-Length: 0\r\nContent-Length: 38\r\n", b""),
        ("two equal Content-Lengths", b"Content-Length: 0\r\nContent-Length: 0\r\n", b""),
        ("Content-Length: 0, 0", b"Content-Length: 0, 0\r\n", b""),
        ("Content-Length: +5", b"Content-Length: +5\r\n", b""),
        ("Content-Length: -1", b"Content-Length: -1\r\n", b""),
        ("Content-Length: 0x10", b"Content-Length: 0x10\r\n", b""),
        ("Content-Length with NUL", b"Content-Length: 5\x00\r\n", b""),
        ("Content-Length of 30 digits", b"Content-Length: " + b"9" * 30 + b"\r\n", b""),
        ("bare LF line endings", b"Content-Length: 0\nTransfer-Encoding: chunked\n", b"0\r\n\r\n"),
    ]
    for name, headers, prefix in framings:
        cases.append((f"smuggling: {name}",
                      lambda p, h=headers, b=prefix: exchange(p, _head(h + b"\r\n", close=False) + b + smuggled),
                      lambda out, closed: out.count(b"HTTP/1.") == 1 and closed and b" 200 " not in out[:13]))
    slow = [
        ("slowloris: head dripped a byte a second", lambda p: exchange(p, [b"POST /v1/traces HTTP/1.1\r\n"]
                                                                       + [b"X: y\r\n"] * 40, wait=15, gap=0.5),
         closed_silently),
        ("silent connection", lambda p: exchange(p, b"", wait=15), closed_silently),
        ("body that never completes", lambda p: exchange(p, _head(b"Content-Length: 1000\r\n\r\n") + b"x", wait=70),
         lambda out, closed: out.startswith(b"HTTP/1.1 408") and closed),
    ]
    resets = [(f"reset mid-body #{i}", lambda p, i=i: exchange(p, _head(b"Content-Length: 100000\r\n\r\n")
                                                                 + b"x" * (i * 997), reset=True),
               lambda out, closed: True) for i in range(20)]
    cases += resets
    cases += new_serve_cases(body, good, status, refused_and_closed)
    if not quick:
        cases += slow
    else:
        keep = ("valid export", "gzip bomb (200 MB of zeros)", "wrong token", "JSON: deep nesting",
                "deeply nested protobuf", "binary garbage instead of HTTP", "smuggling: CL + TE",
                "smuggling: TE: xchunked", "smuggling: two different Content-Lengths", "reset mid-body #3",
                *QUICK_NEW)
        cases = [c for c in cases if c[0] in keep]
    return cases


QUICK_NEW = ("JSON: resourceSpans is an object", "JSON: a top-level list",
             "Expect: 100-continue with a body over the limit", "HTTP/2 preface on the OTLP/HTTP port",
             "protobuf: a length of 5 GB", "10^6 tiny spans in one export")


def new_serve_cases(body: Callable[..., bytes], good: bytes, status: Callable[..., Right],
                    refused_and_closed: Right) -> list[tuple[str, Send, Right]]:
    """Issue 25: shapes that must be refused, and new angles."""
    def js(doc: bytes) -> Send:
        return lambda p: exchange(p, body(doc, ctype=b"application/json"))

    def h2(out: bytes, closed: bool) -> bool:  # refused (400/505) or hung up; never 200, never 101
        return closed and (out == b"" or out.startswith((b"HTTP/1.1 400", b"HTTP/1.1 505")))

    def no_continue_413(out: bytes, closed: bool) -> bool:
        return out.startswith(b"HTTP/1.1 413") and b"100 Continue" not in out

    span = (b'{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"%s",'
            b'"startTimeUnixNano":"1","endTimeUnixNano":"2"}')
    return [
        ("JSON: resourceSpans is an object", js(b'{"resourceSpans": {"scopeSpans": []}}'), status(400)),
        ("JSON: a top-level list", js(b'[{"resourceSpans": []}]'), status(400)),
        ("JSON: resourceSpans is a string", js(b'{"resourceSpans": "x"}'), status(400)),
        ("JSON: spans is an object", js(b'{"resourceSpans": [{"scopeSpans": [{"spans": {"a": 1}}]}]}'), status(400)),
        ("JSON: a lone surrogate in a span name", js(b'{"resourceSpans":[{"scopeSpans":[{"spans":['
                                                     + span % b"a\\ud800b" + b"]}]}]}"), status(400, 200)),
        ("JSON: a byte-order mark first", js(b"\xef\xbb\xbf" + b'{"resourceSpans": []}'), status(400, 200)),
        ("Expect: 100-continue with a body over the limit",
         lambda p: exchange(p, _head(b"Expect: 100-continue\r\nContent-Length: 1073741824\r\n\r\n"), wait=8),
         no_continue_413),
        ("HTTP/2 preface on the OTLP/HTTP port",
         lambda p: exchange(p, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"), h2),
        ("h2c upgrade on an export", lambda p: exchange(p, body(good, b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQ\r\n"
                                                                      b"Connection: Upgrade, HTTP2-Settings\r\n")),
         status(200, 400)),
        ("gRPC content type on the HTTP port", lambda p: exchange(p, body(good, ctype=b"application/grpc")),
         status(415)),
        ("protobuf: a length of 5 GB", lambda p: exchange(p, body(b"\x0a" + _varint(5 << 30) + b"\x12" * 100)),
         status(400)),
        ("protobuf: a 10-byte varint length",
         lambda p: exchange(p, body(b"\x0a" + b"\xff" * 9 + b"\x01")),
         status(400)),
        ("10^6 tiny spans in one export", lambda p: exchange(p, body(tiny_spans(1_000_000)), wait=30),
         status(200, 400, 413)),
        ("token with non-ASCII bytes", lambda p: exchange(p, body(good).replace(b"Bearer " + TOKEN.encode(),
                                                                               b"Bearer \xff\xfe\xc3\xa9")),
         status(401, 400)),
    ]


def flood_connections(port: int, n: int) -> tuple[bytes, bool]:
    """Open ``n`` connections that each start a request and stop; then try a real export."""
    held = []
    try:
        for _ in range(n):
            with suppress(OSError):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(_head(b"Content-Length: 100\r\n\r\n"))
                held.append(s)
        time.sleep(0.3)
        out, closed = exchange(port, _head(b"Content-Length: 0\r\n\r\n"), wait=10)
    finally:
        for s in held:
            s.close()
    return out, closed


def part_serve(tally: Tally, quick: bool, work: Path) -> Path:
    """The raw-socket inputs, then the retention round (:func:`sigkill.part_retention`) on the
    same server; returns its spool."""
    from .sigkill import part_retention

    server = Server(work / "serve-spool")
    server.start()
    cases = serve_cases(quick)
    if not quick:
        cases.append(("600 connections at once (cap 256)", lambda p: flood_connections(p, 600),
                      lambda out, closed: out.startswith((b"HTTP/1.1 503", b"HTTP/1.1 400", b"HTTP/1.1 415"))))
    print(f"latmap serve: {len(cases)} inputs", flush=True)
    try:
        for name, send, right in cases:
            lines_before = len(server.log)
            try:
                out, closed = send(server.port)
                ok = right(out, closed)
                detail = out[:120].decode("latin-1").replace("\r\n", " | ")
            except OSError as err:
                ok, detail = False, f"client error: {err}"
            time.sleep(0.05)
            new_log = "".join(server.log[lines_before:])
            if not server.alive_and_answering():
                tally.add(Case("serve", name, "crash", f"the server died or stopped answering; log: {new_log[-500:]}"))
                server.stop(signal.SIGKILL)
                server.start()
                continue
            verdict = "clean" if ok else "unclean"
            if "Traceback" in new_log or "ERROR" in new_log:
                verdict, detail = "internal", new_log[-300:]
            elif out.startswith(b"HTTP/1.1 500"):
                verdict = "internal"
            tally.add(Case("serve", name, verdict, f"{'closed, ' if closed else ''}{detail}", leaks(new_log)))
        spool = part_retention(tally, quick, server)
    finally:
        server.stop()
    log = "".join(server.log)
    if "Traceback" in log:
        tally.add(Case("serve", "the whole run's log", "internal", "a traceback in the server's log"))
    if leaks(log):
        tally.add(Case("serve", "the whole run's log", "clean", "secret in the log", leaks(log)))
    return spool



# --- settings latmap serve must refuse at start ------------------------------------------------


LIVE_SPEC = ("version: 1\nname: live\nsources:\n  spans: {kind: traces, path: {dir}/spool}\nstages:\n"
             "  - {name: a, owner: t, traces: {source: spans, service: a}}\n"
             "  - {name: b, owner: t, traces: {source: spans, service: b}}\n")


def start_probes(quick: bool) -> list[Probe]:
    """``latmap serve`` with settings that must stop it at once with exit 2 (still serving at
    the limit is a failure to refuse, not a hang)."""
    def serve(*extra: str) -> list[str]:
        return ["serve", "--spool", "{dir}/spool", "--http", f"127.0.0.1:{free_port()}", "--grpc", "off", *extra]

    def fifo(d: Path) -> None:
        os.mkfifo(d / "token.fifo")

    refuse = exits(2)
    probes = [
        Probe("serve --token-file an empty file", serve("--token-file", "{dir}/token"), files={"token": ""},
              check=refuse),
        Probe("serve --token-file whitespace only", serve("--token-file", "{dir}/token"),
              files={"token": " \n\t \r\n"}, check=refuse),
        Probe("serve --token-file /dev/zero", serve("--token-file", "/dev/zero"), check=refuse),
        Probe("serve --token-file a FIFO nobody writes", serve("--token-file", "{dir}/token.fifo"), setup=fifo,
              check=refuse),
        Probe("serve --token-env set to spaces", serve("--token-env", "ADV_BLANK"), env={"ADV_BLANK": "   "},
              check=refuse),
        Probe("serve --max-disk 0", serve("--token-env", "ADV_SERVE_TOKEN", "--max-disk", "0"), check=refuse),
        Probe("serve --live-settle longer than --live-ttl",
              serve("--token-env", "ADV_SERVE_TOKEN", "--stream", "{spec}", "--live-ttl", "1m", "--live-settle", "10m"),
              LIVE_SPEC, check=refuse),
        Probe("serve --retention -1d", serve("--token-env", "ADV_SERVE_TOKEN", "--retention", "-1d"), check=refuse),
        Probe("serve --spool under /proc", ["serve", "--spool", "/proc/self/latmap-spool", "--http",
                                            f"127.0.0.1:{free_port()}", "--grpc", "off", "--token-env",
                                            "ADV_SERVE_TOKEN"], check=exits(1, 2)),
        Probe("serve --http on port 99999", ["serve", "--spool", "{dir}/spool", "--http", "127.0.0.1:99999",
                                             "--grpc", "off", "--token-env", "ADV_SERVE_TOKEN"], check=refuse),
    ]
    for p in probes:
        p.part, p.must_exit, p.timeout = "serve", True, 15.0 if quick else 25.0
    if quick:
        keep = {"serve --token-file an empty file", "serve --max-disk 0",
                "serve --live-settle longer than --live-ttl"}
        probes = [p for p in probes if p.name in keep]
    return probes
