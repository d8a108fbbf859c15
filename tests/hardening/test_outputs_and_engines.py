"""Where latmap writes and what it connects to: a place it cannot write, a scheduler address
Dask cannot use, and a traces file that would expand without bound are one-line errors
naming the place (issue 25)."""

from __future__ import annotations

import gzip
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from collectors.otlp.codec import PayloadError
from collectors.otlp.files import read_trace_files
from mapper.app.dask_client import connect
from mapper.app.history import record_run
from mapper.core.errors import OutputError, SpecError, UsageError
from mapper.core.files import write_atomic
from mapper.core.spec import loads_spec
from mapper.core.spec.engine import EngineSpec, parse_engine_text


@pytest.mark.parametrize("path", ["/proc/latmap-out/report.json", "/proc/self/latmap/map.svg"])
def test_an_output_under_proc_is_an_output_error_naming_it(path: str) -> None:
    with pytest.raises(OutputError, match=rf"^{path}: cannot write: "):
        write_atomic(path, "{}")


def test_an_output_where_a_file_stands_in_for_the_folder(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file, not a folder")
    with pytest.raises(OutputError, match="cannot write"):
        write_atomic(tmp_path / "out" / "report.json", "{}")


def test_a_history_folder_that_cannot_be_made_is_an_output_error() -> None:
    with pytest.raises(OutputError, match="cannot write the history"):
        record_run(SimpleNamespace(spec=SimpleNamespace(name="s")), lambda lm: None,  # type: ignore[arg-type]
                   "/proc/latmap-history")


@pytest.mark.parametrize(("text", "said"), [
    ("dask://host", "no port"), ("dask://", "no port"), ("tcp://:8786", "no host"),
    ("tcp://h:99999", "not a port number"), ("dask://h:x", "not a port number"), ("tls://h/p:1", "not a host name"),
])
def test_a_scheduler_address_dask_cannot_use_is_refused_before_dask_sees_it(text: str, said: str) -> None:
    with pytest.raises(UsageError, match=said):
        parse_engine_text(text)


def test_a_scheduler_address_in_the_spec_is_checked_with_its_line() -> None:
    spec = ("name: s\nsources: {p: {kind: prometheus, url: 'http://127.0.0.1:9'}}\n"
            "stages: [{name: a, process: {source: p, histogram: x}}]\n"
            "engine: {kind: dask,\n  scheduler: 'tcp://nohost'}\n")
    with pytest.raises(SpecError, match=r"s.yaml:5: engine.scheduler: 'tcp://nohost': the address has no port"):
        loads_spec(spec, "s.yaml")


@pytest.mark.parametrize(("text", "scheduler"), [("dask://h:8786", "tcp://h:8786"), ("tls://[::1]:8786", None)])
def test_good_scheduler_addresses_pass(text: str, scheduler: str | None) -> None:
    assert parse_engine_text(text).scheduler == (scheduler or text)


def test_a_gzip_bomb_in_a_traces_file_is_refused_quickly(tmp_path: Path) -> None:
    bomb = tmp_path / "spans.json.gz"
    with gzip.open(bomb, "wb") as f:
        f.write(b'{"resourceSpans": [], "x": "' + b"0" * (256 << 20) + b'"}\n')
    assert bomb.stat().st_size < 400_000
    started = time.monotonic()
    with pytest.raises(PayloadError, match="refused as a gzip bomb"):
        list(read_trace_files(bomb))
    assert time.monotonic() - started < 30  # bounded work, not a wall-time target


def test_a_dask_address_that_answers_http_times_out_with_one_line() -> None:
    """Dask's timeout covers the connect, not the handshake: an HTTP server on the address
    used to keep the map waiting for ever."""
    pytest.importorskip("distributed")
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        with pytest.raises(UsageError, match="did not answer as a Dask scheduler"):
            connect(EngineSpec(kind="dask", scheduler=f"tcp://127.0.0.1:{server.server_port}"), timeout=2.0)
        assert time.monotonic() - started < 60
    finally:
        server.shutdown()
