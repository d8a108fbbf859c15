"""``latmap demo``: map a simulated trading chain end to end, with no server to set up."""

from __future__ import annotations

import click

from mapper import demo
from mapper.cli.options import REPORTS
from mapper.cli.output import FORMATS, echo, render_map
from mapper.core.errors import UsageError


@click.command("demo")
@click.option("--out", metavar="DIR", default="latmap-demo", show_default=True,
              type=click.Path(file_okay=False), help=f"Where to write stream.yaml, {REPORTS}.")
@click.option("--mode", type=click.Choice(("auto", "prometheus", "scrape")), default="auto",
              show_default=True,
              help="prometheus: backfill a real local Prometheus; scrape: read a /metrics endpoint.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the simulation.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def demo_command(out: str, mode: str, seed: int, fmt: str) -> None:
    """Map a simulated trading chain (market data -> alerting -> notification).

    Needs no server: uses a local `prometheus` binary when there is one, else a
    loopback /metrics endpoint. Writes stream.yaml and the reports (report.json, report.md,
    report.html, map.svg) into --out.
    """
    if mode == "prometheus" and not demo.localprom.binaries_available():
        raise UsageError("--mode prometheus: no prometheus/promtool on PATH (apt-get install prometheus)")
    echo(f"latmap demo: simulating a day of the trading chain (mode: {mode})", err=True)
    run = demo.run.run_demo(out, mode=mode, seed=seed)
    echo(render_map(fmt, run.latency_map, run.findings), nl=False)
    echo(f"latmap demo: mapped through {run.mode}; outputs: "
               + ", ".join(str(p) for p in run.outputs), err=True)
