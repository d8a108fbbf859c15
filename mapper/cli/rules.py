"""``latmap rules``: Prometheus recording rules for every hop (bucket rates, percentiles) and,
with ``--alerts``, multi-window burn-rate alerts for the objectives with their promtool tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

import dashboards
from mapper.app.request import MapRequest, requested_spec
from mapper.cli.output import echo
from mapper.cli.parse import duration_of
from mapper.core.errors import UsageError
from mapper.core.files import write_atomic


@click.command("rules")
@click.option("-c", "--config", "config", required=True, metavar="FILE", type=click.Path(dir_okay=False),
              help="The stream spec (stream.yaml).")
@click.option("--out", metavar="FILE",
              help="Write the rule file here (default: stdout); with --alerts also the promtool tests, "
                   "FILE with the suffix .test.yml unless --tests.")
@click.option("--rate-window", default="5m", show_default=True, help="Range of rate() in the recorded series.")
@click.option("--interval", default=None, help="Rule group evaluation interval (default: Prometheus's global).")
@click.option("--alerts", is_flag=True,
              help="Also burn-rate alerts for every stage objective (multi-window, multi-burn-rate); needs the "
                   "histograms' bucket bounds from Prometheus.")
@click.option("--prometheus", metavar="URL", help="Where to read the bucket bounds (default: the spec's source).")
@click.option("--period", default="30d", show_default=True, help="The error budget's window (--alerts).")
@click.option("--burn", "burns", multiple=True, metavar="SEVERITY:SHARE:LONG:SHORT",
              help="A burn window instead of the defaults (repeatable): alert at SEVERITY when SHARE of the "
                   "budget burns in LONG, over LONG and SHORT: page:2%:1h:5m page:5%:6h:30m ticket:10%:3d:6h.")
@click.option("--tests", "tests_out", metavar="FILE",
              help="With --alerts: also write a `promtool test rules` file (default: next to --out, .test.yml).")
def rules_command(config: str, out: str | None, rate_window: str, interval: str | None, alerts: bool,
                  prometheus: str | None, period: str, burns: tuple[str, ...], tests_out: str | None) -> None:
    """Write Prometheus recording rules: per-hop bucket rates and percentiles (and, with
    --alerts, burn-rate alerts for the objectives, with promtool unit tests)."""
    spec = requested_spec(MapRequest(config, prometheus=prometheus), live=True)
    text = dashboards.rules.render_rules(spec, rate_window=duration_of(rate_window, "--rate-window") or 300.0,
                        interval=duration_of(interval, "--interval"))
    for line in dashboards.rules.not_recordable(spec):
        echo(f"latmap: not recordable: {line}", err=True)
    test_doc = None
    if alerts:
        policy = dashboards.alerts.Policy(period=duration_of(period, "--period") or 30 * 86400.0)
        if burns:
            policy = dashboards.alerts.Policy(policy.period, tuple(burn_of(text) for text in burns))
        layouts = dashboards.alerts.fetch_layouts(spec, time.time())
        targets, checks = dashboards.alerts.alert_targets(spec, layouts)
        for c in checks:
            echo(f"latmap: check: {c.code}: {c.message}", err=True)
        text = dashboards.alerts.with_alert_group(text, dashboards.alerts.alert_group(spec, targets, policy),
                                                  dashboards.alerts.not_alertable(checks))
        if out or tests_out:
            rule_file = Path(out).name if out else "rules.yml"
            test_doc = dashboards.alerts.promtool_tests(spec, targets, rule_file, policy)
    if out:
        write_atomic(Path(out), text)
        echo(f"wrote {out}", err=True)
    else:
        echo(text, nl=False)
    if test_doc is not None:
        target = Path(tests_out) if tests_out else Path(str(out)).with_suffix(".test.yml")
        write_atomic(target, dashboards.alerts.to_yaml(test_doc))
        echo(f"wrote {target}", err=True)


def burn_of(text: str) -> Any:
    """``page:2%:1h:5m`` as a burn window (``--burn``)."""
    fields = text.split(":")
    if len(fields) != 4 or not fields[0].isidentifier() or not fields[1].endswith("%"):
        raise UsageError(f"--burn {text!r}: use SEVERITY:SHARE%:LONG:SHORT, like page:2%:1h:5m")
    try:
        share = float(fields[1][:-1]) / 100
    except ValueError:
        raise UsageError(f"--burn {text!r}: {fields[1]!r} is not a share like 2%") from None
    if not 0 < share <= 1:
        raise UsageError(f"--burn {text!r}: the share must be in (0%, 100%]")
    long, short = duration_of(fields[2], "--burn") or 0.0, duration_of(fields[3], "--burn") or 0.0
    if short >= long:
        raise UsageError(f"--burn {text!r}: the short window must be shorter than the long one")
    return dashboards.alerts.BurnWindow(fields[0], share, long, short)
