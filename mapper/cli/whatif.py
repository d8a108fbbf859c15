"""``latmap whatif``: the future state map. The end-to-end lead time after planned changes of
hops (remove, cap, scale, run in parallel), or a stage's wait at another number of workers
(``--workers STAGE=N``: an M/G/c queue model, checked against today's measured wait)."""

from __future__ import annotations

import click

from mapper import analysis, app, render
from mapper.cli.options import MapOptions, map_options
from mapper.cli.output import echo
from mapper.core.errors import UsageError
from mapper.core.files import dumps
from mapper.core.spec import StreamSpec


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
@click.option("--workers", "workers", multiple=True, metavar="STAGE=N",
              help="Answer with STAGE's utilisation at N workers and the wait an M/G/c queue model (Erlang C, "
                   "Allen-Cunneen) implies, beside the model and the measured wait at today's workers; "
                   "repeatable. Not with --hop or --change.")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True,
              help="What to print on stdout.")
def whatif_command(options: MapOptions, hop: str | None, scale: str | None, cap: str | None, remove: bool,
                   parallel: str | None, changes: tuple[str, ...], workers: tuple[str, ...], fmt: str) -> None:
    """Future state: the end-to-end lead time after planned changes of hops.

    Trace replay when the lead time comes from traces, else the convolution of the changed
    hop distributions (assuming independence). Without --hop or --change: the spec's
    planned changes (`future`).

    With --workers STAGE=N: the stage's utilisation at N workers and its wait by an M/G/c
    model (a model: said so, and shown beside the measured wait at today's workers).
    """
    spec = options.spec()
    names = [s.name for s in spec.stages]
    if workers:
        if hop is not None or changes or scale is not None or cap is not None or remove or parallel is not None:
            raise UsageError("--workers answers on its own: give it without --hop or --change")
        _workers(options, spec, [analysis.queueing.parse_workers(w, names) for w in workers], fmt)
        return
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


def _workers(options: MapOptions, spec: StreamSpec, asked: list[tuple[str, int]], fmt: str) -> None:
    """``--workers``: one answer per STAGE=N, from one map of the window."""
    lm = app.job.run_map(options.request(spec)).latency_map
    answers = [analysis.queueing.workers_answer(lm, stage, n) for stage, n in asked]
    if fmt == "json":
        echo(dumps({"workers": [render.queueing.workers_json(a) for a in answers]}), nl=False)
    else:
        echo("\n".join(render.queueing.workers_table(a) for a in answers), nl=False)
