"""Limits that cannot work are refused when they are made (issue 25, "accepted what should be
refused"): the library's limit types refuse a zero, negative or absurd value naming the field,
and ``latmap serve`` exits 2 with one line naming the option, before it listens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from collectors.spool.http_framing import HttpLimits
from collectors.spool.limits import LimitError, SpoolLimits
from collectors.spool.receiver import Receiver
from collectors.spool.store import Spool
from mapper.analysis.live import StoreLimits
from tests.paths import ROOT


@pytest.mark.parametrize(("cls", "values", "field"), [
    (SpoolLimits, {"max_disk_bytes": 0}, "max_disk_bytes"),
    (SpoolLimits, {"max_disk_bytes": -5}, "max_disk_bytes"),
    (SpoolLimits, {"max_pending_bytes": 0}, "max_pending_bytes"),
    (SpoolLimits, {"segment_bytes": 0}, "segment_bytes"),
    (SpoolLimits, {"segment_age": 0.0}, "segment_age"),
    (SpoolLimits, {"compact_interval": float("nan")}, "compact_interval"),
    (SpoolLimits, {"retention_days": 0.0}, "retention_days"),
    (SpoolLimits, {"retention_days": 60 / 86400}, "retention_days"),  # shorter than the wait for compaction
    (SpoolLimits, {"max_ahead": 0}, "max_ahead"),
    (StoreLimits, {"ttl": 0}, "ttl"),
    (StoreLimits, {"ttl": 5.0, "settle": 10.0}, "settle"),  # never emits
    (StoreLimits, {"ttl": 5.0, "settle": 5.0}, "settle"),
    (StoreLimits, {"settle": -1.0}, "settle"),
    (StoreLimits, {"max_items": 0}, "max_items"),
    (StoreLimits, {"max_spans": 0}, "max_spans"),
    (HttpLimits, {"max_connections": 0}, "max_connections"),
    (HttpLimits, {"body_timeout": 0}, "body_timeout"),
    (HttpLimits, {"max_head_bytes": -1}, "max_head_bytes"),
    (HttpLimits, {"keep_alive": float("inf")}, "keep_alive"),
])
def test_a_limit_that_cannot_work_is_refused_naming_its_field(cls: Any, values: dict[str, Any], field: str) -> None:
    with pytest.raises(LimitError) as caught:
        cls(**values)
    assert caught.value.field == field and str(caught.value).startswith(f"{field}: ")


def test_the_defaults_and_no_retention_are_fine() -> None:
    SpoolLimits()
    SpoolLimits(retention_days=None, max_ahead=None)
    StoreLimits()
    StoreLimits(ttl=10, settle=0)
    HttpLimits()


@pytest.mark.parametrize("workers", [-1, 100_000])
def test_the_receiver_refuses_absurd_decode_workers(tmp_path: Path, workers: int) -> None:
    with Spool(tmp_path, compact=False) as spool, pytest.raises(LimitError, match="decode_workers"):
        Receiver(spool, http=None, grpc=None, decode_workers=workers)


@pytest.mark.parametrize(("args", "option"), [
    (["--max-disk", "0"], "--max-disk"),
    (["--max-disk", "10"], "--max-disk"),  # 10 bytes: meant 10GiB
    (["--retention", "60s"], "--retention"),
    (["--retention", "-1d"], "--retention"),
    (["--max-connections", "0"], "--max-connections"),
    (["--decode-workers", "100000"], "--decode-workers"),
    (["--stream", "x.yaml", "--live-settle", "30s", "--live-ttl", "10s"], "--live-settle"),
    (["--stream", "x.yaml", "--live-settle", "10s", "--live-ttl", "10s"], "--live-settle"),
    (["--stream", "x.yaml", "--live-ttl", "0s"], "--live-ttl"),
    (["--stream", "x.yaml", "--live-max-items", "0"], "--live-max-items"),
])
def test_serve_refuses_at_start_with_one_line_naming_the_option(tmp_path: Path, args: list[str],
                                                                 option: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "mapper", "serve", "--spool", str(tmp_path / "spool"),
                           "--http", "127.0.0.1:0", "--grpc", "off", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and option in proc.stderr
    assert len([ln for ln in lines if ln.strip()]) <= 3  # click's usage lines, or our one line
    assert not (tmp_path / "spool" / "_wal").exists()  # refused before the spool was opened


@pytest.mark.parametrize("zero", ["0", "0s", "0d", "0h"])
def test_any_zero_retention_means_keep_everything(zero: str) -> None:
    from mapper.cli.serve import _is_zero

    assert _is_zero(zero)
    assert not _is_zero("7d") and not _is_zero("nonsense")
