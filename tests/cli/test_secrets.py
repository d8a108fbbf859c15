"""No secret leaves latmap: not on stdout, stderr, in a log line, a report or a provisioning
file, even when every server echoes the request headers in its error body (proxies and debug
endpoints do). Each run is a real ``latmap`` process against loopback servers, and every
output is searched for every configured secret, the base64 that Basic auth sends, and the
base64 of each secret alone.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.paths import ROOT
from tests.servers import loopback_server, reply

TOKEN = "tok-Sekr3t-0a1b2c3d"
USER = "latmap-reader"
PASSWORD = "pw-Sekr3t-4e5f6a7b"
DD_API = "ddapi-Sekr3t-8c9d0e1f"
DD_APP = "ddapp-Sekr3t-2a3b4c5d"
GRAFANA = "graf-Sekr3t-6e7f8a9b"
SECRETS = (TOKEN, PASSWORD, DD_API, DD_APP, GRAFANA)
ENV = {"LATMAP_T_TOKEN": TOKEN, "LATMAP_T_PASSWORD": PASSWORD, "DD_API_KEY": DD_API, "DD_APP_KEY": DD_APP,
       "LATMAP_T_GRAFANA": GRAFANA}


def _forbidden() -> list[str]:
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return [*SECRETS, basic, *(base64.b64encode(s.encode()).decode() for s in SECRETS)]


def _headers(req: BaseHTTPRequestHandler) -> str:
    """The request headers, credentials first (what latmap quotes of an answer is capped)."""
    items = sorted(req.headers.items(), key=lambda kv: kv[0].lower() not in ("authorization", "dd-api-key",
                                                                                 "dd-application-key"))
    return "\n".join(f"{k}: {v}" for k, v in items)


def _echo(req: BaseHTTPRequestHandler) -> None:
    """Every answer an error that quotes the request's headers, in each back end's format."""
    path = req.path
    said = f"debug: you sent\n{_headers(req)}\n\x1b]0;owned\x07\x1b[2J" + "x" * 5000
    if path.startswith("/api/v1/query") and "Basic" in said:
        reply(req, 503, said.encode(), "text/plain")  # retried: the retry log line quotes it too
    elif path.startswith("/api/v1/"):
        reply(req, 400, json.dumps({"status": "error", "errorType": "bad_data", "error": said}).encode())
    elif path.startswith("/api/v2/") or path.startswith("/api/v1/query?"):
        reply(req, 400, json.dumps({"errors": [said]}).encode())
    else:  # Grafana
        reply(req, 401, json.dumps({"message": said}).encode())


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    with loopback_server(_echo) as url:
        yield url


def _latmap(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "mapper", "-vv", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def _spec(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "stream.yaml"
    path.write_text(f"""\
version: 1
name: secrets
window: 1h
sources:
  bearer: {{kind: prometheus, url: "{url}", bearer_token_env: LATMAP_T_TOKEN, retries: 0, timeout: 5s}}
  basic:
    kind: prometheus
    url: "{url}"
    basic_auth: {{username: {USER}, password_env: LATMAP_T_PASSWORD}}
    retries: 1
    timeout: 5s
  dd: {{kind: datadog, url: "{url}", retries: 0, timeout: 5s}}
stages:
  - name: datadog-hop
    process: {{source: dd, distribution: trade.alert.latency, filter: "service:alerting"}}
  - name: bearer-hop
    process: {{source: bearer, histogram: a_seconds}}
  - name: basic-hop
    process: {{source: basic, histogram: b_seconds}}
""")
    return path


def _outputs(tmp_path: Path, runs: list[subprocess.CompletedProcess[str]]) -> dict[str, str]:
    out = {f"run {i} {name}": text for i, r in enumerate(runs) for name, text in
           (("stdout", r.stdout), ("stderr", r.stderr))}
    for f in sorted(tmp_path.rglob("*")):
        if f.is_file():
            out[str(f.relative_to(tmp_path))] = f.read_text(encoding="utf-8", errors="replace")
    return out


def _leaks(outputs: dict[str, str]) -> list[str]:
    return [f"{where}: {secret}" for where, text in outputs.items() for secret in _forbidden() if secret in text]


def test_no_secret_in_any_output_when_servers_echo_the_headers(tmp_path: Path, echo_url: str) -> None:
    spec = _spec(tmp_path, echo_url)
    dd_only = tmp_path / "dd.yaml"
    dd_only.write_text(spec.read_text().split("  - name: bearer-hop")[0])
    bearer_only = tmp_path / "bearer.yaml"
    bearer_only.write_text(spec.read_text().replace(
        "  - name: datadog-hop\n    process: {source: dd, distribution: trade.alert.latency, "
        'filter: "service:alerting"}\n', ""))
    basic_only = tmp_path / "basic.yaml"
    basic_only.write_text(bearer_only.read_text().replace(
        "  - name: bearer-hop\n    process: {source: bearer, histogram: a_seconds}\n", ""))
    runs = [
        # Datadog refuses the query: a check in every report, with Datadog's (echoing) words
        _latmap(["report", "-c", str(dd_only), "--out", str(tmp_path / "report"), "--no-progress"], tmp_path),
        _latmap(["map", "-c", str(bearer_only), "--no-progress"], tmp_path),
        _latmap(["map", "-c", str(basic_only), "--no-progress", "--format", "json"], tmp_path),
        _latmap(["discover", "--prometheus", echo_url], tmp_path),
        _latmap(["dashboards", "-c", str(bearer_only), "--out", str(tmp_path / "grafana"), "--push", echo_url,
                 "--token-env", "LATMAP_T_GRAFANA"], tmp_path),
    ]
    outputs = _outputs(tmp_path, runs)
    assert (tmp_path / "report" / "report.json").exists() and (tmp_path / "grafana" / "provisioning").is_dir()
    assert [r.returncode for r in runs] == [0, 2, 2, 2, 2], [r.stderr for r in runs]
    # the servers did echo the secrets, and latmap did quote the servers: the test tests something
    said = "\n".join(outputs.values())
    assert said.count("debug: you sent") >= 5 and "***" in said
    assert "Authorization: Bearer ***" in said and "Authorization: Basic ***" in said
    assert "DD-API-KEY: ***" in said and "DD-APPLICATION-KEY: ***" in said
    assert _leaks(outputs) == []
    for name, text in outputs.items():
        assert "\x1b" not in text and "\x07" not in text, name  # no terminal escape from a server
        if name.endswith("stderr"):
            assert "Traceback" not in text
            assert max(map(len, text.splitlines() or [""])) < 1200, name  # quoted remote text is capped


@pytest.mark.parametrize("args", [
    ["map", "-c", "SPEC", "--prometheus", "http://admin:PW@127.0.0.1:9/"],
    ["report", "-c", "SPEC", "--out", "OUT", "--pushgateway", "http://u:PW@127.0.0.1:9"],
    ["dashboards", "-c", "SPEC", "--out", "OUT", "--prometheus", "https://admin:PW@127.0.0.1:9"],
    ["dashboards", "-c", "SPEC", "--push", "http://admin:PW@127.0.0.1:9", "--token-env", "LATMAP_T_GRAFANA"],
    ["discover", "--prometheus", "http://admin:PW@127.0.0.1:9"],
])
def test_credentials_in_a_url_are_refused_with_a_hint(tmp_path: Path, args: list[str]) -> None:
    spec = _spec(tmp_path, "http://127.0.0.1:9")
    args = [a.replace("SPEC", str(spec)).replace("OUT", str(tmp_path / "out")).replace("PW", PASSWORD)
            for a in args]
    run = _latmap(args, tmp_path)
    assert run.returncode == 2
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and "credentials in the URL are refused; use bearer_token_env" in lines[0], lines
    assert "127.0.0.1:9" in lines[0]
    assert _leaks(_outputs(tmp_path, [run])) == []
    assert not (tmp_path / "out").exists()


def test_credentials_in_the_spec_url_are_refused_without_quoting_them(tmp_path: Path) -> None:
    spec = _spec(tmp_path, f"http://{USER}:{PASSWORD}@127.0.0.1:9")
    run = _latmap(["map", "-c", str(spec)], tmp_path)
    assert run.returncode == 2 and "credentials in the URL are refused" in run.stderr
    assert PASSWORD not in run.stderr + run.stdout
