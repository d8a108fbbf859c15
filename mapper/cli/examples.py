"""``latmap examples``: the items behind one percentile (trace ids, links, breakdown), for an
on-call engineer who wants them now."""

from __future__ import annotations

import click

from mapper import app, render
from mapper.cli.options import MapOptions, map_options
from mapper.cli.output import echo
from mapper.core.files import dumps


@click.command("examples")
@map_options
@click.option("--stage", metavar="STAGE", help="The stage (not needed for --part lead).")
@click.option("--part", type=click.Choice(("wait", "process", "hop", "lead")), required=True,
              help="wait or process of the stage, its hop (wait + process), or the lead time end to end.")
@click.option("--percentile", type=float, default=99.0, show_default=True, metavar="P",
              help="The percentile whose items to show, e.g. 99 or 99.9.")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True,
              help="What to print on stdout.")
def examples_command(options: MapOptions, stage: str | None, part: str, percentile: float, fmt: str) -> None:
    """The items behind a percentile: their trace ids, links into the trace viewer and breakdown.

    Items at or beyond the percentile's lower bound, spread over the window (`examples:
    {count: K}` in the spec, default 3), from traces, or from Prometheus exemplars; and
    median items for contrast. Links need `links:` in the spec.
    """
    doc = app.examples.examples(options.request(options.spec()), stage, part, percentile)
    echo(dumps(doc) if fmt == "json" else render.examples.examples_text(doc), nl=fmt == "json")
