"""An adversarial pass against latmap: hostile input at the CLI and spec, and at ``latmap serve``.

Three parts, each a real ``latmap`` process (this checkout's code):

* CLI and spec: broken and hostile specs (alias bombs, deep nesting, garbage bytes, control
  characters in names, credentials in URLs, absurd durations and times, a 1,000-stage chain
  ...), hostile flags, and a loopback "Prometheus" that misbehaves in every way a server can
  (echoes the request headers back in its error, answers 50 MB or a gzip bomb, hangs, drips,
  resets, answers HTML, the wrong JSON shapes, terminal escapes, a redirect to a URL with
  credentials). Clean means exit 0/1/2 with a message, no traceback, no "internal error", no
  raw control character on the terminal, within the time limit.
* ``latmap serve`` with a token: malformed, oversized and gzip-bomb bodies, every ambiguous
  framing (request smuggling), slowloris heads and bodies, resets mid-body, wrong content types
  and encodings, bad tokens, hostile JSON and protobuf, too many connections. Clean means an
  answer of the right class (or the connection closed where that is the answer), the server
  still alive and answering, and not one traceback in its log.
* SIGKILL during ingest: clients post spans and count what was acknowledged (200); the server
  is killed with SIGKILL at a random moment, restarted on the same spool, killed again; then
  the spool is read and every acknowledged span must be there.

Every output (stdout, stderr, files written, the server's log) is searched for every secret
configured (the export token, the Prometheus bearer token and password, and their base64).

Prints: inputs tried, handled cleanly, internal errors, crashes, secret leaks, acknowledged
spans lost; exit 1 when anything but "clean" was found. ``--quick`` runs a subset (what
``tests/benchmarks/test_adversarial.py`` runs).

Usage::

    python benchmarks/adversarial.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import gzip
import http.client
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

TOKEN = "adv-T0ken-serve-9f8e7d6c"
PROM_TOKEN = "adv-Sekr3t-prom-1a2b3c4d"
PROM_USER = "adv-user"
PROM_PASSWORD = "adv-Pa55word-77aa88bb"
SECRETS = (TOKEN, PROM_TOKEN, PROM_PASSWORD)
ENV = {"ADV_PROM_TOKEN": PROM_TOKEN, "ADV_PROM_PASSWORD": PROM_PASSWORD, "ADV_SERVE_TOKEN": TOKEN}
CLI_TIMEOUT = 90.0


def forbidden() -> list[str]:
    basic = base64.b64encode(f"{PROM_USER}:{PROM_PASSWORD}".encode()).decode()
    return [*SECRETS, basic, *(base64.b64encode(s.encode()).decode() for s in SECRETS)]


def leaks(text: str) -> list[str]:
    return [s for s in forbidden() if s in text]


@dataclass
class Case:
    part: str
    name: str
    verdict: str  # clean | internal | crash | unclean
    detail: str = ""
    leaked: list[str] = field(default_factory=list)


class Tally:
    def __init__(self) -> None:
        self.cases: list[Case] = []
        self.acked = 0
        self.lost = 0
        self.lock = threading.Lock()

    def add(self, case: Case) -> None:
        with self.lock:
            self.cases.append(case)
        if case.verdict != "clean" or case.leaked:
            print(f"  [{case.verdict}{' LEAK' if case.leaked else ''}] {case.part}: {case.name}: {case.detail[:300]}",
                  flush=True)

    def summary(self) -> dict[str, Any]:
        n = len(self.cases)
        clean = sum(1 for c in self.cases if c.verdict == "clean" and not c.leaked)
        return {"inputs": n, "clean": clean,
                "internal_errors": sum(1 for c in self.cases if c.verdict == "internal"),
                "crashes": sum(1 for c in self.cases if c.verdict == "crash"),
                "unclean_output": sum(1 for c in self.cases if c.verdict == "unclean"),
                "secret_leaks": sum(1 for c in self.cases if c.leaked),
                "acked_spans": self.acked, "acked_spans_lost": self.lost,
                "by_part": {p: sum(1 for c in self.cases if c.part == p) for p in sorted({c.part for c in self.cases})}}


# --- a misbehaving Prometheus --------------------------------------------------------------


BUCKETS = (("0.01", "10"), ("0.1", "90"), ("1", "100"), ("+Inf", "100"))


def _vector() -> bytes:
    result = [{"metric": {"le": le}, "value": [1767436620, n]} for le, n in BUCKETS]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


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
        self.rfile.read(length)
        self.do_GET()

    def do_GET(self) -> None:
        mode = self.path.lstrip("/").split("/", 1)[0]
        echoed = "".join(f"{k}: {v}\n" for k, v in self.headers.items())
        if mode == "ok":
            self._reply(200, _vector() if "/api/v1/query" in self.path else b'{"status":"success","data":{}}')
        elif mode == "echo":
            self._reply(500, f"upstream error; your request was:\n{echoed}".encode(), "text/plain")
        elif mode == "echo401":
            self._reply(401, json.dumps({"status": "error", "errorType": "auth", "error": echoed}).encode())
        elif mode == "huge":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(50 << 20))
            self.end_headers()
            with suppress(OSError):
                for _ in range(50):
                    self.wfile.write(b" " * (1 << 20))
        elif mode == "gzipbomb":
            body = gzip.compress(b"[" * (200 << 20), compresslevel=9)
            self._reply(200, body, headers={"Content-Encoding": "gzip"})
        elif mode == "hang":
            time.sleep(20)
        elif mode == "drip":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            with suppress(OSError):
                for _ in range(60):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.5)
        elif mode == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        elif mode == "badjson":
            self._reply(200, b'{"status": "success", "data": {"resultType": "vector", "result": [')
        elif mode == "html":
            self._reply(200, b"<html><body><h1>Login</h1><script>alert(1)</script></body></html>", "text/html")
        elif mode == "datalist":
            self._reply(200, b'{"status": "success", "data": [1, 2, 3]}')
        elif mode == "resultstring":
            self._reply(200, b'{"status": "success", "data": {"resultType": "vector", "result": "x"}}')
        elif mode == "valuenan":
            self._reply(200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {"le": le}, "value": [1, v]} for le, v in (("0.1", "NaN"), ("+Inf", "-Inf"))]}}).encode())
        elif mode == "lebad":
            self._reply(200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {"le": "abc"}, "value": [1, "5"]}, {"metric": {}, "value": [1, "7"]}]}}).encode())
        elif mode == "deep":
            self._reply(200, b'{"status": "success", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
        elif mode == "esc":
            self._reply(400, json.dumps({"status": "error", "errorType": "bad_data",
                                         "error": "\x1b]0;pwned\x07\x1b[2J\nFAKE: all good\r" + "x" * 5000}).encode())
        elif mode == "redirect":
            port = self.server.server_address[1]
            self._reply(302, b"", headers={"Location": f"http://{PROM_USER}:{PROM_PASSWORD}@127.0.0.1:{port}/ok/"})
        elif mode == "warnings":
            body = json.loads(_vector())
            body["warnings"] = ["\x1b[31mred\x1b[0m" * 1000] * 1000
            self._reply(200, json.dumps(body).encode())
        else:
            self._reply(404, b"no such mode")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # latmap hanging up on a misbehaving answer is the point, not news


@contextmanager
def hostile_prometheus() -> Iterator[str]:
    server = _QuietServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- part 1: the CLI and the spec ------------------------------------------------------------


def spec_text(url: str, *, stages: int = 2, extra: str = "", name: str = "a", auth: str = "bearer") -> str:
    src = (f'{{kind: prometheus, url: "{url}", bearer_token_env: ADV_PROM_TOKEN, retries: 0, timeout: 3s}}'
           if auth == "bearer" else
           f'{{kind: prometheus, url: "{url}", basic_auth: {{username: {PROM_USER}, '
           f'password_env: ADV_PROM_PASSWORD}}, retries: 0, timeout: 3s}}')
    body = "".join(f"  - {{name: {name if i == 0 else f's{i}'}, owner: team, process: {{source: prom, "
                   f"histogram: h{i}_seconds}}}}\n" for i in range(stages))
    return f"version: 1\nname: adv\nwindow: 1h\nsources:\n  prom: {src}\nstages:\n{body}{extra}"


def cli_cases(url: str, quick: bool) -> list[tuple[str, list[str], str | bytes | None]]:
    """(name, args after ``latmap``, spec text or bytes; ``{spec}`` in args is its path)."""
    ok = f"{url}/ok"
    base = spec_text(ok)
    cases: list[tuple[str, list[str], str | bytes | None]] = [
        ("valid spec, well-behaved server", ["map", "-c", "{spec}"], base),
        ("empty file", ["map", "-c", "{spec}"], ""),
        ("random bytes", ["map", "-c", "{spec}"], bytes(random.Random(1).randrange(256) for _ in range(4096))),
        ("not UTF-8", ["map", "-c", "{spec}"], base.encode().replace(b"adv", b"\xff\xfe\xfd")),
        ("top level is a list", ["map", "-c", "{spec}"], "- 1\n- 2\n"),
        ("YAML alias bomb", ["map", "-c", "{spec}"],
         base + "percentiles: &a9 [&a8 [&a7 [&a [1,2,3,4,5,6,7,8,9]]]]\n" + "".join(
             f"x{i}: &b{i} [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" for i in range(1))
         + "bomb: &c1 [*b0,*b0,*b0,*b0,*b0,*b0,*b0,*b0,*b0]\nbomb2: &c2 [*c1,*c1,*c1,*c1,*c1,*c1,*c1,*c1,*c1]\n"
         + "bomb3: [*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2]\n"),
        ("deep nesting", ["map", "-c", "{spec}"], base + "deep: " + "[" * 50_000 + "]" * 50_000 + "\n"),
        ("5 MB of comments", ["map", "-c", "{spec}"], base + ("# " + "x" * 1000 + "\n") * 5000),
        ("window: [24h]", ["map", "-c", "{spec}"], base.replace("window: 1h", "window: [24h]")),
        ("window: 999999d", ["map", "-c", "{spec}"], base.replace("window: 1h", "window: 999999d")),
        ("window: -1h", ["map", "-c", "{spec}"], base.replace("window: 1h", "window: -1h")),
        ("percentiles: [x]", ["map", "-c", "{spec}"], base + "percentiles: [x]\n"),
        ("percentiles: [100, 0, -1, .nan]", ["map", "-c", "{spec}"], base + "percentiles: [100, 0, -1, .nan]\n"),
        ("stage name ''", ["map", "-c", "{spec}"], spec_text(ok, name="''")),
        ("stage name with OSC escape", ["map", "-c", "{spec}"], spec_text(ok, name='"x\\e]0;pwn\\a"')),
        ("stage name with newline", ["map", "-c", "{spec}"], spec_text(ok, name='"a\\nb"')),
        ("stage name of 10k characters", ["map", "-c", "{spec}"], spec_text(ok, name="n" * 10_000)),
        ("stage name HTML", ["map", "-c", "{spec}"], spec_text(ok, name='"<img src=x onerror=alert(1)>"')),
        ("owner: {a: 1}", ["map", "-c", "{spec}"], base.replace("owner: team", "owner: {a: 1}", 1)),
        ("duplicate stage names", ["map", "-c", "{spec}"], spec_text(ok, name="s1")),
        ("unknown key", ["map", "-c", "{spec}"], base + "colour: blue\n"),
        ("credentials in the URL", ["map", "-c", "{spec}"],
         base.replace(ok, f"http://{PROM_USER}:{PROM_PASSWORD}@127.0.0.1:9/ok")),
        ("ftp URL", ["map", "-c", "{spec}"], base.replace(ok, "ftp://127.0.0.1/x")),
        ("URL with an escape", ["map", "-c", "{spec}"], base.replace(ok, ok + "\\e[2J")),
        ("event with a bad cron", ["map", "-c", "{spec}"],
         base + "events:\n  - {name: e, cron: '99 * * * *', duration: 1h}\n"),
        ("event with a bad tz", ["map", "-c", "{spec}"],
         base + "events:\n  - {name: e, cron: '0 14 * * *', duration: 1h, tz: 'Mars/Olympus'}\n"),
        ("event name with an escape", ["map", "-c", "{spec}"],
         base + "events:\n  - {name: \"\\e[2Jx\", cron: '0 14 * * *', duration: 1h}\n"),
        ("future: unknown hop", ["map", "-c", "{spec}"], base + "future:\n  - {hop: nope, scale: 0.5}\n"),
        ("future: scale -1", ["map", "-c", "{spec}"], base + "future:\n  - {hop: a, scale: -1}\n"),
        ("objective p99: fast", ["map", "-c", "{spec}"], base + "objectives:\n  end_to_end: {p99: fast}\n"),
        ("PromQL injection in a selector", ["map", "-c", "{spec}"],
         base.replace("histogram: h0_seconds", "histogram: h0_seconds, selector: {service: 'a\"}) or vector(1) #'}")),
        ("PromQL injection in a metric name", ["map", "-c", "{spec}"],
         base.replace("histogram: h0_seconds", "histogram: 'h0{x=\"1\"}) or vector(1)'")),
        ("unknown source kind", ["map", "-c", "{spec}"], base.replace("kind: prometheus", "kind: influx")),
        ("timeout: -1s", ["map", "-c", "{spec}"], base.replace("timeout: 3s", "timeout: -1s")),
        ("retries: 1e9", ["map", "-c", "{spec}"], base.replace("retries: 0", "retries: 1e9")),
        ("token variable not set", ["map", "-c", "{spec}"], base.replace("ADV_PROM_TOKEN", "ADV_NOT_SET")),
        ("tls ca_file missing", ["map", "-c", "{spec}"],
         base.replace("retries: 0", "retries: 0, tls: {ca_file: /nonexistent/ca.pem}")),
        ("a chain of 1,000 stages", ["map", "-c", "{spec}", "--format", "json"], spec_text(ok, stages=1000)),
        ("--window 999999d", ["map", "-c", "{spec}", "--window", "999999d"], base),
        ("--window nan", ["map", "-c", "{spec}", "--window", "nan"], base),
        ("--until 1e20", ["map", "-c", "{spec}", "--until", "1e20"], base),
        ("--until nan", ["map", "-c", "{spec}", "--until", "nan"], base),
        ("--timeout 0s", ["map", "-c", "{spec}", "--timeout", "0s"], base),
        ("--format xml", ["map", "-c", "{spec}", "--format", "xml"], base),
        ("--prometheus with credentials", ["map", "-c", "{spec}", "--prometheus",
                                           f"http://{PROM_USER}:{PROM_PASSWORD}@127.0.0.1:9"], base),
        ("--prometheus with an escape", ["map", "-c", "{spec}", "--prometheus", "http://h:1/\x1b[2J"], base),
        ("-c a missing file", ["map", "-c", "/nonexistent/stream.yaml"], None),
        ("-c a directory", ["map", "-c", "/tmp"], None),
        ("-c /dev/zero", ["map", "-c", "/dev/zero"], None),
        ("whatif with a bad change", ["whatif", "-c", "{spec}", "--scale", "nope=0.5"], base),
        ("discover --prometheus with credentials", ["discover", "--prometheus",
                                                    f"http://{PROM_USER}:{PROM_PASSWORD}@127.0.0.1:9"], None),
    ]
    modes = ["echo", "echo401", "huge", "gzipbomb", "hang", "drip", "reset", "badjson", "html", "datalist",
             "resultstring", "valuenan", "lebad", "deep", "esc", "redirect", "warnings"]
    for mode in modes:
        spec = spec_text(f"{url}/{mode}")
        cases.append((f"server {mode}: map (bearer)", ["map", "-c", "{spec}", "--timeout", "3s"], spec))
        if not quick:
            cases.append((f"server {mode}: map (basic auth)", ["map", "-c", "{spec}", "--timeout", "3s"],
                          spec_text(f"{url}/{mode}", auth="basic")))
            cases.append((f"server {mode}: discover", ["discover", "--prometheus", f"{url}/{mode}", "--timeout",
                                                        "3s"], None))
    cases.append(("server echo: report --out (files searched)", ["report", "-c", "{spec}", "--out", "{out}",
                                                                 "--timeout", "3s"], spec_text(f"{url}/echo")))
    if quick:
        keep = {"valid spec, well-behaved server", "YAML alias bomb", "window: [24h]", "stage name with OSC escape",
                "credentials in the URL", "--until nan", "-c /dev/zero",
                "server echo: map (bearer)", "server huge: map (bearer)", "server esc: map (bearer)",
                "server redirect: map (bearer)", "server echo: report --out (files searched)"}
        cases = [c for c in cases if c[0] in keep]
    return cases


def run_cli_case(name: str, args: list[str], spec: str | bytes | None, work: Path) -> Case:
    d = Path(tempfile.mkdtemp(dir=work))
    path = d / "stream.yaml"
    if isinstance(spec, bytes):
        path.write_bytes(spec)
    elif spec is not None:
        path.write_text(spec, encoding="utf-8")
    out = d / "out"
    argv = [a.replace("{spec}", str(path)).replace("{out}", str(out)) for a in args]
    env = dict(os.environ, **ENV, PYTHONPATH=str(ROOT), NO_COLOR="1")
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "mapper", *argv], capture_output=True, env=env,
                              timeout=CLI_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return Case("cli", name, "crash", f"still running after {CLI_TIMEOUT:g} s")
    took = time.monotonic() - started
    stdout = proc.stdout.decode("utf-8", "replace")
    stderr = proc.stderr.decode("utf-8", "replace")
    texts = {"stdout": stdout, "stderr": stderr}
    for f in out.rglob("*") if out.exists() else []:
        if f.is_file():
            texts[str(f.relative_to(d))] = f.read_text("utf-8", "replace")
    leaked = sorted({f"{where}: {s[:6]}..." for where, text in texts.items() for s in leaks(text)})
    tail = stderr.strip().splitlines()[-1:] or [""]
    if proc.returncode < 0:
        return Case("cli", name, "crash", f"killed by signal {-proc.returncode}", leaked)
    if "Traceback" in stderr or "internal error" in stderr:
        return Case("cli", name, "internal", tail[0], leaked)
    if proc.returncode not in (0, 1, 2):
        return Case("cli", name, "internal", f"exit {proc.returncode}: {tail[0]}", leaked)
    if proc.returncode != 0 and not stderr.strip():
        return Case("cli", name, "unclean", f"exit {proc.returncode} without a message", leaked)
    if any(c in stdout + stderr for c in ("\x1b", "\x07", "\r")):
        return Case("cli", name, "unclean", "a raw control character reached the terminal", leaked)
    return Case("cli", name, "clean", f"exit {proc.returncode} in {took:.1f} s: {tail[0][:200]}", leaked)


def part_cli(tally: Tally, quick: bool, work: Path) -> None:
    with hostile_prometheus() as url:
        cases = cli_cases(url, quick)
        print(f"CLI and spec: {len(cases)} inputs", flush=True)
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            for case in pool.map(lambda c: run_cli_case(c[0], c[1], c[2], work), cases):
                tally.add(case)


# --- part 2: latmap serve ------------------------------------------------------------------


def otlp_request(n: int, trace: int, first_span: int = 1) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    attr = rs.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", "adv"
    spans = rs.scope_spans.add().spans
    t0 = time.time_ns()
    for i in range(n):
        spans.add(trace_id=trace.to_bytes(16, "big"), span_id=(first_span + i).to_bytes(8, "big"), name="op",
                  kind=2, start_time_unix_nano=t0 + i, end_time_unix_nano=t0 + i + 1000)
    return req.SerializeToString()


class Server:
    """``latmap serve`` in a subprocess, its log collected."""

    def __init__(self, spool: Path, extra: list[str] | None = None) -> None:
        self.spool = spool
        self.extra = extra or []
        self.log: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = dict(os.environ, **ENV, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mapper", "serve", "--spool", str(self.spool), "--http", f"127.0.0.1:{self.port}",
             "--grpc", "off", "--token-env", "ADV_SERVE_TOKEN", *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        proc = self.proc
        threading.Thread(target=lambda: self.log.extend(proc.stderr or []), daemon=True).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.alive_and_answering():
                return
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"latmap serve did not start: {''.join(self.log)[-2000:]}")

    def alive_and_answering(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.request("GET", "/metrics")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def exchange(port: int, data: bytes | list[bytes], wait: float = 8.0, gap: float = 0.0,
             reset: bool = False) -> tuple[bytes, bool]:
    """Send ``data`` (pieces ``gap`` s apart); what came back and whether the server closed."""
    pieces = data if isinstance(data, list) else [data]
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        try:
            for p in pieces:
                sock.sendall(p)
                if gap:
                    time.sleep(gap)
        except OSError:
            pass
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return b"", True
        out = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return out, False
            except OSError:
                return out, True
            if not chunk:
                return out, True
            out += chunk
        return out, False


def _head(extra: bytes = b"", token: str | None = TOKEN, ctype: bytes = b"application/x-protobuf",
          close: bool = True) -> bytes:
    """A request head; ``close`` asks the server to close after answering (so the client need
    not wait), left out where closing is what is being tested."""
    auth = b"Authorization: Bearer " + token.encode() + b"\r\n" if token is not None else b""
    return (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Type: " + ctype + b"\r\n"
            + (b"Connection: close\r\n" if close else b"") + extra)


def serve_cases(quick: bool) -> list[tuple[str, Callable[[int], tuple[bytes, bool]], Callable[[bytes, bool], bool]]]:
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
    cases: list[tuple[str, Callable[[int], tuple[bytes, bool]], Callable[[bytes, bool], bool]]] = [
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
        ("body over the limit (Content-Length 30 MB)", lambda p: exchange(p, _head(b"Content-Length: 31457280\r\n\r\n")
                                                                        + b"x" * 65536), status(413)),
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
    if not quick:
        cases += slow
    else:
        keep = ("valid export", "gzip bomb (200 MB of zeros)", "wrong token", "JSON: deep nesting",
                "deeply nested protobuf", "binary garbage instead of HTTP", "smuggling: CL + TE",
                "smuggling: TE: xchunked", "smuggling: two different Content-Lengths", "reset mid-body #3")
        cases = [c for c in cases if c[0] in keep]
    return cases


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


def part_serve(tally: Tally, quick: bool, work: Path) -> None:
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
    finally:
        server.stop()
    log = "".join(server.log)
    if "Traceback" in log:
        tally.add(Case("serve", "the whole run's log", "internal", "a traceback in the server's log"))
    if leaks(log):
        tally.add(Case("serve", "the whole run's log", "clean", "secret in the log", leaks(log)))


# --- part 3: SIGKILL during ingest -----------------------------------------------------------


def part_sigkill(tally: Tally, quick: bool, work: Path) -> None:
    from collectors.spool.store import scan_spool

    spool = work / "kill-spool"
    rounds = 1 if quick else 4
    acked: dict[int, int] = {}  # trace id -> spans acknowledged
    lock = threading.Lock()
    rng = random.Random(15)
    trace = 1
    for r in range(rounds):
        server = Server(spool)
        server.start()
        stop = threading.Event()

        def client(first_trace: int, step: int, port: int = server.port, stop: threading.Event = stop) -> None:
            t = first_trace
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            while not stop.is_set():
                n = rng.randrange(50, 1500)
                try:
                    conn.request("POST", "/v1/traces", body=otlp_request(n, trace=t),
                                 headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {TOKEN}"})
                    resp = conn.getresponse()
                    resp.read()
                except (OSError, http.client.HTTPException):
                    return
                if resp.status == 200:
                    with lock:
                        acked[t] = n
                t += step

        threads = [threading.Thread(target=client, args=(trace + i, 4)) for i in range(4)]
        for th in threads:
            th.start()
        time.sleep(rng.uniform(1.5, 4.0))
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)  # mid-ingest
        server.proc.wait()
        stop.set()
        for th in threads:
            th.join()
        trace += 10_000_000
        print(f"  SIGKILL round {r + 1}: {sum(acked.values()):,} spans acknowledged so far", flush=True)
        tally.add(Case("sigkill", f"SIGKILL during ingest, round {r + 1}", "clean",
                       "", leaks("".join(server.log))))
    read = scan_spool(spool)
    import numpy as np

    have: dict[int, int] = {}
    ids, counts = np.unique(read.batch.trace_lo, return_counts=True)
    have = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    tally.acked = sum(acked.values())
    tally.lost = sum(max(0, n - have.get(t, 0)) for t, n in acked.items())
    print(f"  spool after {rounds} SIGKILLs: {len(read.batch):,} spans; acknowledged {tally.acked:,}, "
          f"lost {tally.lost:,}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="a subset (what the test runs)")
    ap.add_argument("--part", choices=("cli", "serve", "sigkill", "all"), default="all")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args(argv)
    tally = Tally()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="latmap-adversarial-") as tmp:
        work = Path(tmp)
        if args.part in ("cli", "all"):
            part_cli(tally, args.quick, work)
        if args.part in ("serve", "all"):
            part_serve(tally, args.quick, work)
        if args.part in ("sigkill", "all"):
            part_sigkill(tally, args.quick, work)
    s = tally.summary()
    print(f"adversarial pass ({time.monotonic() - started:.0f} s): inputs tried {s['inputs']} {s['by_part']}, "
          f"handled cleanly {s['clean']}, internal errors {s['internal_errors']}, crashes {s['crashes']}, "
          f"unclean answers {s['unclean_output']}, secret leaks {s['secret_leaks']}, "
          f"acknowledged spans lost {s['acked_spans_lost']} of {s['acked_spans']:,}")
    if args.json:
        Path(args.json).write_text(json.dumps({**s, "cases": [asdict(c) for c in tally.cases]}, indent=2) + "\n")
    return 0 if s["clean"] == s["inputs"] and not s["acked_spans_lost"] else 1


if __name__ == "__main__":
    sys.exit(main())
