"""``latmap``: the command line. It only parses arguments and calls the library.

Exit codes are decided in :func:`main` alone: 0 ok, 1 an objective is broken, 2 a usage,
config or source error. Errors are printed as one line each, never as a traceback
(``--debug`` shows the traceback of an unexpected error).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

import dashboards
from collectors import spool as spool_pkg
from mapper import analysis, app, demo, render
from mapper.core.durations import parse_duration, parse_time
from mapper.core.errors import LatmapError, UsageError
from mapper.core.files import dumps, write_atomic
from mapper.core.redact import RedactFilter, for_terminal
from mapper.core.sizes import parse_size
from mapper.core.spec import load_spec, with_live_series
from mapper.core.urls import check_http_url

EXIT_OK = 0
EXIT_OBJECTIVE_BROKEN = 1
EXIT_ERROR = 2

FORMATS = ("table", "json", "markdown")


def echo(text: str, err: bool = False, nl: bool = True) -> None:
    """Print as every line of latmap is printed: remembered secrets masked, control
    characters (terminal escapes) removed, whatever a source or a spec put in the text."""
    click.echo(for_terminal(text), err=err, nl=nl)


def exit_code(*, broken: bool, regressions: int = 0) -> int:
    """The one rule for a scheduler: 1 when an objective is broken or a regression was
    found, else 0 (errors are 2, decided in :func:`main`)."""
    return EXIT_OBJECTIVE_BROKEN if broken or regressions else EXIT_OK


def _render(fmt: str, lm: Any, found: Any) -> str:
    """The map and its findings as ``fmt`` (table, json or markdown) for stdout."""
    if fmt == "json":
        return dumps(render.report.to_json(lm, found))
    if fmt == "markdown":
        return str(render.report.to_markdown(lm, found))
    return str(render.report.to_table(lm, found))


def _duration(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as err:
        raise UsageError(f"{option}: {err}") from None
    if seconds <= 0:
        raise UsageError(f"{option}: must be > 0")
    return seconds


def _time(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as err:
        raise UsageError(f"{option}: {err}") from None


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int, str], None] | None]:
    """A progress bar on stderr for multi-query work, when stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    bar: Any = None

    def update(done: int, total: int, label: str) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label="querying", file=sys.stderr,
                                    show_pos=True, item_show_func=lambda _: label)
            bar.__enter__()
        bar.update(1)

    try:
        yield update
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


def _remember_timeout(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """``--timeout`` is kept in the context for :func:`load_spec_for_cli` (one place applies it)."""
    if value is not None:
        ctx.meta["latmap.timeout"] = _duration(value, "--timeout")


def _remember_engine(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """``--engine`` is kept in the context for :func:`load_spec_for_cli`, like ``--timeout``."""
    if value is not None:
        ctx.meta["latmap.engine"] = value


#: ``--engine`` for every command that maps a stream.
_engine_option = click.option(
    "--engine", metavar="ENGINE", expose_value=False, callback=_remember_engine,
    help="Where traces are analysed: local (default) or dask://host:8786 (overrides the spec's engine).")

#: ``--timeout`` for every command that talks to a source.
_timeout_option = click.option(
    "--timeout", metavar="DURATION", expose_value=False, callback=_remember_timeout,
    help="Per-request timeout of every source (default: each source's own, 30s).")


def _map_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command that maps a stream takes: the spec, a Prometheus URL
    override, the window's length and end, the sources' timeout."""
    command = _timeout_option(command)
    command = _engine_option(command)
    for option in reversed((
        click.option("-c", "--config", "config", required=True, type=click.Path(dir_okay=False),
                     help="The stream spec (stream.yaml)."),
        click.option("--prometheus", metavar="URL", help="Override the URL of every prometheus source."),
        click.option("--window", metavar="DURATION", help="Look-back, e.g. 24h, 90m (default: the spec's)."),
        click.option("--until", metavar="TIME", help="Window end: RFC 3339 or unix seconds (default: now)."),
    )):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="latency-mapper", prog_name="latmap")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, debug: bool) -> None:
    """latmap: a value stream map of your service chain, from measured telemetry.

    Per hop and end to end: p50/p99/p99.99 with sample counts and honest intervals,
    wait vs process time, lead time, flow efficiency and the bottleneck.
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), stream=sys.stderr,
                        format="latmap: %(levelname)s: %(message)s")
    logging.getLogger().setLevel(max(level, logging.DEBUG))  # also when a handler was already there
    for handler in logging.getLogger().handlers:  # every log line of every module: secrets masked
        if not any(isinstance(f, RedactFilter) for f in handler.filters):
            handler.addFilter(RedactFilter())
    ctx.obj = {"debug": debug}


@cli.command("map")
@_map_options
@click.option("--out", metavar="DIR", type=click.Path(file_okay=False),
              help="Also write report.json and report.md into DIR.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="What to print on stdout.")
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
@click.option("--baseline", metavar="REPORT", type=click.Path(dir_okay=False),
              help="Compare with a previous report.json (default: the spec's pinned baseline, if any).")
def map_command(config: str, prometheus: str | None, window: str | None, until: str | None,
                out: str | None, fmt: str, no_progress: bool, baseline: str | None) -> None:
    """Map a value stream: query its sources and print the latency map.

    Exits 1 when an objective of the spec is broken, 2 on a config or source error.
    """
    length = _duration(window, "--window")
    end = _time(until, "--until")
    spec = load_spec_for_cli(config, prometheus)
    with _progress(not no_progress) as progress:
        lm = app.job.run_map(app.job.MapRequest(spec, length=length, until=end, progress=progress)).latency_map
    found = app.budgets.with_budgets(lm, analysis.findings.find(lm, baseline))
    if out:
        for path in app.pipeline.write_reports(lm, out, found):
            echo(f"wrote {path}", err=True)
    echo(_render(fmt, lm, found), nl=False)
    raise SystemExit(exit_code(broken=lm.broken))


@cli.command("report")
@_map_options
@click.option("--out", metavar="DIR", type=click.Path(file_okay=False),
              help="Write report.json, report.md, report.html and map.svg into DIR.")
@click.option("--history", "history", metavar="DIR", type=click.Path(file_okay=False),
              help="Keep dated runs in DIR/<stream>/<YYYY-MM-DD>/, with latest and index.html.")
@click.option("--keep", metavar="DAYS", type=click.IntRange(min=0), default=30, show_default=True,
              help="With --history: remove runs older than DAYS days (0: keep all).")
@click.option("--baseline", metavar="REPORT", type=click.Path(dir_okay=False),
              help="Compare with a pinned report.json (default: the spec's pinned baseline, if any).")
@click.option("--pushgateway", metavar="URL", help="Also push the run's percentiles to a Pushgateway.")
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
def report_command(config: str, prometheus: str | None, window: str | None, until: str | None,
                   out: str | None, history: str | None, keep: int, baseline: str | None,
                   pushgateway: str | None, no_progress: bool) -> None:
    """Map the stream and write the reports; with --history, keep a dated run and compare it
    with the previous one.

    Exits 1 when an objective is broken or a regression is found, 2 on an error.
    """
    if (out is None) == (history is None):
        raise UsageError("report: give exactly one of --out DIR or --history DIR")
    if pushgateway:
        check_http_url(pushgateway, "--pushgateway")
    length = _duration(window, "--window")
    end = _time(until, "--until")
    spec = load_spec_for_cli(config, prometheus)
    with _progress(not no_progress) as progress:
        lm = app.job.run_map(app.job.MapRequest(spec, length=length, until=end, progress=progress)).latency_map
    if history is not None:
        try:
            record = app.history.record_run(
                lm, lambda m: app.budgets.with_budgets(m, analysis.findings.find(m, baseline)), history, keep)
        except OSError as err:
            raise LatmapError(f"{err.filename or history}: cannot write the history: "
                              f"{err.strerror or err}; earlier runs are untouched") from err
        echo(f"wrote {record.path}", err=True)
        regressions = tuple(record.regressions)
    else:
        found = app.budgets.with_budgets(lm, analysis.findings.find(lm, baseline))
        for path in app.pipeline.write_reports(lm, out or ".", found):
            echo(f"wrote {path}", err=True)
        regressions = found.comparison.regressions if found.comparison else ()
    for line in render.verdict.failure_lines(lm, regressions):
        echo(line, err=True)
    if pushgateway:
        app.pushgw.push_run(lm, pushgateway, timeout=click.get_current_context().meta.get("latmap.timeout", 30.0))
    raise SystemExit(exit_code(broken=lm.broken, regressions=len(regressions)))


@cli.command("discover")
@click.option("--prometheus", metavar="URL", help="The Prometheus to look at.")
@click.option("--traces", "traces", metavar="PATH", help="A spool directory or OTLP trace files to look at.")
@click.option("--window", metavar="DURATION", default="24h", show_default=True,
              help="How far back to look for series and service-graph edges.")
@click.option("--write", "write", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write a starter stream.yaml to FILE.")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True)
@_timeout_option
def discover_command(prometheus: str | None, traces: str | None, window: str, write: str | None,
                     force: bool, fmt: str) -> None:
    """Find what can be mapped, and draft a stream spec from it.

    With --prometheus: the latency histograms it has (the chain from OpenTelemetry
    service-graph metrics when present). With --traces: the service graph of the spans.
    """
    length = _duration(window, "--window")
    if (prometheus is None) == (traces is None):
        raise UsageError("give one of --prometheus URL, --traces PATH")
    if traces is not None:
        edges = app.pipeline.trace_graph(traces)
        if fmt == "json":
            echo(json.dumps([{"client": e.client, "server": e.server, "connection_type": e.connection_type,
                                    "count": e.count} for e in edges], indent=2, sort_keys=True))
        else:
            echo(app.discover.graph_table(edges), nl=False)
        text = app.discover.starter_spec_from_traces(edges, traces)
    else:
        assert prometheus is not None
        check_http_url(prometheus, "--prometheus")
        found = app.discover.discover(prometheus, length or 86400.0,
                                      click.get_current_context().meta.get("latmap.timeout", 30.0))
        if fmt == "json":
            echo(json.dumps(found.to_json(), indent=2, sort_keys=True))
        else:
            echo(found.to_table(), nl=False)
        text = app.discover.starter_spec(found, prometheus)
    if write:
        path = Path(write)
        if path.exists() and not force:
            raise UsageError(f"{path}: exists; use --force to overwrite")
        write_atomic(path, text)
        echo(f"wrote {path}", err=True)


@cli.command("serve")
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
@click.option("--decode-workers", type=click.IntRange(min=0), default=None,
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
    keep = _duration(retention, "--retention") if retention not in ("0", "0s") else None
    limits = spool_pkg.store.SpoolLimits(max_disk_bytes=_size(max_disk, "--max-disk"),
                         retention_days=None if keep is None else keep / 86400, writer_id=writer_id)

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
        http_limits=spool_pkg.receiver.HttpLimits(max_connections=max_connections))
    if not streams:
        spool_pkg.receiver.serve_forever(spool, limits=limits, **common)
        return
    try:
        store_limits = analysis.live.StoreLimits(
            ttl=_duration(live_ttl, "--live-ttl") or 0.0, settle=_duration(live_settle, "--live-settle") or 0.0,
            max_items=live_max_items, max_spans=live_max_spans)
    except ValueError as err:
        raise UsageError(f"--live-ttl/--live-settle: {err}") from None
    app.live.serve(spool, streams, limits=store_limits, max_label_values=live_label_limit,
                   spool_limits=limits, **common)


def _size(text: str, option: str) -> int:
    """Bytes from ``10GiB``, ``500MB``, ``1048576``."""
    try:
        return parse_size(text)
    except ValueError as err:
        raise UsageError(f"{option}: {err}") from None


@cli.command("deps")
@click.argument("stage")
@_map_options
def deps_command(stage: str, config: str, prometheus: str | None, window: str | None, until: str | None) -> None:
    """Show STAGE's suppliers and consumers, with the latency of each hop.

    What a stage consumes and who consumes what it produces: the inputs and outputs of a team.
    """
    spec = load_spec_for_cli(config, prometheus)
    if stage not in {s.name for s in spec.stages}:
        raise UsageError(f"{stage!r} is not a stage of {config} (stages: {', '.join(s.name for s in spec.stages)})")
    lm = app.job.run_map(app.job.MapRequest(spec, length=_duration(window, "--window"),
                                            until=_time(until, "--until"))).latency_map
    echo(render.report.dependencies(lm, stage), nl=False)


@cli.command("examples")
@_map_options
@click.option("--stage", metavar="STAGE", help="The stage (not needed for --part lead).")
@click.option("--part", type=click.Choice(("wait", "process", "hop", "lead")), required=True,
              help="wait or process of the stage, its hop (wait + process), or the lead time end to end.")
@click.option("--percentile", type=float, default=99.0, show_default=True, metavar="P",
              help="The percentile whose items to show, e.g. 99 or 99.9.")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True,
              help="What to print on stdout.")
def examples_command(config: str, prometheus: str | None, window: str | None, until: str | None,
                     stage: str | None, part: str, percentile: float, fmt: str) -> None:
    """The items behind a percentile: their trace ids, links into the trace viewer and breakdown.

    Items at or beyond the percentile's lower bound, spread over the window (`examples:
    {count: K}` in the spec, default 3), from traces, or from Prometheus exemplars; and
    median items for contrast. Links need `links:` in the spec.
    """
    spec = load_spec_for_cli(config, prometheus)
    request = app.job.MapRequest(spec, length=_duration(window, "--window"), until=_time(until, "--until"))
    doc = app.examples.examples(request, stage, part, percentile)
    echo(dumps(doc) if fmt == "json" else render.examples.examples_text(doc), nl=fmt == "json")


@cli.command("whatif")
@_map_options
@click.option("--hop", metavar="STAGE", help="The hop to change, with one of --scale, --cap, --remove, --parallel.")
@click.option("--scale", metavar="FACTOR", help="Multiply the hop's durations by FACTOR (>= 0).")
@click.option("--cap", metavar="DURATION", help="Cap the hop's durations at DURATION (e.g. 20ms).")
@click.option("--remove", is_flag=True, help="Remove the hop.")
@click.option("--parallel", metavar="STAGE", help="Run the hop in parallel with STAGE.")
@click.option("--change", "changes", multiple=True, metavar="HOP:KIND[=VALUE]",
              help="A change; repeatable, applied in order: alerting:scale=0.5, notification:cap=200ms, "
                   "x:remove, x:parallel=y.")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True,
              help="What to print on stdout.")
def whatif_command(config: str, prometheus: str | None, window: str | None, until: str | None,
                   hop: str | None, scale: str | None, cap: str | None, remove: bool, parallel: str | None,
                   changes: tuple[str, ...], fmt: str) -> None:
    """Future state: the end-to-end lead time after planned changes of hops.

    Trace replay when the lead time comes from traces, else the convolution of the changed
    hop distributions (assuming independence). Without --hop or --change: the spec's
    planned changes (`future`).
    """
    spec = load_spec_for_cli(config, prometheus)
    names = [s.name for s in spec.stages]
    planned = []
    if hop is not None:
        planned.append(analysis.whatif.change_of(hop, names, scale=scale, cap=cap, remove=remove, parallel=parallel))
    elif scale is not None or cap is not None or remove or parallel is not None:
        raise UsageError("--scale, --cap, --remove and --parallel need --hop STAGE")
    planned += [analysis.whatif.parse_change(text, names) for text in changes]
    if not planned and not spec.future:
        raise UsageError("no change: give --hop STAGE with --scale/--cap/--remove/--parallel, or --change, "
                         "or plan changes under `future` in the spec")
    lm = app.job.run_map(app.job.MapRequest(spec, length=_duration(window, "--window"),
                                            until=_time(until, "--until"))).latency_map
    fs = analysis.whatif.future_state(lm, planned or spec.future)
    if fmt == "json":
        echo(dumps(render.sections.future_json(fs, spec.percentiles)), nl=False)
    else:
        echo(render.sections.future_table(fs, spec.percentiles), nl=False)


@cli.command("budgets")
@_map_options
@click.option("--format", "fmt", type=click.Choice(("table", "json", "yaml")), default="table", show_default=True,
              help="What to print on stdout.")
@click.option("--write", "write", is_flag=True,
              help="Add the budgets to the spec as each stage's objectives (comments and order kept).")
def budgets_command(config: str, prometheus: str | None, window: str | None, until: str | None,
                    fmt: str, write: bool) -> None:
    """Per-hop budgets: split the end-to-end objective into one threshold per hop.

    If every hop stays within its budget, the end-to-end objective holds (union bound; verified
    by trace replay or convolution with every hop capped). Exits 2 when no split can be shown
    to hold, 1 when a hop is already over its budget.
    """
    spec = load_spec_for_cli(config, prometheus)
    lm = app.job.run_map(app.job.MapRequest(spec, length=_duration(window, "--window"),
                                            until=_time(until, "--until"))).latency_map
    plans = analysis.budgets.plan_budgets(lm)
    if fmt == "json":
        echo(dumps(render.budgets.budgets_json(plans)), nl=False)
    elif fmt == "yaml":
        echo(render.budgets.budgets_yaml(plans), nl=False)
    else:
        echo(render.budgets.budgets_table(plans), nl=False)
    failed = [p for p in plans if not p.feasible or not p.holds]
    for p in failed:
        echo(f"latmap: error: {p.objective.place}: objectives.end_to_end: no budget split can be shown "
                   f"to meet {p.objective.label} <= {p.objective.threshold:g}s (see the checks above)", err=True)
    if failed:
        raise SystemExit(EXIT_ERROR)
    if write:
        echo(f"wrote {app.budgets.write_budgets(config, plans)}", err=True)
    raise SystemExit(exit_code(broken=any(h.over for p in plans for h in p.budgets)))


@cli.command("buckets")
@_map_options
@click.option("--width", default="5%", show_default=True,
              help="The widest interval to accept, as a share of each percentile's value (5% or 0.05).")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True)
def buckets_command(config: str, prometheus: str | None, window: str | None, until: str | None,
                    width: str, fmt: str) -> None:
    """Bucket advice: the fewest bounds putting one on every objective and budget threshold and
    making each asked percentile's interval narrower than --width, with ready snippets."""
    text = width.strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise UsageError(f"--width: not a share like 5% or 0.05: {width!r}") from None
    if not 0 < share < 1:
        raise UsageError(f"--width: must be between 0% and 100%, got {width!r}")
    spec = load_spec_for_cli(config, prometheus)
    lm = app.job.run_map(app.job.MapRequest(spec, length=_duration(window, "--window"),
                                            until=_time(until, "--until"))).latency_map
    advice = analysis.buckets.advise(lm, share, app.budgets.budget_thresholds(lm))
    if fmt == "json":
        echo(dumps(render.buckets.buckets_json(advice)), nl=False)
    else:
        echo(render.buckets.buckets_table(advice, share), nl=False)


@cli.command("dashboards")
@click.option("-c", "--config", "config", required=True, type=click.Path(dir_okay=False),
              help="The stream spec (stream.yaml).")
@click.option("--out", metavar="DIR", type=click.Path(file_okay=False),
              help="Write DIR/dashboards/<uid>.json, DIR/rules/<stream>.rules.yml, DIR/provisioning/.")
@click.option("--prometheus", metavar="URL", default=None,
              help="Prometheus for the data source and --check (default: the spec's source).")
@click.option("--check", is_flag=True,
              help="Also run every generated query against Prometheus; exit 2 if one returns nothing.")
@click.option("--push", "push_url", metavar="URL", help="Upsert through Grafana's HTTP API at URL.")
@click.option("--token-env", metavar="VAR", help="Grafana token (service account) from env var VAR.")
@click.option("--token-file", metavar="FILE", help="Grafana token from FILE.")
@click.option("--folder", metavar="NAME", help="Grafana folder title (created if missing; default: General).")
@click.option("--force", is_flag=True, help="Overwrite a dashboard with the same uid that is not tagged latmap.")
@_timeout_option
def dashboards_command(config: str, out: str | None, prometheus: str | None, check: bool, push_url: str | None,
                       token_env: str | None, token_file: str | None, folder: str | None, force: bool) -> None:
    """Write the stream's Grafana dashboard, recording rules and provisioning files.

    Works offline from the spec; --check needs the Prometheus source to be up; --push
    upserts the dashboard through Grafana's HTTP API (idempotent, refuses foreign ones).
    """
    if not out and not push_url and not check:
        raise UsageError("give --out DIR, --push URL or --check")
    if push_url:
        check_http_url(push_url, "--push")
    if (token_env or token_file or folder or force) and not push_url:
        raise UsageError("--token-env/--token-file/--folder/--force need --push URL")
    spec = load_spec_for_cli(config, prometheus, live=True)
    dashboard, missing = dashboards.grafana.build_dashboard(spec)
    for item in missing:
        where = f" ({item.place})" if item.place else ""
        echo(f"latmap: not dashboardable: {item.what}{where}: {item.reason}", err=True)
    if out:
        for path in dashboards.provisioning.write_provisioning(spec, out, prometheus):
            echo(str(path))
    if push_url:
        check_http_url(push_url, "--push")
        result = dashboards.push.push_dashboard(push_url, dashboard, folder,
                                                dashboards.push.token_from(token_env, token_file), force=force,
                                message=f"latmap: {spec.name} from {Path(config).name}",
                                timeout=click.get_current_context().meta.get("latmap.timeout", 30.0))
        echo(f"grafana: {result.uid} {result.status}"
                   + (f" (version {result.version})" if result.version is not None else ""), err=True)
    if check:
        problems = dashboards.provisioning.check_queries(spec, prometheus)
        for line in problems:
            echo(f"latmap: check: {line}", err=True)
        if problems:
            raise SystemExit(EXIT_ERROR)


@cli.command("rules")
@click.option("-c", "--config", "config", required=True, metavar="FILE", type=click.Path(dir_okay=False),
              help="The stream spec (stream.yaml).")
@click.option("--out", metavar="FILE", help="Write the rule file here (default: stdout).")
@click.option("--rate-window", default="5m", show_default=True, help="Range of rate() in the recorded series.")
@click.option("--interval", default=None, help="Rule group evaluation interval (default: Prometheus's global).")
@click.option("--alerts", is_flag=True,
              help="Also burn-rate alerts for every stage objective (multi-window, multi-burn-rate); needs the "
                   "histograms' bucket bounds from Prometheus.")
@click.option("--prometheus", metavar="URL", help="Where to read the bucket bounds (default: the spec's source).")
@click.option("--period", default="30d", show_default=True, help="The error budget's window (--alerts).")
@click.option("--burn", "burns", multiple=True, metavar="SEVERITY:SHARE:LONG:SHORT",
              help="A burn window instead of the defaults (repeatable): alert at SEVERITY when SHARE of the "
                   "budget burns in LONG, over LONG and SHORT: page:2%:1h:5m page:5%:6h:30m ticket:10%:3d:6h.")
@click.option("--tests", "tests_out", metavar="FILE",
              help="With --alerts: also write a `promtool test rules` file (default: next to --out, .test.yml).")
def rules_command(config: str, out: str | None, rate_window: str, interval: str | None, alerts: bool,
                  prometheus: str | None, period: str, burns: tuple[str, ...], tests_out: str | None) -> None:
    """Write Prometheus recording rules: per-hop bucket rates and percentiles (and, with
    --alerts, burn-rate alerts for the objectives, with promtool unit tests)."""
    spec = load_spec_for_cli(config, prometheus, live=True)
    text = dashboards.rules.render_rules(spec, rate_window=_duration(rate_window, "--rate-window") or 300.0,
                        interval=_duration(interval, "--interval"))
    for line in dashboards.rules.not_recordable(spec):
        echo(f"latmap: not recordable: {line}", err=True)
    test_doc = None
    if alerts:
        policy = dashboards.alerts.Policy(period=_duration(period, "--period") or 30 * 86400.0)
        if burns:
            policy = dashboards.alerts.Policy(policy.period, tuple(_burn(text) for text in burns))
        layouts = dashboards.alerts.fetch_layouts(spec, time.time())
        targets, checks = dashboards.alerts.alert_targets(spec, layouts)
        for c in checks:
            echo(f"latmap: check: {c.code}: {c.message}", err=True)
        text = dashboards.alerts.with_alert_group(text, dashboards.alerts.alert_group(spec, targets, policy),
                                                  dashboards.alerts.not_alertable(checks))
        if out or tests_out:
            rule_file = Path(out).name if out else "rules.yml"
            test_doc = dashboards.alerts.promtool_tests(spec, targets, rule_file, policy)
    if out:
        write_atomic(Path(out), text)
        echo(f"wrote {out}", err=True)
    else:
        echo(text, nl=False)
    if test_doc is not None:
        target = Path(tests_out) if tests_out else Path(str(out)).with_suffix(".test.yml")
        write_atomic(target, dashboards.alerts.to_yaml(test_doc))
        echo(f"wrote {target}", err=True)


def _burn(text: str) -> Any:
    """``page:2%:1h:5m`` as a burn window (``--burn``)."""
    fields = text.split(":")
    if len(fields) != 4 or not fields[0].isidentifier() or not fields[1].endswith("%"):
        raise UsageError(f"--burn {text!r}: use SEVERITY:SHARE%:LONG:SHORT, like page:2%:1h:5m")
    try:
        share = float(fields[1][:-1]) / 100
    except ValueError:
        raise UsageError(f"--burn {text!r}: {fields[1]!r} is not a share like 2%") from None
    if not 0 < share <= 1:
        raise UsageError(f"--burn {text!r}: the share must be in (0%, 100%]")
    long, short = _duration(fields[2], "--burn") or 0.0, _duration(fields[3], "--burn") or 0.0
    if short >= long:
        raise UsageError(f"--burn {text!r}: the short window must be shorter than the long one")
    return dashboards.alerts.BurnWindow(fields[0], share, long, short)


def load_spec_for_cli(config: str, prometheus: str | None, live: bool = False) -> Any:
    """The spec, with ``--prometheus`` (refused with credentials in it) and ``--timeout`` applied;
    ``live``: traced stages read from ``latmap serve --stream``'s series (dashboards, rules)."""
    if prometheus is not None:
        check_http_url(prometheus, "--prometheus")
    spec = load_spec(config)
    spec = with_live_series(spec) if live else spec
    spec = spec.with_source_url("prometheus", prometheus) if prometheus else spec
    ctx = click.get_current_context(silent=True)
    timeout = ctx.meta.get("latmap.timeout") if ctx is not None else None
    engine = ctx.meta.get("latmap.engine") if ctx is not None else None
    spec = spec.with_engine(engine) if engine else spec
    return spec.with_timeout(timeout) if timeout else spec


@cli.command("demo")
@click.option("--out", metavar="DIR", default="latmap-demo", show_default=True,
              type=click.Path(file_okay=False), help="Where to write stream.yaml and the reports.")
@click.option("--mode", type=click.Choice(("auto", "prometheus", "scrape")), default="auto",
              show_default=True,
              help="prometheus: backfill a real local Prometheus; scrape: read a /metrics endpoint.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the simulation.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def demo_command(out: str, mode: str, seed: int, fmt: str) -> None:
    """Map a simulated trading chain (market data -> alerting -> notification).

    Needs no server: uses a local `prometheus` binary when there is one, else a
    loopback /metrics endpoint. Writes stream.yaml, report.json and report.md.
    """
    if mode == "prometheus" and not demo.localprom.binaries_available():
        raise UsageError("--mode prometheus: no prometheus/promtool on PATH (apt-get install prometheus)")
    echo(f"latmap demo: simulating a day of the trading chain (mode: {mode})", err=True)
    run = demo.run.run_demo(out, mode=mode, seed=seed)
    echo(_render(fmt, run.latency_map, run.findings), nl=False)
    echo(f"latmap demo: mapped through {run.mode}; outputs: "
               + ", ".join(str(p) for p in run.outputs), err=True)


def _more_verbose(ctx: click.Context, _param: click.Parameter, count: int) -> None:
    """``-v`` after the subcommand (``latmap map -v``) adds to ``latmap -v map``."""
    if count:
        total = ctx.find_root().params.get("verbose", 0) + count
        logging.getLogger().setLevel(max(logging.WARNING - 10 * total, logging.DEBUG))


for _command in cli.commands.values():
    _command.params.append(click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=_more_verbose,
                                        help="More log output on stderr (-vv for debug)."))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 objective broken, 2 error)."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rv = cli.main(args=argv, prog_name="latmap", standalone_mode=False)
        return rv if isinstance(rv, int) else EXIT_OK
    except SystemExit as done:
        return int(done.code or 0)
    except click.exceptions.Abort:
        echo("latmap: aborted", err=True)
        return EXIT_ERROR
    except click.ClickException as err:
        err.show()
        return EXIT_ERROR
    except LatmapError as err:
        for line in str(err).splitlines() or ["error"]:
            echo(f"latmap: error: {line}", err=True)
        return err.exit_code
    except KeyboardInterrupt:
        echo("latmap: interrupted", err=True)
        return EXIT_ERROR
    except Exception as err:
        if debug:
            raise
        echo(f"latmap: internal error: {type(err).__name__}: {err} "
                   "(a bug in latmap; rerun with --debug and report it)", err=True)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
