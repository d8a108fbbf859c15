"""Issue 25: Grafana answers of the wrong shape, and foreign dashboards, against ``--push``.

The stateful fake Grafana of tests/dashboards/test_grafana_push.py (recorded wire format)
answers one call with a hostile body; every field push.py reads from Grafana is tried with
the wrong type. Each gives a one-line SourceError naming the URL and the field, and writes
nothing it should not; a dashboard latmap does not own is never overwritten without --force.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from dashboards.push import LATMAP_TAG, is_latmaps, push_dashboard
from mapper.core.errors import SourceError, UsageError
from tests.dashboards.test_grafana_push import TOKEN, FakeGrafana, grafana_server

UID = "latmap-trading"


def _dashboard() -> dict[str, Any]:
    return {"uid": UID, "title": "latmap: trading", "tags": [LATMAP_TAG], "panels": [], "schemaVersion": 39}


class Hostile(FakeGrafana):
    """Answers ``(method, path)`` in ``bodies`` with that body (status 200), the rest as Grafana."""

    def __init__(self, bodies: dict[tuple[str, str], Any]) -> None:
        super().__init__()
        self.bodies = bodies

    def handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        path = req.path.split("?")[0]
        if (method, path) in self.bodies:
            length = int(req.headers.get("Content-Length") or 0)
            self.requests.append((method, path, json.loads(req.rfile.read(length)) if length else None))
            return self.send(req, 200, self.bodies[(method, path)])
        return super().handle(req, method)


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[Any] = []

    def start(state: FakeGrafana) -> str:
        cm = grafana_server(state)
        servers.append(cm)
        return cm.__enter__()

    yield start
    for cm in servers:
        cm.__exit__(None, None, None)


GET = ("GET", f"/api/dashboards/uid/{UID}")
FOLDERS = ("GET", "/api/folders")
NEW_FOLDER = ("POST", "/api/folders")
SAVE = ("POST", "/api/dashboards/db")
STORED = {"dashboard": {**_dashboard(), "version": 1}, "meta": {"folderUid": "", "url": "/d/x"}}

HOSTILE = [
    ("get: a list", {GET: [STORED]}, "/api/dashboards/uid/latmap-trading: the answer is a list"),
    ("get: a string", {GET: "ok"}, "/api/dashboards/uid/latmap-trading: the answer is a string"),
    ("get: no dashboard", {GET: {"meta": {}}}, "/api/dashboards/uid/latmap-trading: dashboard is null"),
    ("get: dashboard a list", {GET: {"dashboard": [1]}}, "latmap-trading: dashboard is a list"),
    ("get: dashboard a string", {GET: {"dashboard": "latmap"}}, "latmap-trading: dashboard is a string"),
    ("get: meta a list", {GET: {**STORED, "meta": ["x"]}}, "latmap-trading: meta is a list"),
    ("get: meta.folderUid a number", {GET: {**STORED, "meta": {"folderUid": 3}}},
     "latmap-trading: meta: folderUid is a number, expected str"),
    ("get: meta.url a dict", {GET: {**STORED, "meta": {"url": {"a": 1}}}}, "meta: url is an object, expected str"),
    ("get: version a string", {GET: {**STORED, "dashboard": {**_dashboard(), "version": "1"}}},
     "dashboard: version is a string, expected int"),
    ("folders: an object", {FOLDERS: {"folders": []}}, "/api/folders: the answer is an object, expected a list"),
    ("folders: no uid", {FOLDERS: [{"title": "Latency"}]}, "/api/folders: [0].uid (folder 'Latency') is missing"),
    ("folders: uid a list", {FOLDERS: [{"title": "Latency", "uid": ["a"]}]}, "[0].uid (folder 'Latency') is a list"),
    ("folders: uid empty", {FOLDERS: [{"title": "Latency", "uid": ""}]}, "[0].uid (folder 'Latency') is a string"),
    ("new folder: a list", {NEW_FOLDER: [{"uid": "f"}]}, "/api/folders: the answer is a list"),
    ("new folder: no uid", {NEW_FOLDER: {"title": "Latency"}}, "/api/folders: uid is missing"),
    ("new folder: uid a number", {NEW_FOLDER: {"uid": 12}}, "/api/folders: uid is a number (12)"),
    ("save: a list", {SAVE: [1]}, "/api/dashboards/db: the answer is a list"),
    ("save: version a string", {SAVE: {"version": "two"}}, "/api/dashboards/db: version is a string, expected int"),
    ("save: version a bool", {SAVE: {"version": True}}, "/api/dashboards/db: version is a boolean, expected int"),
    ("save: url nested", {SAVE: {"url": [[["/d"]]]}}, "/api/dashboards/db: url is a list, expected str"),
]


@pytest.mark.parametrize(("bodies", "says"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_a_grafana_answer_of_the_wrong_shape_is_one_line_naming_url_and_field(
        serve: Any, bodies: dict[tuple[str, str], Any], says: str) -> None:
    state = Hostile(bodies)
    url = serve(state)
    # The stored dashboard's meta and version are read when it sits in the target folder:
    # the General folder here (a missing "Latency" folder would be created instead).
    folder = None if GET in bodies else "Latency"
    with pytest.raises(SourceError) as err:
        push_dashboard(url, _dashboard(), folder, TOKEN)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"Grafana {url}/api/")
    assert says in message
    assert TOKEN not in message


@pytest.mark.parametrize("tags", [
    "latmap", "latmap,ops", ["ops"], [["latmap"]], {"latmap": True}, None, [], "", 7, ["LATMAP"],
], ids=repr)
def test_a_dashboard_whose_tags_are_not_a_list_holding_latmap_is_foreign(serve: Any, tags: Any) -> None:
    state = FakeGrafana()
    url = serve(state)
    foreign = {"uid": UID, "title": "Production Overview", "version": 4, "tags": tags}
    state.dashboards[UID] = (foreign, "")
    assert not is_latmaps(foreign)
    with pytest.raises(UsageError, match=r"not tagged 'latmap' \(tags must be a list holding it\).*--force"):
        push_dashboard(url, _dashboard(), "Latency", TOKEN)
    assert state.writes == [] and state.dashboards[UID][0]["title"] == "Production Overview"
    assert push_dashboard(url, _dashboard(), "Latency", TOKEN, force=True).status == "updated"
    assert state.dashboards[UID][0]["title"] == "latmap: trading"


def test_latmaps_own_dashboard_is_recognised_among_other_tags() -> None:
    assert is_latmaps({"tags": ["team-a", LATMAP_TAG]})
    assert not is_latmaps({"tags": [None, 3, "latmap "]})


def test_a_huge_nested_title_in_the_refusal_is_cut_to_one_line(serve: Any) -> None:
    state = FakeGrafana()
    url = serve(state)
    state.dashboards[UID] = ({"uid": UID, "title": "x\n" * 10_000, "tags": "latmap"}, "")
    with pytest.raises(UsageError) as err:
        push_dashboard(url, _dashboard(), "Latency", TOKEN)
    assert "\n" not in str(err.value) and len(str(err.value)) < 400
