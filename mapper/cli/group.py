"""The ``latmap`` group: the options before the command (``-v``, ``--debug``, ``--version``)
and the logging every command shares (stderr, secrets masked)."""

from __future__ import annotations

import logging
import sys

import click

from mapper.core.redact import RedactFilter


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


def _more_verbose(ctx: click.Context, _param: click.Parameter, count: int) -> None:
    """``-v`` after the subcommand (``latmap map -v``) adds to ``latmap -v map``."""
    if count:
        total = ctx.find_root().params.get("verbose", 0) + count
        logging.getLogger().setLevel(max(logging.WARNING - 10 * total, logging.DEBUG))


def add_command(command: click.Command) -> None:
    """Put ``command`` under ``latmap``, with the ``-v`` it takes after its name too."""
    command.params.append(click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=_more_verbose,
                                       help="More log output on stderr (-vv for debug)."))
    cli.add_command(command)
