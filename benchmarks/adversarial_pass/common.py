"""What every part of the adversarial pass shares: the secrets and the leak search, the
verdicts and their tally, one runner for a ``latmap`` command, and ``latmap serve`` in a
subprocess with a raw-socket client.

A verdict is one of ``clean``, ``internal`` (a traceback, "internal error", an exit code
other than 0/1/2, a 500), ``crash`` (killed by a signal, a server that died), ``hang`` (still
running at its time limit) and ``unclean`` (handled, but wrongly: a raw control character,
no message, a wrong answer class, an output that does not parse, a refusal that did not
happen). A secret found anywhere is counted apart, whatever the verdict.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

# Every secret starts with letters no output holds otherwise, so that a prefix of six
# characters (what a message cut mid-secret leaves) is already a finding.
TOKEN = "QxSrv7T0ken-9f8e7d6c"
PROM_TOKEN = "QxPrm3Sekr3t-1a2b3c4d"
PROM_USER = "adv-user"
PROM_PASSWORD = "QxPwd5Pa55word-77aa88bb"
GRAFANA_TOKEN = "QxGrf1T0ken-5e6f7a8b"
UNICODE_TOKEN = "QxUni9tök€n-ü-0a0b"
SECRETS = (TOKEN, PROM_TOKEN, PROM_PASSWORD, GRAFANA_TOKEN, UNICODE_TOKEN)
ENV = {"ADV_PROM_TOKEN": PROM_TOKEN, "ADV_PROM_PASSWORD": PROM_PASSWORD, "ADV_SERVE_TOKEN": TOKEN,
       "ADV_GRAFANA_TOKEN": GRAFANA_TOKEN, "ADV_UNICODE_TOKEN": UNICODE_TOKEN}
CLI_TIMEOUT = 60.0
MIN_PREFIX = 6


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def forbidden() -> list[tuple[str, int]]:
    """(secret form, the shortest prefix of it that is already a leak). The Basic form's
    prefix must reach into the password: the user name alone is no secret."""
    forms = [(s, MIN_PREFIX) for s in SECRETS] + [(_b64(s), MIN_PREFIX + 2) for s in SECRETS]
    basic = _b64(f"{PROM_USER}:{PROM_PASSWORD}")
    forms.append((basic, (len(PROM_USER) + 1 + MIN_PREFIX) * 4 // 3 + 1))
    return forms


def leaks(text: str) -> list[str]:
    """The secrets (shown by their first characters) of which a prefix is in ``text``, as
    written or with its whitespace taken out (a token spelled with spaces between its
    characters)."""
    if not text:
        return []
    squeezed = re.sub(r"\s+", "", text)
    return [f"{s[:4]}..." for s, n in forbidden() if s[:n] in text or s[:n] in squeezed]


@dataclass
class Case:
    part: str
    name: str
    verdict: str  # clean | internal | crash | hang | unclean
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
            print(f"  [{case.verdict}{' LEAK ' + ','.join(case.leaked) if case.leaked else ''}] {case.part}: "
                  f"{case.name}: {case.detail[:300]}", flush=True)

    def count_acks(self, acked: int, lost: int) -> None:
        with self.lock:
            self.acked += acked
            self.lost += lost

    def summary(self) -> dict[str, Any]:
        def n(verdict: str) -> int:
            return sum(1 for c in self.cases if c.verdict == verdict)

        return {"inputs": len(self.cases),
                "clean": sum(1 for c in self.cases if c.verdict == "clean" and not c.leaked),
                "internal_errors": n("internal"), "hangs": n("hang"), "crashes": n("crash"),
                "unclean_output": n("unclean"), "secret_leaks": sum(1 for c in self.cases if c.leaked),
                "acked_spans": self.acked, "acked_spans_lost": self.lost,
                "by_part": {p: sum(1 for c in self.cases if c.part == p) for p in sorted({c.part for c in self.cases})}}


# --- one latmap command -----------------------------------------------------------------------


@dataclass
class Run:
    """What a finished command left: its exit code, its output, and its case folder."""

    code: int
    stdout: str
    stderr: str
    folder: Path
    took: float

    @property
    def last_line(self) -> str:
        return (self.stderr.strip().splitlines() or [""])[-1]


#: A further check on a run that was otherwise clean: None when right, else what is wrong.
Check = Callable[[Run], str | None]


@dataclass
class Probe:
    """One hostile input to one ``latmap`` command. In ``args``, ``{spec}`` is the spec's
    path, ``{out}`` an output folder and ``{dir}`` the case folder (which ``files`` and
    ``setup`` fill first)."""

    name: str
    args: list[str]
    spec: str | bytes | None = None
    files: dict[str, str | bytes] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    check: Check | None = None
    timeout: float = CLI_TIMEOUT
    env: dict[str, str] = field(default_factory=dict)
    part: str = "cli"
    #: a command that must refuse and exit: still running at the limit is "unclean", not a hang
    must_exit: bool = False


def exits(*codes: int, says: str = "") -> Check:
    """The run ended with one of ``codes`` (and ``says`` in its stderr, case-insensitive)."""

    def check(run: Run) -> str | None:
        if run.code not in codes:
            return f"exit {run.code}, wanted {'/'.join(map(str, codes))}: {run.last_line[:200]}"
        if says and says.lower() not in run.stderr.lower():
            return f"stderr does not say {says!r}: {run.last_line[:200]}"
        return None

    return check


def both(*checks: Check) -> Check:
    def check(run: Run) -> str | None:
        return next((bad for c in checks if (bad := c(run))), None)

    return check


def latmap_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return dict(os.environ, **ENV, PYTHONPATH=str(ROOT), NO_COLOR="1", **(extra or {}))


def run_probe(probe: Probe, work: Path) -> Case:
    d = Path(tempfile.mkdtemp(dir=work))
    path = d / "stream.yaml"
    if isinstance(probe.spec, bytes):
        path.write_bytes(probe.spec)
    elif probe.spec is not None:
        path.write_text(probe.spec.replace("{dir}", str(d)), encoding="utf-8", errors="surrogatepass")
    for rel, content in probe.files.items():
        f = d / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            f.write_bytes(content)
        else:
            f.write_text(content.replace("{dir}", str(d)), encoding="utf-8")
    if probe.setup is not None:
        probe.setup(d)
    inputs = {p for p in d.rglob("*")}
    out = d / "out"
    argv = [a.replace("{spec}", str(path)).replace("{out}", str(out)).replace("{dir}", str(d)) for a in probe.args]
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "mapper", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=latmap_env(probe.env), start_new_session=True)
    try:
        raw_out, raw_err = proc.communicate(timeout=probe.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raw_out, raw_err = proc.communicate()
        text = (raw_out + raw_err).decode("utf-8", "replace")
        if probe.must_exit:
            return Case(probe.part, probe.name, "unclean", f"did not refuse: still running after {probe.timeout:g} s",
                        leaks(text))
        return Case(probe.part, probe.name, "hang", f"still running after {probe.timeout:g} s", leaks(text))
    run = Run(proc.returncode, raw_out.decode("utf-8", "replace"), raw_err.decode("utf-8", "replace"), d,
              time.monotonic() - started)
    texts = {"stdout": run.stdout, "stderr": run.stderr}
    for f in d.rglob("*"):
        if f not in inputs and f.is_file() and not f.is_symlink():
            with open(f, "rb") as fh:
                texts[str(f.relative_to(d))] = fh.read(20 << 20).decode("utf-8", "replace")
    leaked = sorted({f"{where}: {s}" for where, text in texts.items() for s in leaks(text)})
    return Case(probe.part, probe.name, *judge(run, probe.check), leaked)


def judge(run: Run, check: Check | None) -> tuple[str, str]:
    tail = run.last_line
    if run.code < 0:
        return "crash", f"killed by signal {-run.code}"
    if "Traceback" in run.stderr or "internal error" in run.stderr.lower():
        return "internal", tail[:300]
    if run.code not in (0, 1, 2):
        return "internal", f"exit {run.code}: {tail[:300]}"
    if run.code != 0 and not run.stderr.strip():
        return "unclean", f"exit {run.code} without a message"
    if any(c in run.stdout + run.stderr for c in ("\x1b", "\x07", "\r", "\x00")):
        return "unclean", "a raw control character reached the terminal"
    if check is not None and (bad := check(run)):
        return "unclean", bad
    return "clean", f"exit {run.code} in {run.took:.1f} s: {tail[:200]}"


# --- latmap serve and a raw-socket client -----------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def otlp_request(n: int, trace: int, first_span: int = 1, start_ns: int | None = None,
                 service: str = "adv") -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    attr = rs.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", service
    spans = rs.scope_spans.add().spans
    t0 = time.time_ns() if start_ns is None else start_ns
    for i in range(n):
        spans.add(trace_id=trace.to_bytes(16, "big"), span_id=(first_span + i).to_bytes(8, "big"), name="op",
                  kind=2, start_time_unix_nano=t0 + i, end_time_unix_nano=t0 + i + 1000)
    return req.SerializeToString()


def otlp_json(spans: list[dict[str, Any]], service: str = "svc") -> dict[str, Any]:
    """An OTLP/JSON document of ``spans`` (each a dict of OTLP/JSON span fields)."""
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                               "scopeSpans": [{"spans": spans}]}]}


def json_span(trace: int, span: int, start_ns: int, dur_ns: int = 1_000_000, parent: int = 0,
              name: str = "op") -> dict[str, Any]:
    out = {"traceId": f"{trace:032x}", "spanId": f"{span:016x}", "name": name, "kind": 2,
           "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(start_ns + dur_ns)}
    if parent:
        out["parentSpanId"] = f"{parent:016x}"
    return out


def chain_traces(n: int, t0: int, names: tuple[str, str] = ("a", "b")) -> list[dict[str, Any]]:
    """``n`` traces a -> b (two resource blocks) as OTLP/JSON documents, one per service."""
    docs = []
    for k, svc in enumerate(names):
        spans = [json_span(i + 1, 2 * i + 1 + k, t0 + i * 1_000_000 + k * 2_000_000, parent=(2 * i + 1) if k else 0)
                 for i in range(n)]
        docs.append(otlp_json(spans, svc))
    return docs


class Server:
    """``latmap serve`` in a subprocess, its log collected."""

    def __init__(self, spool: Path, extra: list[str] | None = None) -> None:
        self.spool = spool
        self.extra = extra or []
        self.log: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mapper", "serve", "--spool", str(self.spool), "--http", f"127.0.0.1:{self.port}",
             "--grpc", "off", "--token-env", "ADV_SERVE_TOKEN", *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=latmap_env())
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


def head(extra: bytes = b"", token: str | None = TOKEN, ctype: bytes = b"application/x-protobuf",
         close: bool = True) -> bytes:
    """A request head; ``close`` asks the server to close after answering (so the client need
    not wait), left out where closing is what is being tested."""
    auth = b"Authorization: Bearer " + token.encode() + b"\r\n" if token is not None else b""
    return (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Type: " + ctype + b"\r\n"
            + (b"Connection: close\r\n" if close else b"") + extra)


def post_export(port: int, body: bytes, ctype: str = "application/x-protobuf") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": ctype,
                                                               "Authorization": f"Bearer {TOKEN}"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def dumps_json(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False)
