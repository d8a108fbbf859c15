"""Session fixtures: one real Prometheus holding the demo's day and the quirk series; and the
report.json contract kept by every test: each report.json a test writes under its temporary
directories must validate against the schema the wheel ships (mapper/render/report.schema.json)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Generator, Iterator
from importlib.resources import files
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from mapper.demo.data import DemoData
from mapper.demo.localprom import backfill, running_prometheus
from tests import data
from tests.servers import require_binary


@pytest.fixture(scope="session")
def demo_data() -> DemoData:
    return data.demo()


@pytest.fixture(scope="session")
def prom_url(demo_data: DemoData) -> Iterator[str]:
    """A real Prometheus on loopback, backfilled with known data (see tests/data.py)."""
    require_binary("prometheus")
    require_binary("promtool")
    with tempfile.TemporaryDirectory(prefix="latmap-test-prom-") as tmp:
        data_dir = Path(tmp) / "data"
        backfill(data.all_lines(demo_data), data_dir)
        with running_prometheus(data_dir) as url:
            yield url


REPORT_SCHEMA = Draft202012Validator(json.loads(files("mapper.render").joinpath("report.schema.json").read_text()),
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
_SCANNED = pytest.StashKey[set[Path]]()


def report_json_problems(path: Path) -> str | None:
    """Why the report.json at ``path`` breaks the schema, with the JSON path of the error; ``None``
    when it holds, or when the file is not a schema-1 report at all (a test's deliberately
    corrupt or older file, which the code under test must refuse, is not latmap's output)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("schema_version") != 1:
        return None
    error = best_match(REPORT_SCHEMA.iter_errors(doc))
    return None if error is None else f"{path}: {error.json_path}: {error.message[:500]}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                                           pytest.TestReport]:
    """A passing test that wrote a report.json breaking the schema fails, naming the file and
    the JSON path. Looked at: the temporary directories made since the last test (its
    ``tmp_path``, and ``tmp_path_factory`` directories its fixtures made), each once."""
    report = yield
    funcargs = getattr(item, "funcargs", {})
    if report.when != "call" or not {"tmp_path", "tmp_path_factory"} & funcargs.keys():
        return report
    base = (funcargs["tmp_path_factory"].getbasetemp() if "tmp_path_factory" in funcargs
            else funcargs["tmp_path"].parent)
    scanned = item.config.stash.setdefault(_SCANNED, set())
    fresh = sorted(d for d in base.iterdir() if d.is_dir() and not d.is_symlink() and d not in scanned)
    scanned.update(fresh)  # a failed or skipped test's directories too: never blamed on the next test
    if not report.passed:
        return report
    problems = [p for d in fresh for f in sorted(d.rglob("report.json")) if (p := report_json_problems(f))]
    if problems:
        report.outcome = "failed"
        report.longrepr = "report.json does not follow mapper/render/report.schema.json:\n" + "\n".join(problems)
    return report
