"""``latmap whatif``: the future state map. The end-to-end lead time after planned changes of
hops (remove, cap, scale, run in parallel)."""

from __future__ import annotations

import click

from mapper import analysis, app, render
from mapper.cli.options import MapOptions, map_options
from mapper.cli.output import echo
from mapper.core.errors import UsageError
from mapper.core.files import dumps


@click.command("whatif")
@map_options
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
def whatif_command(options: MapOptions, hop: str | None, scale: str | None, cap: str | None, remove: bool,
                   parallel: str | None, changes: tuple[str, ...], fmt: str) -> None:
    """Future state: the end-to-end lead time after planned changes of hops.

    Trace replay when the lead time comes from traces, else the convolution of the changed
    hop distributions (assuming independence). Without --hop or --change: the spec's
    planned changes (`future`).
    """
    spec = options.spec()
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
    lm = app.job.run_map(options.request(spec)).latency_map
    fs = analysis.whatif.future_state(lm, planned or spec.future)
    if fmt == "json":
        echo(dumps(render.sections.future_json(fs, spec.percentiles)), nl=False)
    else:
        echo(render.sections.future_table(fs, spec.percentiles), nl=False)
