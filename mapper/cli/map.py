"""``latmap map``: map a value stream and print it (and, with ``--out``, write the reports)."""

from __future__ import annotations

from dataclasses import replace

import click

from mapper import analysis, app
from mapper.cli.options import REPORTS, MapOptions, explain_option, map_options
from mapper.cli.output import FORMATS, echo, exit_code, progress_bar, render_map


@click.command("map")
@map_options
@click.option("--out", metavar="DIR", type=click.Path(file_okay=False),
              help=f"Also write {REPORTS} into DIR.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="What to print on stdout.")
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
@explain_option
@click.option("--flow", is_flag=True,
              help="Also print the flow per stage: items in and out, yield, %C&A (first-pass yield), "
                   "inventory mean/peak, utilisation, workers, capacity and headroom, and the rework line "
                   "(report.json, .md and .html always carry it).")
@click.option("--baseline", metavar="REPORT", type=click.Path(dir_okay=False),
              help="Compare with a previous report.json (default: the spec's pinned baseline, if any).")
def map_command(options: MapOptions, out: str | None, fmt: str, no_progress: bool, explain: bool | None,
                flow: bool, baseline: str | None) -> None:
    """Map a value stream: query its sources and print the latency map.

    Exits 1 when an objective of the spec is broken, 2 on a config or source error.
    """
    with progress_bar(not no_progress) as progress:
        lm = app.job.run_map(replace(options.request(progress=progress), explain=explain)).latency_map
    found = app.budgets.with_budgets(lm, analysis.findings.find(lm, baseline))
    if out:
        for path in app.pipeline.write_reports(lm, out, found):
            echo(f"wrote {path}", err=True)
    echo(render_map(fmt, lm, found, flow=flow), nl=False)
    raise SystemExit(exit_code(broken=lm.broken))
