"""A loopback server that misbehaves on demand: as Prometheus, as a scrape target, as Grafana,
and as whatever else answers HTTP where latmap expects something else (a Dask scheduler).

The first path segment names the misbehaviour (``/echo/api/v1/query``); the rest is what
latmap asked for. What a Grafana mode was sent is kept in ``writes`` (a foreign dashboard
must never be overwritten).
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .common import PROM_PASSWORD, PROM_USER

BUCKETS = (("0.01", "10"), ("0.1", "90"), ("1", "100"), ("+Inf", "100"))
WRITES: list[str] = []  # "<mode> <method> <path>" of every write a Grafana mode received


def _answer(result: list[dict[str, Any]], kind: str = "vector") -> bytes:
    return json.dumps({"status": "success", "data": {"resultType": kind, "result": result}}).encode()


def _vector(buckets: tuple[tuple[str, str], ...] = BUCKETS) -> bytes:
    return _answer([{"metric": {"le": le}, "value": [1767436620, n]} for le, n in buckets])


#: Prometheus answers to ``/api/v1/query`` that are well-formed JSON with hostile numbers.
NUMBERS: dict[str, bytes] = {
    "leneginf": _vector((("-Inf", "3"), ("0.1", "50"), ("+Inf", "100"))),
    "negincr": _vector((("0.01", "-40"), ("0.1", "-5"), ("1", "10"), ("+Inf", "10"))),
    "overflow": _vector((("0.01", "1.7e308"), ("0.1", "1.79e308"), ("+Inf", "1e309"))),
    "hugeincr": _vector((("0.01", "9223372036854775807"), ("+Inf", "18446744073709551616000"))),
    "summarynoq": _answer([{"metric": {"quantile": q}, "value": [1, "0.5"]} for q in ("abc", "NaN", "-1", "2", "")]
                          + [{"metric": {}, "value": [1, "0.7"]}]),
    "nativeneg": _answer([{"metric": {}, "histogram": [1767436620, {
        "count": "100", "sum": "-30",
        "buckets": [[0, "-1", "-0.5", "60"], [0, "-0.5", "-0.25", "40"]]}]}]),
    "nativeinf": _answer([{"metric": {}, "histogram": [1, {
        "count": "1e400", "sum": "NaN", "buckets": [[3, "-Inf", "+Inf", "10"], [0, "0.1", "0.01", "5"]]}]}]),
}

#: A scrape target's text: a ``_bucket`` line without ``le``, and one with ``le="-Inf"``.
SCRAPE = ("# TYPE h0_seconds histogram\n"
          'h0_seconds_bucket{job="x"} 5\n'
          'h0_seconds_bucket{le="-Inf"} 1\n'
          'h0_seconds_bucket{le="0.1"} 3\n'
          'h0_seconds_bucket{le="+Inf"} 5\n'
          "h0_seconds_sum 0.3\nh0_seconds_count 5\n"
          "# TYPE h1_seconds histogram\n"
          'h1_seconds_bucket{le="0.1"} 3\nh1_seconds_bucket{le="+Inf"} 5\nh1_seconds_sum 0.3\nh1_seconds_count 5\n')

#: ``/api/v1/metadata`` and friends for ``discover``: names and units that try to write YAML.
EVIL = "\nsources: evil\n"
DISCOVER_NAMES = [f"svc{EVIL}wait_seconds", "x\ufffey_seconds", "${__user.login}_seconds", "b{{ x_seconds",
                  "q$1_seconds"]


def _discover(path: str) -> bytes:
    if "/api/v1/metadata" in path:
        data = {n: [{"type": "histogram", "help": "$__file{/etc/passwd}", "unit": f"sec{EVIL}name: evil"}]
                for n in DISCOVER_NAMES}
        return json.dumps({"status": "success", "data": data}).encode()
    if "/api/v1/label/" in path:
        return json.dumps({"status": "success", "data": [f"{n}_bucket" for n in DISCOVER_NAMES]}).encode()
    if "/api/v1/series" in path:
        return json.dumps({"status": "success", "data": [
            {"__name__": "x", "le": "1", "service": f"api{EVIL}", "job": "${__user.login}\u2028stages: []"}]}).encode()
    return _vector()


class _Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as a real Prometheus (Go) does: no 40 ms delayed-ACK stall per answer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, ctype: str = "application/json",
               headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        with suppress(OSError):
            self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(min(length, 50 << 20))
        self.do_GET()

    def do_GET(self) -> None:
        mode, _, rest = self.path.lstrip("/").partition("/")
        rest = "/" + rest
        if mode.startswith("g-"):
            return self._grafana(mode, rest)
        if mode.startswith("echopad"):  # the auth header after N bytes: a cut at 120 or 200 lands in it
            pad = int(mode[len("echopad"):])
            return self._reply(500, ("e" * pad + " " + (self.headers.get("Authorization") or "")).encode(),
                               "text/plain")
        if mode.startswith("echobasic"):  # a proxy that decodes Basic and says who failed
            pad = int(mode[len("echobasic"):])
            auth = (self.headers.get("Authorization") or "").partition(" ")[2]
            with suppress(ValueError):
                auth = base64.b64decode(auth).decode("utf-8", "replace")
            return self._reply(401, json.dumps({"status": "error", "errorType": "auth",
                                                "error": "e" * pad + f" login failed for {auth}"}).encode())
        if mode in NUMBERS:
            return self._reply(200, NUMBERS[mode] if "/api/v1/query" in rest else b'{"status":"success","data":{}}')
        handler = getattr(self, f"_mode_{mode}", None)
        if handler is None:
            return self._reply(404, b"no such mode")
        return handler(rest)

    # --- Prometheus, well and badly behaved -------------------------------------------------

    def _mode_ok(self, rest: str) -> None:
        if "/api/v1/series" in rest:  # the bucket bounds of whatever was asked for
            series = [{"__name__": "x_bucket", "le": le} for le, _ in BUCKETS]
            return self._reply(200, json.dumps({"status": "success", "data": series}).encode())
        self._reply(200, _vector() if "/api/v1/query" in rest else b'{"status":"success","data":{}}')

    def _mode_okmany(self, rest: str) -> None:  # ``ok`` with 100,000 observations
        many = (("0.01", "10000"), ("0.1", "90000"), ("1", "100000"), ("+Inf", "100000"))
        self._reply(200, _vector(many) if "/api/v1/query" in rest else b'{"status":"success","data":{}}')

    def _mode_okslow(self, rest: str) -> None:  # ``okmany`` ten times slower
        slow = (("0.1", "10000"), ("1", "90000"), ("10", "100000"), ("+Inf", "100000"))
        self._reply(200, _vector(slow) if "/api/v1/query" in rest else b'{"status":"success","data":{}}')

    def _echoed(self) -> str:
        return "".join(f"{k}: {v}\n" for k, v in self.headers.items())

    def _mode_echo(self, rest: str) -> None:
        self._reply(500, f"upstream error; your request was:\n{self._echoed()}".encode(), "text/plain")

    def _mode_echo401(self, rest: str) -> None:
        self._reply(401, json.dumps({"status": "error", "errorType": "auth", "error": self._echoed()}).encode())

    def _mode_echospaced(self, rest: str) -> None:
        spaced = " ".join(self.headers.get("Authorization") or "")
        self._reply(500, f"bad credentials: {spaced}".encode(), "text/plain")

    def _mode_huge(self, rest: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(50 << 20))
        self.end_headers()
        with suppress(OSError):
            for _ in range(50):
                self.wfile.write(b" " * (1 << 20))

    def _mode_gzipbomb(self, rest: str) -> None:
        self._reply(200, gzip.compress(b"[" * (200 << 20), compresslevel=9), headers={"Content-Encoding": "gzip"})

    def _mode_hang(self, rest: str) -> None:
        time.sleep(20)

    def _mode_drip(self, rest: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        with suppress(OSError):
            for _ in range(60):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.5)

    def _mode_reset(self, rest: str) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def _mode_badjson(self, rest: str) -> None:
        self._reply(200, b'{"status": "success", "data": {"resultType": "vector", "result": [')

    def _mode_html(self, rest: str) -> None:
        self._reply(200, b"<html><body><h1>Login</h1><script>alert(1)</script></body></html>", "text/html")

    def _mode_datalist(self, rest: str) -> None:
        self._reply(200, b'{"status": "success", "data": [1, 2, 3]}')

    def _mode_resultstring(self, rest: str) -> None:
        self._reply(200, b'{"status": "success", "data": {"resultType": "vector", "result": "x"}}')

    def _mode_valuenan(self, rest: str) -> None:
        pairs = (("0.1", "NaN"), ("+Inf", "-Inf"))
        self._reply(200, _answer([{"metric": {"le": le}, "value": [1, v]} for le, v in pairs]))

    def _mode_lebad(self, rest: str) -> None:
        self._reply(200, _answer([{"metric": {"le": "abc"}, "value": [1, "5"]}, {"metric": {}, "value": [1, "7"]}]))

    def _mode_deep(self, rest: str) -> None:
        self._reply(200, b'{"status": "success", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")

    def _mode_esc(self, rest: str) -> None:
        self._reply(400, json.dumps({"status": "error", "errorType": "bad_data",
                                     "error": "\x1b]0;pwned\x07\x1b[2J\nFAKE: all good\r" + "x" * 5000}).encode())

    def _mode_redirect(self, rest: str) -> None:
        port = self.server.server_address[1]
        self._reply(302, b"", headers={"Location": f"http://{PROM_USER}:{PROM_PASSWORD}@127.0.0.1:{port}/ok/"})

    def _mode_warnings(self, rest: str) -> None:
        body = json.loads(_vector())
        body["warnings"] = ["\x1b[31mred\x1b[0m" * 1000] * 1000
        self._reply(200, json.dumps(body).encode())

    # --- new angles ----------------------------------------------------------------------------

    def _mode_br(self, rest: str) -> None:  # an encoding latmap never asked for
        self._reply(200, b"\x1b\x03\x00\xf8\xa5\x80" + bytes(range(256)) * 4, headers={"Content-Encoding": "br"})

    def _mode_loop302(self, rest: str) -> None:  # a redirect to itself, forever
        self._reply(302, b"", headers={"Location": f"/loop302{rest}"})

    def _mode_cl1g(self, rest: str) -> None:  # promises 1 GB, sends 10 bytes, hangs up
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(1 << 30))
        self.end_headers()
        with suppress(OSError):
            self.wfile.write(b'{"status":')
            self.wfile.flush()
        self.close_connection = True

    def _mode_retryafter(self, rest: str) -> None:  # asks for a wait of three years
        self._reply(429, b'{"status":"error","error":"slow down"}', headers={"Retry-After": "99999999"})

    def _mode_info100(self, rest: str) -> None:  # informational answers only, one every 0.2 s
        with suppress(OSError):
            for _ in range(300):
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.wfile.flush()
                time.sleep(0.2)
        self.close_connection = True

    def _mode_scrape(self, rest: str) -> None:
        self._reply(200, SCRAPE.encode(), "text/plain; version=0.0.4")

    def _mode_discover(self, rest: str) -> None:
        self._reply(200, _discover(rest))

    # --- Grafana ---------------------------------------------------------------------------------

    def _grafana(self, mode: str, rest: str) -> None:
        if self.command == "POST":
            WRITES.append(f"{mode} POST {rest}")
        if mode == "g-list":
            return self._reply(200, b"[]" if self.command == "GET" and "/api/folders" in rest else b'[{"x": 1}]')
        if rest.startswith("/api/dashboards/uid/"):
            if mode == "g-foreign":  # someone else's dashboard under our uid, its tags a string
                return self._reply(200, json.dumps({"dashboard": {"uid": rest.rsplit("/", 1)[1], "title": "Finance",
                                                                  "tags": "not-latmap-at-all"},
                                                    "meta": {"folderUid": ""}}).encode())
            return self._reply(404, b'{"message": "Dashboard not found"}')
        if rest.startswith("/api/folders"):
            if self.command == "GET":
                return self._reply(200, b'[{"title": "latmap"}, {"id": 3}, "x", null]')
            return self._reply(200, b'{"title": "latmap", "id": 7}')  # created, but no uid
        if rest.startswith("/api/dashboards/db"):
            return self._reply(200, b'{"status": "success"}' if mode != "g-nouid" else b'{"id": 1}')
        return self._reply(404, b'{"message": "not found"}')


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # latmap hanging up on a misbehaving answer is the point, not news


@contextmanager
def hostile_server() -> Iterator[str]:
    server = _QuietServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
