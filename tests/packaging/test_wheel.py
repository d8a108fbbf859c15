"""The wheel users install holds every module and data file of the three packages.

CI builds the sdist and the wheel with ``python -m build`` and points ``LATMAP_WHEEL`` (and
``LATMAP_SDIST``) at them, so this checks the very files it then installs into a fresh
virtual environment. Elsewhere the test builds a wheel itself the same way. A wheel that
left out a subpackage once installed a ``latmap`` that failed with ``No module named
'mapper.core'``: the list of files is compared, not a sample.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.paths import ROOT

PACKAGES = ("mapper", "collectors", "dashboards")


def _source_files() -> set[str]:
    """Every file of the packages git tracks (``__pycache__`` and the like are not)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--", *PACKAGES], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode == 0 and listed.stdout:
        return {p for p in listed.stdout.decode().split("\0") if p}
    return {str(p.relative_to(ROOT)) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("LATMAP_WHEEL")
    if given:
        return Path(given)
    pytest.importorskip("build", reason="the build frontend comes with the dev extra")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True)
    return next(out.glob("latency_mapper-*.whl"))


def test_the_wheel_holds_every_file_of_the_packages_and_nothing_else(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = {n for n in zf.namelist() if not n.split("/", 1)[0].endswith(".dist-info")}
    source = _source_files()
    assert sorted(source - names) == [], "left out of the wheel"
    assert sorted(names - source) == [], "in the wheel but not in the source tree"
    assert {f"{p}/py.typed" for p in PACKAGES} <= names


def test_the_wheel_metadata_has_one_version_the_console_script_and_no_test_tool(wheel: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    with zipfile.ZipFile(wheel) as zf:
        info = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(info).decode()
        points = zf.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert f"\nVersion: {project['version']}\n" in metadata
    assert f"latmap = {project['scripts']['latmap']}" in points
    runtime = [line.split(":", 1)[1].strip() for line in metadata.splitlines()
               if line.startswith("Requires-Dist:") and "extra ==" not in line]
    tools = ("pytest", "hypothesis", "ruff", "mypy", "build", "twine", "kubernetes-validate")
    assert not [r for r in runtime if r.split(";")[0].split("[")[0].split(">")[0].split("=")[0].strip() in tools]
    assert "Description-Content-Type: text/markdown" in metadata


def test_the_sdist_builds_the_same_packages() -> None:
    given = os.environ.get("LATMAP_SDIST")
    if not given:
        pytest.skip("LATMAP_SDIST is set by .ci/run after python -m build")
    with tarfile.open(given) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert _source_files() <= names
    assert {"pyproject.toml", "README.md"} <= names
