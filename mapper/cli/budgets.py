"""``latmap budgets``: split the end-to-end objective into one budget per hop (and, with
``--write``, add them to the spec as each stage's objectives)."""

from __future__ import annotations

import click

from mapper import analysis, app, render
from mapper.cli.options import MapOptions, map_options
from mapper.cli.output import EXIT_ERROR, echo, exit_code
from mapper.core.files import dumps


@click.command("budgets")
@map_options
@click.option("--format", "fmt", type=click.Choice(("table", "json", "yaml")), default="table", show_default=True,
              help="What to print on stdout.")
@click.option("--write", "write", is_flag=True,
              help="Rewrite the spec file (-c FILE) in place with the budgets as each stage's objectives "
                   "(comments and order kept); nothing else is written.")
def budgets_command(options: MapOptions, fmt: str, write: bool) -> None:
    """Per-hop budgets: split the end-to-end objective into one threshold per hop.

    If every hop stays within its budget, the end-to-end objective holds (union bound; verified
    by trace replay or convolution with every hop capped). Exits 2 when no split can be shown
    to hold, 1 when a hop is already over its budget.
    """
    lm = app.job.run_map(options.request(options.spec())).latency_map
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
        echo(f"wrote {app.budgets.write_budgets(options.config, plans)}", err=True)
    raise SystemExit(exit_code(broken=any(h.over for p in plans for h in p.budgets)))
