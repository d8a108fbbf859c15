"""What a user who installed the wheel gets, checked from outside the checkout.

Run by .ci/run with the Python of a fresh virtual environment that has only the built wheel
(and its dependencies) installed, from a temporary directory: ``latmap --version`` answers
the packaged version, every module of the three packages imports, ``latmap demo`` writes its
report, and ``latmap serve`` starts, answers on its OTLP/HTTP port and stops cleanly on
SIGTERM. Exits non-zero with one line per failure.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib import metadata
from pathlib import Path

PACKAGES = ("mapper", "collectors", "dashboards")


def fail(message: str) -> None:
    print(f"wheel-smoke: {message}", file=sys.stderr)
    sys.exit(1)


def latmap() -> str:
    return str(Path(sys.executable).with_name("latmap"))


def check_outside_checkout() -> None:
    for name in PACKAGES:
        where = Path(importlib.import_module(name).__file__ or "").resolve()
        if "site-packages" not in where.parts:
            fail(f"{name} is imported from {where}, not from the installed wheel")


def check_version() -> None:
    version = metadata.version("latency-mapper")
    out = subprocess.run([latmap(), "--version"], capture_output=True, text=True, check=False)
    if out.returncode != 0 or version not in out.stdout:
        fail(f"latmap --version: exit {out.returncode}, {out.stdout.strip()!r} (package version {version})")
    print(f"wheel-smoke: {out.stdout.strip()}")


def check_imports() -> int:
    count = 0
    for name in PACKAGES:
        package = importlib.import_module(name)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            if info.name.endswith(".__main__"):
                continue  # runs the CLI
            importlib.import_module(info.name)
            count += 1
    print(f"wheel-smoke: {count} modules import")
    return count


def check_demo(tmp: Path) -> None:
    out = tmp / "demo"
    run = subprocess.run([latmap(), "demo", "--out", str(out)], capture_output=True, text=True, check=False,
                         timeout=600)
    if run.returncode != 0:
        fail(f"latmap demo: exit {run.returncode}: {run.stderr.strip()[-500:]}")
    report = json.loads((out / "report.json").read_text())
    missing = [f for f in ("report.json", "report.md", "report.html", "map.svg", "stream.yaml")
               if not (out / f).is_file()]
    if missing or "end_to_end" not in report:
        fail(f"latmap demo wrote no full report: missing {missing}")
    print(f"wheel-smoke: latmap demo wrote {out} (end-to-end count {report['end_to_end'].get('count')})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_serve(tmp: Path) -> None:
    http, grpc = _free_port(), _free_port()
    proc = subprocess.Popen([latmap(), "serve", "--spool", str(tmp / "spool"), "--http", f"127.0.0.1:{http}",
                             "--grpc", f"127.0.0.1:{grpc}"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5) as answer:
                    body = answer.read().decode()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    fail(f"latmap serve did not answer on port {http}: {proc.stderr.read() if proc.stderr else ''}")
                time.sleep(0.2)
        if not re.search(r"^latmap_", body, re.MULTILINE):
            fail("latmap serve's /metrics has no latmap_ series")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        if code != 0:
            fail(f"latmap serve exited {code} on SIGTERM")
        print(f"wheel-smoke: latmap serve answered on 127.0.0.1:{http} and stopped on SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="latmap-wheel-smoke-") as name:
        tmp = Path(name)
        os.chdir(tmp)  # nothing of the checkout on sys.path or in the working directory
        check_outside_checkout()
        check_version()
        check_imports()
        check_demo(tmp)
        check_serve(tmp)


if __name__ == "__main__":
    main()
