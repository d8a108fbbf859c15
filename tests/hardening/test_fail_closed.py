"""Security settings fail closed, secrets are masked before any cut, and every file a user
names is read within bounds (issue 25: the classes, not the single examples)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from collectors.http import HttpClient, read_secret
from mapper.analysis.baseline import load_baseline
from mapper.core.errors import SourceError, SpecError, UsageError
from mapper.core.redact import quoted, remember, remote_text
from mapper.core.spec import BasicAuth, SourceSpec
from mapper.core.yamlload import load_yaml_file
from tests.paths import ROOT


@pytest.mark.parametrize("content", ["", "   \n\t\n", "\n"])
def test_an_empty_token_file_refuses_to_start_the_receiver(tmp_path: Path, content: str) -> None:
    token = tmp_path / "token"
    token.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "mapper", "serve", "--spool", str(tmp_path / "spool"),
                           "--http", "127.0.0.1:0", "--grpc", "off", "--token-file", str(token)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "is empty" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize("env_value", ["", "  "])
def test_an_empty_token_env_var_fails_closed(monkeypatch: pytest.MonkeyPatch, env_value: str) -> None:
    monkeypatch.setenv("LATMAP_TEST_TOKEN", env_value)
    with pytest.raises(SourceError, match="is empty"):
        read_secret("LATMAP_TEST_TOKEN", None, "--token-env")


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom", "/tmp"])
def test_a_secret_file_that_is_not_a_regular_file_is_refused_without_reading_it(path: str) -> None:
    with pytest.raises(SourceError, match="regular file"):
        read_secret(None, path, "--token-file")


def test_a_huge_secret_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"a" * (1 << 20))
    with pytest.raises(SourceError, match="larger than"):
        read_secret(None, str(big), "--token-file")


@pytest.mark.parametrize("token", ["tök€n-value", "tok en value", "token\x01value"])
def test_a_token_a_header_cannot_carry_is_refused_and_masked(tmp_path: Path, token: str) -> None:
    f = tmp_path / "token"
    f.write_text(token)
    with pytest.raises(SourceError) as err:
        read_secret(None, str(f), "source 'p'")
    assert "cannot carry" in str(err.value) and token.strip() not in str(err.value)


def test_basic_auth_with_a_non_ascii_user_and_password_is_sent_as_utf8(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATMAP_TEST_PW", "pässwörd€")
    spec = SourceSpec("p", "prometheus", "http://127.0.0.1:9", "test",
                      basic_auth=BasicAuth("jürgen", password_env="LATMAP_TEST_PW"))
    client = HttpClient(spec)
    prepared = client.session.prepare_request(requests.Request("GET", "http://127.0.0.1:9/"))
    assert prepared.headers["Authorization"].startswith("Basic ")


def test_secrets_are_masked_before_the_text_is_cut() -> None:
    secret = "Zk9sQ2cP7-masked-before-cut-4411"
    remember(secret)
    for cut in range(5, 60):
        body = "x" * cut + f"Authorization: Bearer {secret} and more"
        shown = remote_text(body, cut + 30)
        assert secret[:6] not in shown, (cut, shown)
    spaced = " ".join(secret)
    assert secret[:6] not in remote_text(f"echo: {spaced}").replace(" ", "")
    assert quoted(secret, 12).count("Zk9") == 0


@pytest.mark.parametrize("make", [
    lambda p: p.write_text("[" * 5000 + "]" * 5000),
    lambda p: p.write_text('{"stream": ' + "[" * 100000 + "]" * 100000 + "}"),
])
def test_a_baseline_nested_thousands_deep_is_a_usage_error(tmp_path: Path, make: object) -> None:
    base = tmp_path / "report.json"
    make(base)  # type: ignore[operator]
    with pytest.raises(UsageError, match=r"nested too deeply|not a latmap report"):
        load_baseline(base, "s")


@pytest.mark.parametrize("path", ["/dev/zero", "/tmp"])
def test_a_baseline_or_spec_that_is_not_a_file_is_refused_at_once(path: str) -> None:
    with pytest.raises(UsageError, match="regular file"):
        load_baseline(path, "s")
    with pytest.raises(SpecError, match="regular file"):
        load_yaml_file(path)


def test_a_fifo_as_a_spec_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match="regular file"):
        load_yaml_file(fifo)
