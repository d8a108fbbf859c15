"""Part ``spool``: one bad file must not fail the whole map, and traces that hang.

A copy of a real spool (written by ``latmap serve``, compacted) gets one bad file each:
garbage, empty, truncated or wrong-schema Parquet, a segment path that is a directory, a
partition that is a file. The map must still be drawn from the rest (exit 0 or 1) and the
bad file named on stderr. Then trace files and engines that could hang: a gzip bomb inside a
traces file, a Dask address that answers HTTP, a Dask address without a port, an fsspec
spool with no files, a FIFO as the traces path; and spans read twice (duplicates must be
counted in ``spans-set-aside``) or named with a lone surrogate.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .common import Check, Probe, Run, chain_traces, exits

TRACES_SPEC = ("version: 1\nname: adv\nwindow: 1h\nsources:\n  spans: {kind: traces, path: \"%s\"}\nstages:\n"
               "  - {name: a, owner: t, traces: {source: spans, service: a}}\n"
               "  - {name: b, owner: t, traces: {source: spans, service: b}}\n")
MAP = ["map", "-c", "{spec}", "--format", "json"]


def skipped_and_named(name: str) -> Check:
    def check(run: Run) -> str | None:
        if run.code not in (0, 1):
            return f"the whole map failed (exit {run.code}): {run.last_line[:200]}"
        if name not in run.stderr and name not in run.stdout:
            return f"{name} was not named: {run.last_line[:200]}"
        return None
    return check


def set_aside_counted(run: Run) -> str | None:
    if run.code not in (0, 1):
        return f"exit {run.code}: {run.last_line[:200]}"
    if "spans-set-aside" not in run.stdout + run.stderr:
        return "duplicate spans were not counted in spans-set-aside"
    return None


def _copy(spool: Path, damage: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        shutil.copytree(spool, d / "spool")
        damage(d / "spool")
    return setup


def _first_parquet(root: Path) -> Path:
    """A Parquet file of the partition that holds the recent spans (10 minutes ago: in the
    map's one-hour window)."""
    t = datetime.now(UTC) - timedelta(minutes=10)
    for hour in (f"{t.hour:02d}", str(t.hour)):
        part = root / f"date={t:%Y-%m-%d}" / f"hour={hour}"
        if part.is_dir():
            return next(part.glob("*.parquet"))
    raise RuntimeError(f"{root}: no partition for {t:%Y-%m-%d %H}h: {sorted(p.name for p in root.iterdir())}")


def _put(rel: str, data: bytes) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        part = _first_parquet(root).parent
        (part / rel).write_bytes(data)
    return damage


def _truncated(root: Path) -> None:
    good = _first_parquet(root)
    (good.parent / "cut.parquet").write_bytes(good.read_bytes()[: good.stat().st_size // 2])


def _wrong_schema(root: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    odd = pa.table({"x": ["a", "b"], "start_ns": ["not", "ints"]})
    pq.write_table(odd, _first_parquet(root).parent / "odd.parquet")


def _segment_dir(root: Path) -> None:
    (root / "_wal" / f"{time.time_ns()}-9.wal").mkdir(parents=True)


def _partition_file(root: Path) -> None:
    (root / "date=2099-01-01").write_text("not a folder")


def spool_probes(spool: Path, hostile_url: str, quick: bool) -> list[Probe]:
    spec = TRACES_SPEC % "{dir}/spool"
    damaged = [
        ("garbage Parquet", _put("junk.parquet", os.urandom(4096)), "junk.parquet"),
        ("empty Parquet", _put("empty.parquet", b""), "empty.parquet"),
        ("truncated Parquet", _truncated, "cut.parquet"),
        ("wrong-schema Parquet", _wrong_schema, "odd.parquet"),
        ("a segment path that is a directory", _segment_dir, "-9.wal"),
    ]
    probes = [Probe(f"spool with {what}", MAP, spec, setup=_copy(spool, damage), check=skipped_and_named(named))
              for what, damage, named in damaged]
    t0 = time.time_ns() - 600 * 10**9
    docs = chain_traces(50, t0)
    twice = "\n".join(json.dumps(d) for d in docs + docs) + "\n"
    surrogate = json.dumps(docs[0]).replace('"name": "op"', '"name": "a\\ud800b"', 1)
    bomb = gzip.compress(b" " * (256 << 20), compresslevel=9)

    def fifo(d: Path) -> None:
        os.mkfifo(d / "traces.fifo")

    traces = TRACES_SPEC % "{dir}/traces.jsonl"
    good = "\n".join(json.dumps(d) for d in docs) + "\n"
    port = hostile_url.rsplit(":", 1)[1]
    probes += [
        Probe("traces file: every span twice", MAP, traces, files={"traces.jsonl": twice}, check=set_aside_counted),
        Probe("traces file: a lone surrogate in a span name", MAP, traces,
              files={"traces.jsonl": surrogate + "\n" + json.dumps(docs[1]) + "\n"}),
        Probe("traces file: a gzip bomb (260 KB -> 256 MB)", MAP, TRACES_SPEC % "{dir}/bomb.json.gz",
              files={"bomb.json.gz": bomb}, timeout=45),
        Probe("traces path: a FIFO nobody writes", MAP, TRACES_SPEC % "{dir}/traces.fifo", setup=fifo,
              must_exit=True, timeout=30),
        Probe("--engine dask:// an HTTP server", [*MAP, "--engine", f"dask://127.0.0.1:{port}"], spec,
              setup=_copy(spool, lambda _: None), check=exits(1, 2), timeout=60),
        Probe("--engine dask:// without a port", [*MAP, "--engine", "dask://127.0.0.1"], traces,
              files={"traces.jsonl": good}, check=exits(2)),
        Probe("fsspec spool with no files", MAP, TRACES_SPEC % "memory://latmap-adv/empty", check=exits(1, 2)),
        Probe("a spool that is an empty folder", MAP, spec, setup=lambda d: (d / "spool").mkdir()),
        Probe("spool with a partition that is a file", MAP, spec, setup=_copy(spool, _partition_file)),
    ]
    if quick:
        keep = {"spool with garbage Parquet", "spool with a segment path that is a directory",
                "traces file: every span twice", "traces file: a gzip bomb (260 KB -> 256 MB)",
                "fsspec spool with no files"}
        probes = [p for p in probes if p.name in keep]
    for p in probes:
        p.part = "spool"
    return probes
