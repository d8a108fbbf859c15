"""The one place secrets are masked and remote text is tamed (mapper/core/redact.py), and
the URL rule that keeps credentials out of latmap (mapper/core/urls.py)."""

from __future__ import annotations

import base64
import logging

import pytest

from mapper.core.errors import SourceError, UsageError
from mapper.core.files import write_atomic
from mapper.core.redact import (
    MASK,
    RedactFilter,
    for_terminal,
    redact,
    remember,
    remember_basic,
    remote_text,
)
from mapper.core.urls import check_http_url, url_problem


def test_a_remembered_secret_is_masked_in_errors_made_before_it_was_remembered() -> None:
    err = SourceError("proxy said: Authorization: Bearer late-Sekr3t-1234")
    remember("late-Sekr3t-1234")
    assert str(err) == f"proxy said: Authorization: Bearer {MASK}"


def test_basic_auth_masks_the_password_and_the_base64_sent_on_the_wire() -> None:
    remember_basic("alice", "basic-Sekr3t-99")
    wire = base64.b64encode(b"alice:basic-Sekr3t-99").decode()
    assert redact(f"Authorization: Basic {wire}; pw=basic-Sekr3t-99") == f"Authorization: Basic {MASK}; pw={MASK}"


def test_url_encoded_secrets_and_secrets_inside_secrets_are_masked_whole() -> None:
    remember("a/b+c=Sekr3t")
    remember("a/b+c=Sekr3t-longer")
    assert redact("x a%2Fb%2Bc%3DSekr3t y a/b+c=Sekr3t-longer") == f"x {MASK} y {MASK}"


def test_short_values_are_not_secrets() -> None:
    assert remember("abc") == "abc"
    assert redact("abc abc") == "abc abc"


def test_files_and_log_lines_are_masked(tmp_path: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture) -> None:
    remember("file-Sekr3t-77")
    path = write_atomic(tmp_path / "r.md", "token file-Sekr3t-77\n")  # type: ignore[operator]
    assert path.read_text() == f"token {MASK}\n"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "said %s", ("file-Sekr3t-77",), None)
    assert RedactFilter().filter(record) and record.getMessage() == f"said {MASK}"


def test_remote_text_is_one_capped_line_without_control_characters() -> None:
    text = remote_text("line one\nline\x1b]0;title\x07 two\r\n" + "y" * 500, 40)
    assert "\n" not in text and "\x1b" not in text and "\x07" not in text
    assert text.startswith("line one line ]0;title two") and text.endswith("…") and len(text) == 41
    assert for_terminal("a\tb\nc\x1b[2Jd\u202eé") == "a\tb\nc[2Jdé"


@pytest.mark.parametrize(("url", "problem"), [
    ("http://admin:pw@host:9090", "credentials in the URL are refused"),
    ("https://token@host", "credentials in the URL are refused"),
    ("http://a%40b:c@host", "credentials in the URL are refused"),
    ("ftp://host", "not an http(s) URL"),
    ("http://", "not an http(s) URL"),
    ("http://host:99999", "bad port"),
    ("http://host/\n", "control characters"),
    ("http://host:9090/prom", None),
])
def test_url_rule(url: str, problem: str | None) -> None:
    found = url_problem(url)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_refused_url_is_quoted_without_its_user_info() -> None:
    with pytest.raises(UsageError) as err:
        check_http_url("http://admin:hunter22@prom.example:9090/x", "--prometheus")
    assert "hunter22" not in str(err.value) and "'http://prom.example:9090/x'" in str(err.value)
    assert str(err.value).startswith("--prometheus: credentials in the URL are refused; use bearer_token_env")
