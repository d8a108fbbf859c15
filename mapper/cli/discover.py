"""``latmap discover``: what a Prometheus or a spool holds that can be mapped, and a starter
stream spec drafted from it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mapper import app, render
from mapper.cli.options import timeout_option
from mapper.cli.output import echo
from mapper.cli.parse import duration_of
from mapper.core.errors import UsageError
from mapper.core.files import write_atomic
from mapper.core.urls import check_http_url


@click.command("discover")
@click.option("--prometheus", metavar="URL", help="The Prometheus to look at.")
@click.option("--traces", "traces", metavar="PATH", help="A spool directory or OTLP trace files to look at.")
@click.option("--window", metavar="DURATION", default="24h", show_default=True,
              help="How far back to look for series and service-graph edges.")
@click.option("--write", "write", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write a starter stream spec (stream.yaml) to FILE; nothing else is written.")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True)
@timeout_option
def discover_command(prometheus: str | None, traces: str | None, window: str, write: str | None,
                     force: bool, fmt: str, timeout: float | None) -> None:
    """Find what can be mapped, and draft a stream spec from it.

    With --prometheus: the latency histograms it has (the chain from OpenTelemetry
    service-graph metrics when present). With --traces: the service graph of the spans.
    """
    length = duration_of(window, "--window")
    if (prometheus is None) == (traces is None):
        raise UsageError("give one of --prometheus URL, --traces PATH")
    if traces is not None:
        edges = app.pipeline.trace_graph(traces)
        if fmt == "json":
            echo(json.dumps([render.graph.edge_json(e) for e in edges], indent=2, sort_keys=True))
        else:
            echo(render.graph.edge_table(edges), nl=False)
        text = app.discover.starter_spec_from_traces(edges, traces)
    else:
        assert prometheus is not None
        check_http_url(prometheus, "--prometheus")
        found = app.discover.discover(prometheus, length or 86400.0, 30.0 if timeout is None else timeout)
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

