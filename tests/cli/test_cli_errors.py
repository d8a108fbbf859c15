"""Bad input: each gets one clear line naming its place, and exit code 2; never a traceback.

HTTP failures a real Prometheus cannot be made to show on demand (a 503, a stall, a
truncated body) come from loopback servers; the error body is Prometheus's own recorded
answer (tests/fixtures/prometheus/api_openapi_golden, Apache-2.0, prometheus/prometheus).
"""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from mapper.cli import main
from mapper.demo.localprom import free_port
from mapper.demo.run import demo_spec
from tests.servers import FIXTURES, loopback_server, reply


def _spec(tmp_path: Path, url: str, extra: str = "") -> str:
    text = demo_spec("prometheus", url, None).replace(
        f'prom: {{kind: prometheus, url: "{url}"}}',
        f'prom: {{kind: prometheus, url: "{url}", timeout: 500ms, retries: 1{extra}}}')
    path = tmp_path / "stream.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if line]


def test_unreachable_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, lines = _run(["map", "-c", _spec(tmp_path, url)], capsys)
    assert code == 2
    assert lines == [f"latmap: error: market-data process: {url}/api/v1/query: cannot connect "
                     "(connection refused) (after 2 attempts)"]


def test_slow_endpoint_times_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def stall(req: BaseHTTPRequestHandler) -> None:
        time.sleep(1.5)
        reply(req, 200, b"{}")

    with loopback_server(stall) as url:
        code, lines = _run(["map", "-c", _spec(tmp_path, url)], capsys)
    assert code == 2
    assert lines == [f"latmap: error: market-data process: {url}/api/v1/query: no answer within 0.5s "
                     "(after 2 attempts)"]


def test_http_5xx_with_prometheus_error_body(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = (FIXTURES / "prometheus/api_openapi_golden/api_v1_query.error_internal_tsdb_not_ready.json").read_bytes()
    with loopback_server(lambda req: reply(req, 503, body)) as url:
        code, lines = _run(["map", "-c", _spec(tmp_path, url)], capsys)
    assert code == 2
    assert lines == [f"latmap: error: market-data process: {url}/api/v1/query: HTTP 503: TSDB not ready "
                     "(after 2 attempts)"]


def test_http_4xx_bad_query_shows_prometheus_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = b'{"status":"error","errorType":"bad_data","error":"1:12: parse error: unexpected identifier"}'
    with loopback_server(lambda req: reply(req, 400, body)) as url:
        code, lines = _run(["map", "-c", _spec(tmp_path, url)], capsys)
    assert code == 2
    assert lines == [f"latmap: error: market-data process: {url}/api/v1/query: Prometheus bad_data: "
                     "1:12: parse error: unexpected identifier"]


def test_http_4xx_without_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with loopback_server(lambda req: reply(req, 401, b"Unauthorized", "text/plain")) as url:
        code, lines = _run(["map", "-c", _spec(tmp_path, url)], capsys)
    assert code == 2
    assert lines[0].startswith(f"latmap: error: market-data process: {url}/api/v1/query: HTTP 401, "
                               "answer is not JSON")


def test_truncated_answer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = (FIXTURES / "prometheus/api_openapi_golden/api_v1_query.vector.200.json").read_bytes()
    with loopback_server(lambda req: reply(req, 200, body[: len(body) // 2])) as url:
        code, lines = _run(["map", "-c", _spec(tmp_path, url)], capsys)
    assert code == 2
    assert "answer is not JSON" in lines[0] and "truncated" in lines[0]


def test_json_that_is_not_a_prometheus_answer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with loopback_server(lambda req: reply(req, 200, b'{"hello": "world"}')) as url:
        code, lines = _run(["map", "-c", _spec(tmp_path, url)], capsys)
    assert code == 2
    assert lines == [f"latmap: error: market-data process: {url}/api/v1/query: not a Prometheus API "
                     "answer (no 'status' field)"]


def test_missing_token_env_var(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LATMAP_TEST_TOKEN", raising=False)
    spec = _spec(tmp_path, "http://127.0.0.1:9", ", bearer_token_env: LATMAP_TEST_TOKEN")
    code, lines = _run(["map", "-c", spec], capsys)
    assert code == 2
    assert lines[0].endswith("environment variable LATMAP_TEST_TOKEN is not set")


def test_token_never_appears_in_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def record(req: BaseHTTPRequestHandler) -> None:
        seen.append(req.headers.get("Authorization", ""))
        reply(req, 403, b'{"status":"error","errorType":"forbidden","error":"no"}')

    monkeypatch.setenv("LATMAP_TEST_TOKEN", "s3cr3t-token")
    with loopback_server(record) as url:
        code, lines = _run(["map", "-c", _spec(tmp_path, url, ", bearer_token_env: LATMAP_TEST_TOKEN")], capsys)
    assert code == 2 and seen[0] == "Bearer s3cr3t-token"
    assert "s3cr3t" not in "\n".join(lines)


@pytest.mark.parametrize(("args", "message"), [
    (["--window", "0s"], "latmap: error: --window: must be > 0"),
    (["--window", "soon"], "latmap: error: --window: not a duration: 'soon' (use e.g. 250ms, 1.5s, 5m, 24h)"),
    (["--until", "yesterday"], "latmap: error: --until: not a time: 'yesterday' (use RFC 3339 like "
                               "2026-11-25T06:00:00Z, or unix seconds)"),
    (["--prometheus", "prom:9090"], "latmap: error: --prometheus: not an http(s) URL: 'prom:9090'"),
])
def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, lines = _run(["map", "-c", _spec(tmp_path, "http://127.0.0.1:9"), *args], capsys)
    assert (code, lines) == (2, [message])


def test_bad_spec_exits_2_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "stream.yaml"
    path.write_text("name: x\nsources: {prom: {kind: prometheus, url: http://x}}\nstages:\n  - nme: a\n")
    code, lines = _run(["map", "-c", str(path)], capsys)
    assert code == 2
    assert lines == [
        f"latmap: error: {path}:4: stages[0].name: is required",
        f"latmap: error: {path}:4: stages[0].nme: unknown key (allowed: name, owner, description, wait, "
        "process, traces, upstream, objectives, weight, workers, errors, retries, inventory)",
    ]


def test_unknown_option_and_missing_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["map", "--bogus"]) == 2
    assert "No such option '--bogus'" in capsys.readouterr().err
    assert main(["map", "-c", "/nonexistent/stream.yaml"]) == 2
    assert capsys.readouterr().err == "latmap: error: /nonexistent/stream.yaml: no such file\n"


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = ("map", "discover", "demo", "serve", "deps", "examples", "whatif", "dashboards", "rules", "report")
    for cmd in ([], *([c] for c in commands)):
        assert main([*cmd, "--help"]) == 0
        assert "Usage: latmap" in capsys.readouterr().out


def test_yaml_syntax_error_exits_2_with_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "stream.yaml"
    path.write_text("name: x\nstages: [\n  - a: b\n")
    code, lines = _run(["map", "-c", str(path)], capsys)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(f"latmap: error: {path}:3:")
    assert "YAML syntax error" in lines[0]


def test_prometheus_warnings_reach_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = (b'{"status":"success","warnings":["PromQL warning: partial response from store A"],'
            b'"data":{"resultType":"vector","result":[]}}')
    with loopback_server(lambda req: reply(req, 200, body)) as url:
        assert main(["map", "-c", _spec(tmp_path, url), "--format", "json"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    warned = [c for c in doc["checks"] if c["code"] == "source-warning"]
    assert warned and "partial response from store A" in warned[0]["message"]


def test_report_into_an_unusable_history_dir_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    body = b'{"status":"success","data":{"resultType":"vector","result":[]}}'
    blocked = tmp_path / "history"
    blocked.write_text("a file, not a directory")
    with loopback_server(lambda req: reply(req, 200, body)) as url:
        code, lines = _run(["report", "-c", _spec(tmp_path, url), "--history", str(blocked), "--no-progress"], capsys)
    assert code == 2
    assert lines[-1].endswith("is a file.") and "--history" in lines[-1]
    assert blocked.read_text() == "a file, not a directory"
    inside = blocked / "sub"  # a path through a file: refused when the run is written
    with loopback_server(lambda req: reply(req, 200, body)) as url:
        code, lines = _run(["report", "-c", _spec(tmp_path, url), "--history", str(inside), "--no-progress"], capsys)
    assert code == 2
    assert len(lines) == 1 and "cannot write the history" in lines[0] and "earlier runs are untouched" in lines[0]
