"""The spec's ``engine:``: where and how the traces of a window are analysed.

``local`` (the default) reads the spool partition by partition in this process, in memory
that does not grow with the window; ``dask`` runs the same partition kernel as tasks on a
Dask distributed scheduler and merges on the client. Written ``engine: local``,
``engine: dask://host:8786`` or as a mapping ``{kind: dask, scheduler: tcp://host:8786}``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from mapper.core.errors import UsageError
from mapper.core.redact import quoted
from mapper.core.sizes import parse_size
from mapper.core.spec import keys
from mapper.core.spec._parse import Problems
from mapper.core.yamlload import LDict

#: Spans per partition by default: a partition's analysis peaks near 1 KB per span.
DEFAULT_PARTITION_SPANS = 1_000_000
#: A window whose spans fit this much memory (at :data:`BYTES_PER_SPAN`) is analysed whole,
#: in memory, as before; a larger one partition by partition.
DEFAULT_MEMORY_BUDGET = 1 << 30
#: Peak bytes per span of the in-memory path (measured: 920 MiB for 1,000,935 spans).
BYTES_PER_SPAN = 1000
#: Peak bytes per span of one partition's pass (above the map's fixed cost), with headroom:
#: measured 750-830 (linked 7-span items, 190k-380k-span partitions; benchmarks/map_limit.py).
#: A partition holds at most ``memory_budget / PARTITION_BYTES_PER_SPAN`` spans, and the
#: spool is spilled in pieces of at most half that, so a map peaks within its fixed cost
#: plus the budget.
PARTITION_BYTES_PER_SPAN = 1000
#: No partition is made smaller than this (a tiny budget would otherwise make thousands).
MIN_PARTITION_SPANS = 10_000
ENGINE_KINDS = ("local", "dask")


@dataclass(frozen=True)
class EngineSpec:
    kind: str = "local"
    scheduler: str | None = None  # dask: tcp://host:8786
    partition_spans: int = DEFAULT_PARTITION_SPANS
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    scratch: str | None = None  # where partitions are spilled (dask: storage every worker reads)

    @property
    def spans_per_partition(self) -> int:
        """Spans per partition: ``partition_spans``, made smaller when the memory budget
        would not hold a partition of that size (at :data:`PARTITION_BYTES_PER_SPAN`), so
        that the budget bounds the map's memory. A budget <= 0 (always partitioned) leaves
        ``partition_spans`` as given."""
        if self.memory_budget <= 0:
            return self.partition_spans
        floor = min(self.partition_spans, MIN_PARTITION_SPANS)
        return max(floor, min(self.partition_spans, self.memory_budget // PARTITION_BYTES_PER_SPAN))

    @property
    def label(self) -> str:
        return f"dask {self.scheduler}" if self.kind == "dask" else "local"


def is_url(path: str) -> bool:
    """Whether a traces path is an fsspec URL (``s3://bucket/spool``), not a local path."""
    return "://" in path


def scheduler_problem(address: str) -> str | None:
    """Why ``address`` (``tcp://host:port`` or ``tls://host:port``) is no Dask scheduler address,
    or None. Checked before Dask sees it: Dask's own parser raises on a missing or non-numeric
    port from deep inside the client, and a port it guesses is not one the user chose."""
    scheme, sep, rest = address.partition("://")
    if not sep or scheme not in ("tcp", "tls"):
        return "use tcp://host:8786 or tls://host:8786"
    host, colon, port = rest.rstrip("/").rpartition(":")
    if not colon:
        return "the address has no port (use tcp://host:8786)"
    if not host or host in ("[", "]"):
        return "the address has no host (use tcp://host:8786)"
    if not port.isdigit() or not 0 < int(port) < 65536:
        return f"port {quoted(port, 20)} is not a port number (1-65535)"
    if any(c.isspace() or c in "/?#@" for c in host):
        return f"host {quoted(host, 60)} is not a host name or address"
    return None


def parse_engine_text(text: str, where: str = "--engine") -> EngineSpec:
    """``local`` or ``dask://host:port`` (a UsageError otherwise)."""
    t = text.strip()
    if t == "local":
        return EngineSpec()
    address = "tcp://" + t.removeprefix("dask://") if t.startswith("dask://") else t
    if t.startswith(("dask://", "tcp://", "tls://")):
        problem = scheduler_problem(address)
        if problem is None:
            return EngineSpec(kind="dask", scheduler=address)
        raise UsageError(f"{where}: {quoted(text, 60)}: {problem}")
    raise UsageError(f"{where}: {quoted(text, 60)} is not an engine (use local or dask://host:8786)")


def with_engine(spec_engine: EngineSpec, text: str) -> EngineSpec:
    """The spec's engine with its kind and scheduler replaced by ``--engine``."""
    e = parse_engine_text(text)
    return replace(spec_engine, kind=e.kind, scheduler=e.scheduler)


def parse_engine(node: Any, line: int, p: Problems) -> EngineSpec:
    if isinstance(node, str):
        try:
            return parse_engine_text(node, "engine")
        except UsageError as err:
            p.add(line, "engine", str(err).removeprefix("engine: "))
            return EngineSpec()
    if not isinstance(node, LDict):
        p.add(line, "engine", "must be local, dask://host:8786 or {kind: dask, scheduler: tcp://host:8786}")
        return EngineSpec()
    for key in node:
        if key not in keys.ENGINE:
            p.add(node.line_of(key), f"engine.{key}", f"unknown key (allowed: {', '.join(keys.ENGINE)})")
    kind = node.get("kind", "local")
    if kind not in ENGINE_KINDS:
        p.add(node.line_of("kind"), "engine.kind", f"{kind!r} is not one of {', '.join(ENGINE_KINDS)}")
        kind = "local"
    scheduler = node.get("scheduler")
    if kind == "dask" and not (isinstance(scheduler, str) and "://" in scheduler):
        p.add(node.line_of("scheduler") if "scheduler" in node else line, "engine.scheduler",
              "dask needs a scheduler address like tcp://host:8786")
        scheduler = None
    elif kind == "dask" and isinstance(scheduler, str) and (problem := scheduler_problem(scheduler)):
        p.add(node.line_of("scheduler"), "engine.scheduler", f"{quoted(scheduler, 60)}: {problem}")
        scheduler = None
    spans = node.get("partition_spans", DEFAULT_PARTITION_SPANS)
    if not isinstance(spans, int) or isinstance(spans, bool) or spans < 1:
        p.add(node.line_of("partition_spans"), "engine.partition_spans", "must be a whole number >= 1")
        spans = DEFAULT_PARTITION_SPANS
    budget = DEFAULT_MEMORY_BUDGET
    if "memory_budget" in node:
        try:
            budget = parse_size(node["memory_budget"])
        except ValueError as err:
            p.add(node.line_of("memory_budget"), "engine.memory_budget", str(err))
    scratch = node.get("scratch")
    if scratch is not None and not isinstance(scratch, str):
        p.add(node.line_of("scratch"), "engine.scratch", "must be a directory path")
        scratch = None
    return EngineSpec(kind, scheduler if kind == "dask" else None, spans, budget, scratch)
