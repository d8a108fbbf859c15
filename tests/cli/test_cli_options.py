"""Options every command shares: ``-v`` before or after the subcommand, ``--help`` everywhere."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mapper.cli import cli, main
from mapper.demo.run import demo_spec


@pytest.fixture
def root_level() -> object:
    root = logging.getLogger()
    before = root.level
    yield root
    root.setLevel(before)


@pytest.mark.parametrize(("args", "level"), [
    (["rules", "-c", "{spec}"], logging.WARNING),
    (["-v", "rules", "-c", "{spec}"], logging.INFO),
    (["rules", "-c", "{spec}", "-v"], logging.INFO),
    (["rules", "-vv", "-c", "{spec}"], logging.DEBUG),
    (["-v", "rules", "-c", "{spec}", "-v"], logging.DEBUG),
])
def test_verbose_counts_before_and_after_the_subcommand(tmp_path: Path, root_level: logging.Logger,
                                                        args: list[str], level: int,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "stream.yaml"
    spec.write_text(demo_spec("prometheus", "http://127.0.0.1:9", None))
    root_level.setLevel(logging.WARNING)
    assert main([a.replace("{spec}", str(spec)) for a in args]) == 0
    assert root_level.level == level
    assert "groups:" in capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help_and_verbose(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"Usage: latmap {command}" in out and "-v, --verbose" in out
