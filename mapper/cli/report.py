"""``latmap report``: the nightly run. Map the stream, write the reports (or a dated run kept
with the previous ones), say what is broken or regressed, and exit so a scheduler can alert."""

from __future__ import annotations

from dataclasses import replace

import click

from mapper import analysis, app, render
from mapper.cli.options import REPORTS, MapOptions, explain_option, map_options
from mapper.cli.output import echo, exit_code, progress_bar
from mapper.core.errors import LatmapError, UsageError
from mapper.core.urls import check_http_url


@click.command("report")
@map_options
@click.option("--out", metavar="DIR", type=click.Path(file_okay=False),
              help=f"Write {REPORTS} into DIR.")
@click.option("--history", "history", metavar="DIR", type=click.Path(file_okay=False),
              help=f"Keep dated runs: DIR/<stream>/<YYYY-MM-DD>/ (each with {REPORTS}), DIR/<stream>/latest "
                   "(a symlink, or a file naming the run) and DIR/<stream>/index.html.")
@click.option("--keep", metavar="DAYS", type=click.IntRange(min=0), default=30, show_default=True,
              help="With --history: remove runs older than DAYS days (0: keep all).")
@click.option("--baseline", metavar="REPORT", type=click.Path(dir_okay=False),
              help="Compare with a pinned report.json (default: the spec's pinned baseline, if any).")
@click.option("--pushgateway", metavar="URL", help="Also push the run's percentiles to a Pushgateway.")
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
@explain_option
def report_command(options: MapOptions, out: str | None, history: str | None, keep: int, baseline: str | None,
                   pushgateway: str | None, no_progress: bool, explain: bool | None) -> None:
    """Map the stream and write the reports; with --history, keep a dated run and compare it
    with the previous one.

    Exits 1 when an objective is broken or a regression is found, 2 on an error.
    """
    if (out is None) == (history is None):
        raise UsageError("report: give exactly one of --out DIR or --history DIR")
    if pushgateway:
        check_http_url(pushgateway, "--pushgateway")
    with progress_bar(not no_progress) as progress:
        lm = app.job.run_map(replace(options.request(progress=progress), explain=explain)).latency_map
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
        app.pushgw.push_run(lm, pushgateway, timeout=30.0 if options.timeout is None else options.timeout)
    raise SystemExit(exit_code(broken=lm.broken, regressions=len(regressions)))
