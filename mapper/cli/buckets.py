"""``latmap buckets``: bucket advice. The fewest histogram bounds that put one on every
objective and budget threshold and make each asked percentile's interval narrow enough."""

from __future__ import annotations

import click

from mapper import analysis, app, render
from mapper.cli.options import MapOptions, map_options
from mapper.cli.output import echo
from mapper.core.errors import UsageError
from mapper.core.files import dumps


def share_of(width: str) -> float:
    """``--width`` as a share in [0.1%, 100%): ``5%`` or ``0.05``. Narrower widths are refused
    (:data:`mapper.analysis.buckets.MIN_WIDTH`): no histogram has the bounds they ask for."""
    text = width.strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise UsageError(f"--width: not a share like 5% or 0.05: {width!r}") from None
    if not 0 < share < 1:  # NaN too
        raise UsageError(f"--width: must be between 0% and 100%, got {width!r}")
    if share < analysis.buckets.MIN_WIDTH:
        raise UsageError(
            f"--width: {width!r} is below {analysis.buckets.MIN_WIDTH:.1%}: bounds of four significant digits "
            "cannot step that finely, and no histogram has that many buckets; ask for 0.1% or more")
    return share


@click.command("buckets")
@map_options
@click.option("--width", default="5%", show_default=True,
              help="The widest interval to accept, as a share of each percentile's value (5% or 0.05).")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True)
def buckets_command(options: MapOptions, width: str, fmt: str) -> None:
    """Bucket advice: the fewest bounds putting one on every objective and budget threshold and
    making each asked percentile's interval narrower than --width, with ready snippets."""
    share = share_of(width)
    lm = app.job.run_map(options.request(options.spec())).latency_map
    advice = analysis.buckets.advise(lm, share, app.budgets.budget_thresholds(lm))
    if fmt == "json":
        echo(dumps(render.buckets.buckets_json(advice)), nl=False)
    else:
        echo(render.buckets.buckets_table(advice, share), nl=False)
