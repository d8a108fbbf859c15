"""``latmap dashboards``: the stream's Grafana dashboard, recording rules and provisioning
files, written offline from the spec, pushed through Grafana's API, or checked against
Prometheus (every generated query must return something)."""

from __future__ import annotations

from pathlib import Path

import click

import dashboards
from mapper.app.request import MapRequest, requested_spec
from mapper.cli.options import timeout_option
from mapper.cli.output import EXIT_ERROR, echo
from mapper.core.errors import UsageError
from mapper.core.urls import check_http_url


@click.command("dashboards")
@click.option("-c", "--config", "config", required=True, type=click.Path(dir_okay=False),
              help="The stream spec (stream.yaml).")
@click.option("--out", metavar="DIR", type=click.Path(file_okay=False),
              help="Write DIR/dashboards/<uid>.json, DIR/rules/<stream>.rules.yml, "
                   "DIR/provisioning/dashboards/latmap.yaml and DIR/provisioning/datasources/latmap.yaml.")
@click.option("--prometheus", metavar="URL", default=None,
              help="Prometheus for the data source and --check (default: the spec's source).")
@click.option("--check", is_flag=True,
              help="Also run every generated query against Prometheus; exit 2 if one returns nothing.")
@click.option("--push", "push_url", metavar="URL", help="Upsert through Grafana's HTTP API at URL.")
@click.option("--token-env", metavar="VAR", help="Grafana token (service account) from env var VAR.")
@click.option("--token-file", metavar="FILE", help="Grafana token from FILE.")
@click.option("--folder", metavar="NAME", help="Grafana folder title (created if missing; default: General).")
@click.option("--force", is_flag=True, help="Overwrite a dashboard with the same uid that is not tagged latmap.")
@timeout_option
def dashboards_command(config: str, out: str | None, prometheus: str | None, check: bool, push_url: str | None,
                       token_env: str | None, token_file: str | None, folder: str | None, force: bool,
                       timeout: float | None) -> None:
    """Write the stream's Grafana dashboard, recording rules and provisioning files.

    Works offline from the spec; --check needs the Prometheus source to be up; --push
    upserts the dashboard through Grafana's HTTP API (idempotent, refuses foreign ones).
    """
    if not out and not push_url and not check:
        raise UsageError("give --out DIR, --push URL or --check")
    if push_url:
        check_http_url(push_url, "--push")
    if (token_env or token_file or folder or force) and not push_url:
        raise UsageError("--token-env/--token-file/--folder/--force need --push URL")
    spec = requested_spec(MapRequest(config, prometheus=prometheus, timeout=timeout), live=True)
    dashboard, missing = dashboards.grafana.build_dashboard(spec)
    for item in missing:
        where = f" ({item.place})" if item.place else ""
        echo(f"latmap: not dashboardable: {item.what}{where}: {item.reason}", err=True)
    if out:
        for path in dashboards.provisioning.write_provisioning(spec, out, prometheus):
            echo(str(path))
    if push_url:
        check_http_url(push_url, "--push")
        result = dashboards.push.push_dashboard(push_url, dashboard, folder,
                                                dashboards.push.token_from(token_env, token_file), force=force,
                                message=f"latmap: {spec.name} from {Path(config).name}",
                                timeout=30.0 if timeout is None else timeout)
        echo(f"grafana: {result.uid} {result.status}"
                   + (f" (version {result.version})" if result.version is not None else ""), err=True)
    if check:
        problems = dashboards.provisioning.check_queries(spec, prometheus)
        for line in problems:
            echo(f"latmap: check: {line}", err=True)
        if problems:
            raise SystemExit(EXIT_ERROR)
