"""What a source can make latmap spend: answers beyond ``max_response`` are refused without
being read whole (declared or not), and a body that drips is cut at the timeout."""

from __future__ import annotations

import contextlib
import time
from http.server import BaseHTTPRequestHandler

import pytest

from collectors.http import HttpClient
from mapper.core.errors import SourceError
from mapper.core.spec import SourceSpec
from tests.servers import loopback_server, reply

BIG = b'{"status": "success", "data": [' + b'"x",' * 20_000 + b'"x"]}'


def _client(url: str, **kw: object) -> HttpClient:
    return HttpClient(SourceSpec("prom", "prometheus", url, "test", retries=0, **kw))  # type: ignore[arg-type]


def test_an_answer_beyond_max_response_is_refused_by_its_content_length() -> None:
    with loopback_server(lambda req: reply(req, 200, BIG)) as url, \
            pytest.raises(SourceError, match=rf"answer of {len(BIG)} bytes is larger than max_response \(4096 bytes\)"):
        _client(url, max_response=4096).json("GET", "/api/v1/labels")


def test_an_answer_beyond_max_response_without_a_length_is_cut_while_reading() -> None:
    def chunked(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Connection", "close")
        req.end_headers()
        req.wfile.write(BIG)

    with loopback_server(chunked) as url, \
            pytest.raises(SourceError, match=r"answer larger than max_response \(4096 bytes\)"):
        _client(url, max_response=4096).json("GET", "/api/v1/labels")


def test_an_answer_within_max_response_is_read() -> None:
    with loopback_server(lambda req: reply(req, 200, BIG)) as url:
        status, body = _client(url).json("GET", "/api/v1/labels")
    assert status == 200 and len(body["data"]) == 20_001


def test_a_dripping_body_is_cut_at_the_timeout() -> None:
    def drip(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Length", "100000")
        req.end_headers()
        with contextlib.suppress(OSError):  # latmap hangs up at its deadline
            for _ in range(100):
                req.wfile.write(b" " * 100)
                req.wfile.flush()
                time.sleep(0.05)

    started = time.monotonic()
    with loopback_server(drip) as url, pytest.raises(SourceError, match=r"no answer within 0.5s"):
        _client(url, timeout=0.5).json("GET", "/api/v1/labels")
    assert time.monotonic() - started < 3
