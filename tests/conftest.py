"""Session fixtures: one real Prometheus holding the demo's day and the quirk series."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

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
