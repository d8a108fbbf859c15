"""``latmap serve``: the OTLP receiver (HTTP and gRPC) writing spans into a durable spool,
and, with ``--stream``, the live value stream's histograms on ``/metrics``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from collectors import spool as spool_pkg
from mapper import analysis, app
from mapper.cli.output import echo
from mapper.cli.parse import duration_of, size_of
from mapper.core.durations import parse_duration
from mapper.core.errors import UsageError

T = TypeVar("T")


#: A smaller spool refuses nearly every export (a record of a few spans is a few KiB).
MIN_DISK_BYTES = 1 << 20
#: The option that sets each limit field (the limits name their fields when they refuse one).
_FLAGS = {"max_disk_bytes": "--max-disk", "retention_days": "--retention", "max_connections": "--max-connections",
          "ttl": "--live-ttl", "settle": "--live-settle", "max_items": "--live-max-items",
          "max_spans": "--live-max-spans", "decode_workers": "--decode-workers"}


def _is_zero(text: str) -> bool:
    """``0``, ``0s``, ``0d`` ...: a duration of no time (``--retention 0``: keep everything)."""
    try:
        return parse_duration(text) == 0
    except ValueError:
        return False


def _limits(cls: Callable[..., T], **values: Any) -> T:
    """``cls(**values)``, a limit it refuses as a UsageError naming the option."""
    try:
        return cls(**values)
    except ValueError as err:  # a LimitError (imported lazily with the spool): it names the field
        field = getattr(err, "field", None)
        if field is None:
            raise
        raise UsageError(f"{_FLAGS.get(field, field)}: {getattr(err, 'reason', err)}") from None


@click.command("serve")
@click.option("--spool", required=True, metavar="DIR", type=click.Path(file_okay=False),
              help="The span spool: write-ahead segments and hive-partitioned Parquet.")
@click.option("--http", "http", default="127.0.0.1:4318", show_default=True, metavar="HOST:PORT",
              help="OTLP/HTTP listener ('off' to disable).")
@click.option("--grpc", "grpc_addr", default="127.0.0.1:4317", show_default=True, metavar="HOST:PORT",
              help="OTLP/gRPC listener ('off' to disable).")
@click.option("--token-env", metavar="VAR", help="Require this bearer token, read from env var VAR.")
@click.option("--token-file", metavar="FILE", help="Require the bearer token in FILE.")
@click.option("--max-disk", "max_disk", default="10GiB", show_default=True, metavar="SIZE",
              help="Refuse spans (429/503 with Retry-After) beyond this much spool on disk.")
@click.option("--retention", default="7d", show_default=True, metavar="DURATION",
              help="Drop spool data older than this ('0' keeps everything).")
@click.option("--decode-workers", type=click.IntRange(min=0, max=256), default=None,
              help="Decoding processes (default: one per CPU; 0 decodes in the server process).")
@click.option("--writer-id", metavar="ID",
              help="This receiver's id among several sharing one spool directory (replicas behind a load "
                   "balancer; e.g. the pod name): its own lock, segments and compaction. Default: the only writer.")
@click.option("--metrics-token/--metrics-public", "metrics_token", default=False, show_default=True,
              help="Whether GET /metrics asks the bearer token too. Public by default, on purpose: it "
                   "holds the receiver's counters, never span data, and scrapers rarely carry the token.")
@click.option("--stream", "streams", multiple=True, metavar="SPEC", type=click.Path(dir_okay=False),
              help="A stream spec whose `traces:` stages to measure live: per-stage wait, process and "
                   "lead-time histograms on /metrics (repeatable; SIGHUP reloads the specs).")
@click.option("--live-ttl", default="10s", show_default=True, metavar="DURATION",
              help="With --stream: drop an item still incomplete after this long (counted).")
@click.option("--live-settle", default="1s", show_default=True, metavar="DURATION",
              help="With --stream: emit a complete item once no span of it arrived for this long.")
@click.option("--live-max-items", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="With --stream: open items held per stream; the oldest beyond are dropped (counted).")
@click.option("--live-max-spans", type=click.IntRange(min=1), default=200_000, show_default=True,
              help="With --stream: spans held per stream, each with its span links (memory bound); the oldest "
                   "items beyond are dropped.")
@click.option("--live-label-limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="With --stream: distinct values per segment label; later ones become __other__ (counted).")
@click.option("--max-connections", type=click.IntRange(min=1), default=256, show_default=True,
              help="OTLP/HTTP connections or requests in flight; past it a new request is answered 503.")
def serve_command(spool: str, http: str, grpc_addr: str, token_env: str | None, token_file: str | None,
                  max_disk: str, retention: str, decode_workers: int | None, metrics_token: bool,
                  streams: tuple[str, ...], live_ttl: str, live_settle: str, live_max_items: int,
                  live_max_spans: int, live_label_limit: int, max_connections: int,
                  writer_id: str | None) -> None:
    """Receive OTLP traces (HTTP on 4318, gRPC on 4317) into a durable spool.

    Every span acknowledged is on disk (fsync before the answer). Listens on loopback unless
    told otherwise; stops cleanly on SIGTERM or Ctrl-C. /metrics on the HTTP port shows the
    receiver's own health and, with --stream, the live value stream's histograms.
    """
    if metrics_token and not (token_env or token_file):
        raise UsageError("--metrics-token needs --token-env VAR or --token-file FILE")
    disk = size_of(max_disk, "--max-disk")
    if disk < MIN_DISK_BYTES:
        raise UsageError(f"--max-disk: {max_disk} is under {MIN_DISK_BYTES >> 20} MiB: the spool would refuse "
                         "nearly every export")
    keep = None if _is_zero(retention) else duration_of(retention, "--retention")
    limits = _limits(spool_pkg.store.SpoolLimits, max_disk_bytes=disk,
                     retention_days=None if keep is None else keep / 86400, writer_id=writer_id)
    http_limits = _limits(spool_pkg.receiver.HttpLimits, max_connections=max_connections)
    store_limits = None
    if streams:
        store_limits = _limits(analysis.live.StoreLimits, ttl=duration_of(live_ttl, "--live-ttl"),
                               settle=0.0 if _is_zero(live_settle) else duration_of(live_settle, "--live-settle"),
                               max_items=live_max_items, max_spans=live_max_spans)

    def ready(receiver: Any) -> None:
        echo(f"latmap serve: OTLP/HTTP port {receiver.http_port or 'off'}, OTLP/gRPC port "
             f"{receiver.grpc_port or 'off'}, spool {spool}", err=True)
        moved = receiver.spool.quarantined_at_open
        if moved:
            echo(f"latmap serve: {len(moved)} damaged spool segment(s) moved aside to "
                 f"{Path(spool) / '_wal' / 'quarantine'}: {', '.join(moved[:10])}"
                 f"{' ...' if len(moved) > 10 else ''}; the rest of the spool is served", err=True)
        if (token_env or token_file) and not metrics_token and receiver.http_port:
            echo("latmap serve: /metrics needs no token (--metrics-public, the default; --metrics-token "
                 "asks for it)", err=True)
        if streams:
            echo(f"latmap serve: live value stream of {', '.join(streams)} on /metrics", err=True)

    common: dict[str, Any] = dict(
        http=None if http == "off" else http, grpc=None if grpc_addr == "off" else grpc_addr,
        token_env=token_env, token_file=token_file, decode_workers=decode_workers,
        metrics_public=not metrics_token, on_ready=ready,
        http_limits=http_limits)
    if store_limits is None:
        spool_pkg.receiver.serve_forever(spool, limits=limits, **common)
        return
    app.live.serve(spool, streams, limits=store_limits, max_label_values=live_label_limit,
                   spool_limits=limits, **common)
