"""``latmap explain``: why the tail of one part is slow: the attribute values the slow items
share, with the evidence (Fisher's exact test, Benjamini-Hochberg), the label slices of a
metric histogram, the critical path of a fan-out, and what changed since a baseline."""

from __future__ import annotations

import click

from mapper import app, render
from mapper.cli.options import MapOptions, map_options
from mapper.cli.output import echo, exit_code
from mapper.cli.parse import duration_of
from mapper.core.files import dumps


@click.command("explain")
@map_options
@click.option("--stage", metavar="STAGE", help="The stage (not needed for --part lead).")
@click.option("--part", type=click.Choice(("wait", "process", "hop", "lead")), required=True,
              help="wait or process of the stage, its hop (wait + process), or the lead time end to end.")
@click.option("--percentile", type=float, default=99.0, show_default=True, metavar="P",
              help="The tail: items at or beyond the lower bound of this percentile's interval.")
@click.option("--against", "contrast", type=click.Choice(("rest", "median")), default="rest", show_default=True,
              help="Compare the tail with every other item, or with the median band (45th-55th percentile).")
@click.option("--baseline", metavar="REPORT", type=click.Path(dir_okay=False),
              help="Also compare the tail with a pinned report.json's (its explanations of the same part).")
@click.option("--versus", metavar="DURATION",
              help="Also compare the tail with the same hours DURATION earlier, e.g. 7d.")
@click.option("--max-values", type=click.IntRange(2, 1000), default=20, show_default=True,
              help="Values per attribute tested; the others are grouped as (other).")
@click.option("--include-pii", is_flag=True,
              help="Also test attributes whose keys, and slice by labels whose names, look personal "
                   "(email, user, token, ip ...).")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True,
              help="What to print on stdout.")
def explain_command(options: MapOptions, stage: str | None, part: str, percentile: float, contrast: str,
                    baseline: str | None, versus: str | None, max_values: int, include_pii: bool, fmt: str) -> None:
    """Why the tail is slow: the attribute values the slow items share, the label slice that
    holds the slow observations, the branch of a fan-out that decided the lead time.

    The tail (items at or beyond the percentile's lower bound) is compared with the other
    items over every span and resource attribute of the stage's spans (every stage's for
    --part lead): per value its share of the tail and of the rest, the lift, a one-sided
    Fisher exact test and the Benjamini-Hochberg q-value over everything tested. Only
    values with q < 0.05 are called significant. A part a Prometheus histogram measures is
    also split by its labels (a slice is named only when its interval clears the rest's);
    a stream with a join (a stage with several upstreams) also gets its critical path.

    Exits 1 when --baseline or --versus finds a change (a value whose share of the tail
    grew significantly, a label slice now slower), 2 on a config or source error, else 0.
    """
    spec = options.spec()
    req = app.explain.ExplainRequest(options.request(spec), stage, part, percentile, contrast,
                                     app.explain.Options(max_values=max_values, include_pii=include_pii), baseline,
                                     duration_of(versus, "--versus"))
    result = app.explain.run_explain(req)
    if fmt == "json":
        echo(dumps(app.explain.explanations_doc(result)), nl=False)
    else:
        echo(render.explain.text(result.explanations), nl=False)
    raise SystemExit(exit_code(broken=False, regressions=app.explain.changed(result.explanations)))
