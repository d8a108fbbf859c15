"""``latmap deps STAGE``: a stage's suppliers and consumers, with each hop's latency (the
inputs and outputs of a team)."""

from __future__ import annotations

import click

from mapper import app, render
from mapper.cli.options import MapOptions, map_options
from mapper.cli.output import echo
from mapper.core.errors import UsageError


@click.command("deps")
@click.argument("stage")
@map_options
def deps_command(stage: str, options: MapOptions) -> None:
    """Show STAGE's suppliers and consumers, with the latency of each hop.

    What a stage consumes and who consumes what it produces: the inputs and outputs of a team.
    """
    spec = options.spec()
    if stage not in {s.name for s in spec.stages}:
        raise UsageError(f"{stage!r} is not a stage of {options.config} "
                         f"(stages: {', '.join(s.name for s in spec.stages)})")
    lm = app.job.run_map(options.request(spec)).latency_map
    echo(render.report.dependencies(lm, stage), nl=False)
