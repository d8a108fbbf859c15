"""Pushing dashboards through Grafana's HTTP API, against a stateful loopback server.

No Grafana can run here, so the server keeps folders and dashboards in memory and answers
with the bodies Grafana documents, recorded in tests/fixtures/grafana/http_api/ (from
grafana/grafana-api-golang-client's tests, Apache-2.0, by Grafana Labs; see
fixtures/PROVENANCE.md), with ids, uids and titles filled in from its state. The 401, 404
and 412 bodies are not in those fixtures (Grafana's own docs are AGPL): they are written
here as minimal ``{"message", "status"}`` objects with the documented status codes.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dashboards.push import LATMAP_TAG, push_dashboard, token_from
from mapper.core.errors import SourceError, UsageError
from mapper.demo.localprom import free_port
from tests.servers import FIXTURES, reply

API = FIXTURES / "grafana" / "http_api"
TOKEN = "glsa_secret-token-value"


def _fixture(name: str) -> Any:
    return json.loads((API / name).read_text(encoding="utf-8"))


class FakeGrafana:
    """Folders and dashboards in memory; every request is logged as (method, path, body)."""

    def __init__(self) -> None:
        self.folders: dict[str, str] = {}  # uid -> title
        self.dashboards: dict[str, tuple[dict[str, Any], str]] = {}  # uid -> (dashboard, folderUid)
        self.requests: list[tuple[str, str, Any]] = []
        self.fail: tuple[int, dict[str, str]] | None = None  # answer every request with this
        self.fail_post: tuple[int, dict[str, str]] | None = None  # answer dashboard POSTs with this

    @property
    def writes(self) -> list[tuple[str, str, Any]]:
        return [r for r in self.requests if r[0] != "GET"]

    def handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body: Any = json.loads(req.rfile.read(length)) if length else None
        path = req.path.split("?")[0]
        self.requests.append((method, path, body))
        if req.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.send(req, 401, {"message": "Invalid API key"})
        if self.fail:
            return self.send(req, *self.fail)
        if method == "GET" and path.startswith("/api/dashboards/uid/"):
            uid = path.rsplit("/", 1)[1]
            if uid not in self.dashboards:
                return self.send(req, 404, {"message": "Dashboard not found"})
            dash, folder_uid = self.dashboards[uid]
            out = _fixture("GET_api_dashboards_uid.200.json")
            out["dashboard"] = dash
            out["meta"].update(url=f"/d/{uid}/x", folderUid=folder_uid)
            return self.send(req, 200, out)
        if method == "GET" and path == "/api/folders":
            items = []
            for n, (uid, title) in enumerate(self.folders.items(), 1):
                item = _fixture("GET_api_folders.item.200.json")
                item.update(id=n, uid=uid, title=title)
                items.append(item)
            return self.send(req, 200, items)
        if method == "POST" and path == "/api/folders":
            uid = f"f{len(self.folders) + 1}"
            self.folders[uid] = body["title"]
            out = _fixture("POST_api_folders.200.json")
            out.update(uid=uid, title=body["title"])
            return self.send(req, 200, out)
        if method == "POST" and path == "/api/dashboards/db":
            if self.fail_post:
                return self.send(req, *self.fail_post)
            dash = copy.deepcopy(body["dashboard"])
            uid = dash["uid"]
            old = self.dashboards.get(uid)
            if old is not None and not body.get("overwrite"):
                return self.send(req, 412, {"message": "exists", "status": "version-mismatch"})
            dash["version"] = (old[0].get("version", 0) + 1) if old else 1
            dash["id"] = 7
            self.dashboards[uid] = (dash, body.get("folderUid") or "")
            out = _fixture("POST_api_dashboards_db.200.json")
            out.update(uid=uid, version=dash["version"], url=f"/d/{uid}/x")
            return self.send(req, 200, out)
        return self.send(req, 404, {"message": "Not found"})

    @staticmethod
    def send(req: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        reply(req, status, json.dumps(body).encode())


@contextlib.contextmanager
def grafana_server(state: FakeGrafana) -> Iterator[str]:
    class _H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.handle(self, "GET")

        def do_POST(self) -> None:
            state.handle(self, "POST")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), _H)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    state = FakeGrafana()
    with grafana_server(state) as url:
        yield state, url


def _dashboard() -> dict[str, Any]:
    try:
        from dashboards.grafana import build_dashboard
        from mapper.core.spec import loads_spec
        from mapper.demo.run import demo_spec

        dash, _ = build_dashboard(loads_spec(demo_spec(spool=None)))
        if dash.get("uid") and LATMAP_TAG in (dash.get("tags") or []):
            return dash
    except Exception:  # the generator is another module's, maybe not there yet
        pass
    return {"uid": "latmap-trading", "title": "latmap: trading", "tags": [LATMAP_TAG],
            "panels": [{"type": "timeseries", "title": "p99"}], "schemaVersion": 39}


def test_first_push_creates_the_folder_and_the_dashboard(grafana: tuple[FakeGrafana, str]) -> None:
    state, url = grafana
    dash = _dashboard()
    result = push_dashboard(url, dash, "Latency", TOKEN, message="latmap: trading")
    assert result.status == "created" and result.uid == dash["uid"] and result.version == 1
    assert state.folders == {"f1": "Latency"} and result.folder_uid == "f1"
    assert [(m, p) for m, p, _ in state.writes] == [("POST", "/api/folders"), ("POST", "/api/dashboards/db")]
    posted = state.writes[1][2]
    assert posted["folderUid"] == "f1" and posted["overwrite"] is False
    assert posted["message"] == "latmap: trading"
    assert posted["dashboard"]["uid"] == dash["uid"] and posted["dashboard"]["id"] is None
    assert state.dashboards[dash["uid"]][1] == "f1"


def test_second_push_writes_nothing(grafana: tuple[FakeGrafana, str]) -> None:
    state, url = grafana
    push_dashboard(url, _dashboard(), "Latency", TOKEN)
    before = len(state.writes)
    result = push_dashboard(url, _dashboard(), "Latency", TOKEN)
    assert result.status == "unchanged" and result.version == 1
    assert len(state.writes) == before


def test_changed_dashboard_is_updated_in_place(grafana: tuple[FakeGrafana, str]) -> None:
    state, url = grafana
    push_dashboard(url, _dashboard(), "Latency", TOKEN)
    changed = {**_dashboard(), "title": "latmap: trading (v2)"}
    result = push_dashboard(url, changed, "Latency", TOKEN)
    assert result.status == "updated" and result.version == 2
    assert state.writes[-1][2]["overwrite"] is True
    assert state.folders == {"f1": "Latency"}  # folder found, not created twice


def test_moving_to_another_folder_is_a_change(grafana: tuple[FakeGrafana, str]) -> None:
    state, url = grafana
    push_dashboard(url, _dashboard(), "Latency", TOKEN)
    result = push_dashboard(url, _dashboard(), None, TOKEN)
    assert result.status == "updated" and "folderUid" not in state.writes[-1][2]
    assert push_dashboard(url, _dashboard(), None, TOKEN).status == "unchanged"


def test_foreign_dashboard_is_refused_without_force(grafana: tuple[FakeGrafana, str]) -> None:
    state, url = grafana
    uid = _dashboard()["uid"]
    state.dashboards[uid] = ({"uid": uid, "title": "Production Overview", "tags": ["ops"], "version": 4}, "")
    with pytest.raises(UsageError, match=r"not tagged 'latmap'.*--force") as err:
        push_dashboard(url, _dashboard(), "Latency", TOKEN)
    assert err.value.exit_code == 2
    assert state.writes == [] and state.folders == {}
    assert state.dashboards[uid][0]["title"] == "Production Overview"
    result = push_dashboard(url, _dashboard(), "Latency", TOKEN, force=True)
    assert result.status == "updated" and state.writes[-1][2]["overwrite"] is True
    assert state.dashboards[uid][0]["title"] == _dashboard()["title"]


def test_version_conflict_is_explained(grafana: tuple[FakeGrafana, str]) -> None:
    state, url = grafana
    state.fail_post = (412, {"message": "The dashboard has been changed by someone else",
                             "status": "version-mismatch"})
    with pytest.raises(SourceError, match="HTTP 412 version-mismatch: the dashboard was changed") as err:
        push_dashboard(url, _dashboard(), None, TOKEN)
    assert url in str(err.value)
    state.fail_post = (412, {"message": "A dashboard with the same name exists", "status": "name-exists"})
    with pytest.raises(SourceError, match="same title"):
        push_dashboard(url, _dashboard(), None, TOKEN)


def test_bad_token_is_explained_without_showing_it(grafana: tuple[FakeGrafana, str]) -> None:
    state, url = grafana
    with pytest.raises(SourceError, match="HTTP 401: Grafana refused the token: check "
                       "--token-env/--token-file and that it has Editor rights on folder 'Latency'") as err:
        push_dashboard(url, _dashboard(), "Latency", "wrong-" + TOKEN)
    assert TOKEN not in str(err.value)
    state.fail = (403, {"message": "Access denied"})
    with pytest.raises(SourceError, match=r"HTTP 403: Grafana denied the token.*Editor rights") as err:
        push_dashboard(url, _dashboard(), "Latency", TOKEN)
    assert TOKEN not in str(err.value) and state.writes == []


def test_unreachable_grafana_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SourceError, match=f"Grafana {url}/api/dashboards/uid/.*: cannot connect"):
        push_dashboard(url, _dashboard(), None, TOKEN, timeout=5)


def test_credentials_in_the_url_are_refused_and_not_shown() -> None:
    port = free_port()
    with pytest.raises(UsageError) as err:
        push_dashboard(f"http://admin:hunter2@127.0.0.1:{port}/", _dashboard(), None, TOKEN, timeout=5)
    assert "hunter2" not in str(err.value) and f"http://127.0.0.1:{port}/" in str(err.value)
    assert "--token-env/--token-file" in str(err.value)


def test_token_comes_from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATMAP_TEST_GRAFANA_TOKEN", f" {TOKEN}\n")
    assert token_from("LATMAP_TEST_GRAFANA_TOKEN", None) == TOKEN
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    assert token_from(None, str(f)) == TOKEN
    with pytest.raises(UsageError, match="--token-env VAR or --token-file FILE"):
        token_from(None, None)
    monkeypatch.delenv("LATMAP_TEST_GRAFANA_TOKEN")
    with pytest.raises(SourceError, match="LATMAP_TEST_GRAFANA_TOKEN is not set"):
        token_from("LATMAP_TEST_GRAFANA_TOKEN", None)
