"""Real servers for the tests: Prometheus, VictoriaMetrics, and replaying loopback servers.

Under ``CI=true`` a missing binary fails the test run; elsewhere the test is skipped with
a reason (CI must run them for real).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from mapper.demo.localprom import free_port, stop_process, wait_ready
from tests import paths

FIXTURES = paths.FIXTURES


def require_binary(name: str) -> str:
    """The binary's path; fails under CI=true when missing, else skips (CI must run it)."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not on PATH (apt-get install it; CI=true requires it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)  # only outside CI: under CI=true it failed above


@contextlib.contextmanager
def running_victoriametrics() -> Iterator[str]:
    """victoria-metrics single-node on a free loopback port over a temp dir."""
    binary = require_binary("victoria-metrics")
    with tempfile.TemporaryDirectory(prefix="latmap-vm-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = (Path(tmp) / "vm.log").open("wb")
        proc = subprocess.Popen(
            [binary, f"-httpListenAddr=127.0.0.1:{port}", f"-storageDataPath={tmp}/data",
             "-retentionPeriod=100y", "-search.disableCache", "-search.latencyOffset=0s"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(url, proc, path="/health")
            yield url
        finally:
            stop_process(proc)
            log.close()


def vm_import(url: str, text: str) -> None:
    """Load Prometheus text (timestamps in ms) into VictoriaMetrics and make it searchable."""
    r = requests.post(f"{url}/api/v1/import/prometheus", data=text.encode(), timeout=120)
    r.raise_for_status()
    requests.get(f"{url}/internal/force_flush", timeout=60).raise_for_status()


Handler = Callable[[BaseHTTPRequestHandler], None]


@contextlib.contextmanager
def loopback_server(handle: Handler) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 whose every request is answered by ``handle``.

    For behaviour a real server cannot be made to show on demand (a 503, a truncated body,
    a stall); bodies come from recorded real responses where one exists.
    """

    class _H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            handle(self)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.body = self.rfile.read(length)  # for handlers that answer by the request body
            handle(self)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), _H)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def reply(req: BaseHTTPRequestHandler, status: int, body: bytes,
          ctype: str = "application/json", length: int | None = None) -> None:
    req.send_response(status)
    req.send_header("Content-Type", ctype)
    req.send_header("Content-Length", str(len(body) if length is None else length))
    req.end_headers()
    with contextlib.suppress(OSError):
        req.wfile.write(body)


def load_benchmark(name: str) -> Any:
    """Import ``benchmarks/<name>.py`` as a module (benchmarks/ put on sys.path for its
    own imports), so tests can call its ``main``."""
    import importlib.util
    import sys

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", folder / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module
