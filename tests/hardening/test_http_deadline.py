"""A server that keeps sending something other than an answer cannot hold latmap: every
request to a back end (Prometheus, Datadog, Grafana) has a deadline for the whole request,
not only for each read (issue 25: found by the adversarial pass, `100 Continue` for ever)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from collectors.http import send, whole_request_deadline
from mapper.cli import main


@contextmanager
def continue_for_ever() -> Iterator[str]:
    """A loopback server answering every request with ``100 Continue``, every 0.2 s, for ever."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    def drip(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                while not stop.is_set():
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    time.sleep(0.2)
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        server.close()


def test_a_request_answered_100_continue_for_ever_ends_at_its_deadline() -> None:
    with continue_for_ever() as url:
        started = time.monotonic()
        said = send(requests.Session(), "GET", url + "/api/v1/query", 1.0)
        took = time.monotonic() - started
    assert isinstance(said, str) and "no complete answer within" in said
    assert took < whole_request_deadline(1.0) + 10  # bounded, not a wall-time target


SPEC = """\
name: s
sources: {p: {kind: prometheus, url: "http://127.0.0.1:9"}}
stages: [{name: a, process: {source: p, histogram: x_seconds}}]
"""


def test_grafana_answering_100_continue_for_ever_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "stream.yaml"
    spec.write_text(SPEC)
    monkeypatch.setenv("LATMAP_TEST_GRAFANA", "t0ken-value-1234")
    with continue_for_ever() as url:
        code = main(["dashboards", "-c", str(spec), "--push", url, "--token-env", "LATMAP_TEST_GRAFANA",
                     "--timeout", "1s"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "no answer within 1s" in lines[0], lines
