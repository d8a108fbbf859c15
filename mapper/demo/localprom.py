"""A real Prometheus on loopback, over a temp dir, for the demo and the tests.

Backfilled from OpenMetrics text with ``promtool tsdb create-blocks-from openmetrics`` so
that days of data load in seconds; started on a free port; stopped on exit.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import requests

from mapper.core.errors import LatmapError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def binaries_available() -> bool:
    return bool(shutil.which("prometheus") and shutil.which("promtool"))


def backfill(lines: Iterable[str], data_dir: Path, timeout: float = 300) -> None:
    """Write OpenMetrics ``lines`` into TSDB blocks under ``data_dir`` with promtool."""
    data_dir.mkdir(parents=True, exist_ok=True)
    src = data_dir.parent / f"{data_dir.name}.om"
    with src.open("w", encoding="utf-8") as f:
        f.writelines(lines)
    try:
        proc = subprocess.run(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(src), str(data_dir)],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    finally:
        src.unlink(missing_ok=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise LatmapError(f"promtool backfill failed: {' | '.join(tail)}")


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 60.0,
               path: str = "/-/ready") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LatmapError(f"{url}: server exited with code {proc.returncode} before it was ready")
        try:
            if requests.get(url + path, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise LatmapError(f"{url}: not ready after {timeout:g}s")


@contextlib.contextmanager
def running_prometheus(data_dir: Path | None = None, config: str | None = None,
                       extra_args: Iterable[str] = ()) -> Iterator[str]:
    """Run ``prometheus`` on a free loopback port; yield its base URL; stop it afterwards.

    ``config`` is the YAML text of prometheus.yml (default: no scrape jobs).
    """
    with tempfile.TemporaryDirectory(prefix="latmap-prom-") as tmp:
        root = Path(tmp)
        data = data_dir or root / "data"
        cfg = root / "prometheus.yml"
        cfg.write_text(config or "global:\n  scrape_interval: 15s\n", encoding="utf-8")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = (root / "prometheus.log").open("wb")
        proc = subprocess.Popen(
            ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={data}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=3650d",
             "--web.enable-admin-api", *extra_args],
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(url, proc)
            yield url
        finally:
            stop_process(proc)
            log.close()
