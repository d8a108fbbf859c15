"""Hostile and malformed input, each answered with one line naming its place and exit code 2:
never a traceback, an "internal error", a hang or a memory blow-up.

The Prometheus answers come from loopback servers that serve the recorded shape of
Prometheus's own answers (tests/fixtures/prometheus/api_openapi_golden, Apache-2.0), with
the contents each case needs.
"""

from __future__ import annotations

import json
import re
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from mapper.cli import main
from mapper.demo.run import demo_spec
from tests.servers import loopback_server, reply

BUCKETS = (("0.01", "10"), ("0.1", "90"), ("1", "100"), ("+Inf", "100"))


def _buckets(req: BaseHTTPRequestHandler) -> None:
    """Every instant query answers one histogram's buckets (the recorded vector shape)."""
    result = [{"metric": {"le": le}, "value": [1767436620, n]} for le, n in BUCKETS]
    reply(req, 200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode())


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    return code, [line for line in err.splitlines() if line]


def _spec(tmp_path: Path, text: str) -> str:
    path = tmp_path / "stream.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


BASE = demo_spec("prometheus", "http://127.0.0.1:9", None)

SPEC_CASES = [
    ("window: 24h", "window: [24h]", ":6: window: expected a duration like 24h, got a list"),
    ("window: 24h", "window: {a: 1}", ":6: window: expected a duration like 24h, got a mapping"),
    ("window: 24h", "window: 999999d", ":6: window: not a duration: '999999d' (longer than 100 years)"),
    ("name: market-data", "name: ''", ":11: stages[0].name: must not be empty"),
    ("name: market-data", "name: 42", ":11: stages[0].name: must be a string"),
    ("name: market-data", 'name: "a\\nb"', ":11: stages[0].name: must not contain control characters"),
    ("name: market-data", 'name: "x\\e]0;title\\a"', ":11: stages[0].name: must not contain control characters"),
    ("name: market-data", "name: " + "x" * 300, ":11: stages[0].name: longer than 200 characters"),
    ("owner: md-team", "owner: {a: 1}", ":12: stages[market-data].owner: must be a string"),
    ("owner: md-team", "owner: [a]", ":12: stages[market-data].owner: must be a string"),
    ("owner: sre-oncall", "owner: ''", ":5: owner: must not be empty"),
    ("percentiles: [50, 99, 99.99]", "percentiles: [50, 'x' ]", ":7: percentiles: 'x' is not a percentile"),
]


@pytest.mark.parametrize(("old", "new", "expected"), SPEC_CASES)
def test_spec_mistakes_are_one_line_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     old: str, new: str, expected: str) -> None:
    assert old in BASE
    path = _spec(tmp_path, BASE.replace(old, new, 1))
    code, lines = _run(["map", "-c", path], capsys)
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"latmap: error: {path}{expected}"), lines


EVENT = "  - {name: %s, start: '2026-01-05T14:00:00Z', end: '2026-01-05T15:00:00Z'}\n"


@pytest.mark.parametrize(("events", "expected"), [
    (EVENT % "''", "events[0].name: must not be empty"),
    (EVENT % "42", "events[0].name: must be a string"),
    (EVENT % "{a: 1}", "events[0].name: must be a string"),
    (EVENT % '"x\\e]0;title\\a"', "events[0].name: must not contain control characters"),
    (EVENT % '"<img src=x onerror=alert(1)>\\nrow"', "events[0].name: must not contain control characters"),
    (EVENT % ("x" * 300), "events[0].name: longer than 200 characters"),
    ("  - {start: '2026-01-05T14:00:00Z', end: '2026-01-05T15:00:00Z'}\n", "events[0].name: is required"),
    (EVENT % "fomc" + EVENT % "fomc", "events[1].name: a second event named 'fomc'"),
])
def test_event_names_are_validated_like_stage_names(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    events: str, expected: str) -> None:
    old = '  - {name: daily-news, cron: "0 14 * * *", duration: 15m}\n'
    assert old in BASE
    text = BASE.replace(old, events, 1)
    code, lines = _run(["map", "-c", _spec(tmp_path, text)], capsys)
    assert code == 2 and len(lines) == 1 and expected in lines[0], lines


@pytest.mark.parametrize(("args", "expected"), [
    (["--window", "999999d"], "latmap: error: --window: not a duration: '999999d' (longer than 100 years)"),
    (["--window", "nan"], "latmap: error: --window: not a duration: 'nan' (must be finite and >= 0)"),
    (["--until", "1e20"], "latmap: error: --until: not a time: '1e20' out of range (1970 to 9999, unix seconds "
                          "or RFC 3339)"),
    (["--until", "nan"], "latmap: error: --until: not a time: 'nan' out of range (1970 to 9999, unix seconds "
                         "or RFC 3339)"),
    (["--until", "-5"], "latmap: error: --until: not a time: '-5' out of range (1970 to 9999, unix seconds "
                        "or RFC 3339)"),
    (["--window", "20000d", "--until", "1000"], "latmap: error: --window/--until: the window of 20000d ending at "
                                                "1970-01-01T00:16:40Z would start before 1970"),
    (["--timeout", "0s"], "latmap: error: --timeout: must be > 0"),
    (["--prometheus", "http://h:1/\x1b[2J"], "latmap: error: --prometheus: not an http(s) URL: it contains "
                                             "whitespace or control characters: 'http://h:1/ [2J'"),
])
def test_flag_mistakes_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                    expected: str) -> None:
    code, lines = _run(["map", "-c", _spec(tmp_path, BASE), *args], capsys)
    assert (code, lines) == (2, [expected])


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))


@pytest.mark.parametrize(("text", "expected"), [
    (ALIAS_BOMB + BASE.replace("percentiles: [50, 99, 99.99]", "percentiles: *i"),
     "expands to more than 100000 values (aliases followed): refused (a YAML alias bomb?)"),
    (ALIAS_BOMB + "percentiles: *i\n", "expands to more than 100000 values"),
    ("percentiles: &p [50, *p]\n", "a recursive alias (a node that contains itself)"),
    ("percentiles: " + "[" * 150 + "]" * 150 + "\n", "nested more than 100 levels deep"),
    ("percentiles: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply to read"),
])
def test_hostile_yaml_is_refused_quickly_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                                     expected: str) -> None:
    started = time.monotonic()
    code, lines = _run(["map", "-c", _spec(tmp_path, text)], capsys)
    assert code == 2 and len(lines) == 1 and expected in lines[0], lines
    assert len(lines[0]) < 500 and time.monotonic() - started < 20


def test_thousands_of_bad_values_are_reported_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _spec(tmp_path, BASE.replace("percentiles: [50, 99, 99.99]",
                                        "percentiles: [" + ", ".join(["'" + "y" * 1000 + "'"] * 5000) + "]"))
    code, lines = _run(["map", "-c", path], capsys)
    assert code == 2 and len(lines) == 51 and lines[-1].endswith("... and 4950 more problems")
    assert max(map(len, lines)) < 500


def test_too_many_paths_through_the_stream_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 30 diamonds in a row: 2^30 paths, each of which would be mapped end to end
    stages = ["  - {name: s0, process: {source: p, histogram: h}}"]
    for i in range(30):
        stages += [f"  - {{name: a{i}, upstream: s{i}, process: {{source: p, histogram: h}}}}",
                   f"  - {{name: b{i}, upstream: s{i}, process: {{source: p, histogram: h}}}}",
                   f"  - {{name: s{i + 1}, upstream: [a{i}, b{i}], process: {{source: p, histogram: h}}}}"]
    text = "version: 1\nname: d\nsources: {p: {kind: prometheus, url: 'http://127.0.0.1:9'}}\nstages:\n"
    code, lines = _run(["map", "-c", _spec(tmp_path, text + "\n".join(stages) + "\n")], capsys)
    assert code == 2 and len(lines) == 1
    assert lines[0].endswith(":4: stages: the upstream links make 1073741824 paths through the stream (at most "
                             "1000): each is mapped end to end; link fewer stages")


@pytest.mark.parametrize("data", [["a", "b"], {"m": "not a list"}, {"m": [1, 2]}, "x", None])
def test_discover_with_a_wrong_metadata_shape(capsys: pytest.CaptureFixture[str], data: object) -> None:
    body = json.dumps({"status": "success", "data": data}).encode()
    with loopback_server(lambda req: reply(req, 200, body)) as url:
        code, lines = _run(["discover", "--prometheus", url], capsys)
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"latmap: error: {url}/api/v1/metadata: data"), lines


def test_an_answer_nested_too_deeply_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    body = b'{"status": "success", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with loopback_server(lambda req: reply(req, 200, body)) as url:
        code, lines = _run(["discover", "--prometheus", url, "--timeout", "5s"], capsys)
    assert code == 2 and len(lines) == 1 and "answer is JSON nested too deeply" in lines[0], lines


@pytest.mark.parametrize("source", ["/dev/zero", "big"])
def test_a_spec_that_is_not_a_file_of_sane_size_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          source: str) -> None:
    path = source
    if source == "big":
        path = str(tmp_path / "big.yaml")
        with open(path, "wb") as f:
            f.truncate(20 << 20)  # 20 MiB (sparse)
    code, lines = _run(["map", "-c", path], capsys)
    # A device is refused before a byte is read; a regular file over the limit after 16 MiB + 1.
    said = ("not a regular file (a device, FIFO or socket); the stream spec must be a regular file"
            if source == "/dev/zero" else "larger than 16 MiB; not a stream spec")
    assert code == 2 and len(lines) == 1 and lines[0] == f"latmap: error: {path}: {said}", lines


def test_discover_against_a_hanging_server_obeys_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    def hang(req: BaseHTTPRequestHandler) -> None:
        time.sleep(5)

    started = time.monotonic()
    with loopback_server(hang) as url:
        code, lines = _run(["discover", "--prometheus", url, "--timeout", "300ms"], capsys)
        took = time.monotonic() - started
    assert code == 2 and lines == [f"latmap: error: {url}/api/v1/metadata: no answer within 0.3s (after 4 attempts)"]
    assert took < 4


def test_max_response_bounds_what_a_source_may_send(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"le": str(i), "pad": "x" * 100}, "value": [1, "1"]} for i in range(100)]}}).encode()
    with loopback_server(lambda req: reply(req, 200, big)) as url:
        text = demo_spec("prometheus", url, None).replace(
            f'prom: {{kind: prometheus, url: "{url}"}}',
            f'prom: {{kind: prometheus, url: "{url}", max_response: 4KiB}}')
        code, lines = _run(["map", "-c", _spec(tmp_path, text)], capsys)
    assert code == 2 and len(lines) == 1
    assert f"{url}/api/v1/query: answer of {len(big)} bytes is larger than max_response (4096 bytes)" in lines[0]


def test_names_and_remote_words_reach_the_terminal_and_markdown_tamed(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    hostile = "<img src=x onerror=alert(1)> *[x](javascript:y)* | `z`"

    def answer(req: BaseHTTPRequestHandler) -> None:
        result = [{"metric": {"le": le}, "value": [1767436620, n]} for le, n in BUCKETS]
        body = {"status": "success", "warnings": ["\x1b]0;pwned\x07warn\nsecond line"],
                "data": {"resultType": "vector", "result": result}}
        reply(req, 200, json.dumps(body).encode())

    with loopback_server(answer) as url:
        text = (f"version: 1\nname: t\nsources: {{p: {{kind: prometheus, url: '{url}'}}}}\nstages:\n"
                f"  - {{name: '{hostile}', owner: '{hostile}', process: {{source: p, histogram: h}}}}\n")
        code = main(["map", "-c", _spec(tmp_path, text), "--out", str(tmp_path / "out"), "--no-progress"])
    out = capsys.readouterr()
    assert code == 0, out.err
    for text in (out.out, out.err):
        assert "\x1b" not in text and "\x07" not in text
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.count("```") % 2 == 0 and "\x1b" not in md
    prose = "".join(md.split("```")[::2])  # outside the fenced blocks, where Markdown and HTML act
    # escaped, so text and not markup (backslashes, not entities: issue 14)
    assert not re.search(r"(?<!\\)<img", prose) and not re.search(r"(?<!\\)\]\(javascript", prose)
    assert "\\<img src=x onerror=alert(1)> \\*\\[x\\](javascript:y)\\* \\| \\`z\\`" in md  # no entities (issue 14)
    assert "Prometheus warns: \\]0;pwned warn second line" in md
