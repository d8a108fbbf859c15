"""deploy/Dockerfile, read as data (no container engine runs in CI).

What the image runs must be what CI checked: it builds the sdist and wheel with
``python -m build`` in a build stage, installs only that wheel in a slim runtime stage,
runs as a non-root user, copies only files that exist, and its command is a console
script of the wheel.
"""

from __future__ import annotations

import json
import shlex
import tomllib
from dataclasses import dataclass

from tests.paths import ROOT

DOCKERFILE = ROOT / "deploy" / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    op: str
    args: str
    stage: int


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    stage, pending = -1, ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        op, _, args = line.partition(" ")
        if op.upper() == "FROM":
            stage += 1
        out.append(Instruction(op.upper(), args.strip(), stage))
    return out


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"{args}: use the exec (JSON) form"
    return value


def test_two_stages_build_then_a_slim_runtime() -> None:
    froms = [i for i in instructions() if i.op == "FROM"]
    assert len(froms) == 2
    assert froms[0].args.endswith(" AS build") and froms[1].args.endswith(" AS runtime")
    assert all("-slim" in f.args for f in froms)
    build_runs = " ".join(i.args for i in instructions() if i.op == "RUN" and i.stage == 0)
    assert "python -m build" in build_runs


def test_every_file_it_copies_exists() -> None:
    copies = [i for i in instructions() if i.op == "COPY"]
    assert copies
    for c in copies:
        words = shlex.split(c.args)
        if any(w.startswith("--from=") for w in words):
            assert "--from=build" in words  # the runtime takes the built wheel, nothing else
            continue
        sources = [w for w in words[:-1] if not w.startswith("--")]
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"


def test_the_runtime_installs_only_the_wheel_and_runs_as_a_user() -> None:
    runtime = [i for i in instructions() if i.stage == 1]
    installs = " ".join(i.args for i in runtime if i.op == "RUN")
    assert ".whl" in installs and "pip install" in installs
    assert not [i for i in runtime if i.op == "COPY" and "--from=build" not in i.args]
    user = [i.args for i in runtime if i.op == "USER"]
    assert user and user[-1] not in ("root", "0")


def test_its_command_is_a_console_script_of_the_wheel() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    runtime = [i for i in instructions() if i.stage == 1]
    entry = [_exec_form(i.args) for i in runtime if i.op == "ENTRYPOINT"]
    cmd = [_exec_form(i.args) for i in runtime if i.op == "CMD"]
    program = (entry[-1] if entry and entry[-1] else cmd[-1])[0]
    assert program in scripts
