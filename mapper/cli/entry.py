"""``latmap``'s entry point: every command under the group, and :func:`main`, the one place
that turns how a command ended into an exit code and one line on stderr."""

from __future__ import annotations

import sys

import click

from mapper.cli.buckets import buckets_command
from mapper.cli.budgets import budgets_command
from mapper.cli.dashboards import dashboards_command
from mapper.cli.demo import demo_command
from mapper.cli.deps import deps_command
from mapper.cli.discover import discover_command
from mapper.cli.examples import examples_command
from mapper.cli.explain import explain_command
from mapper.cli.group import add_command, cli
from mapper.cli.map import map_command
from mapper.cli.output import EXIT_ERROR, EXIT_OK, echo
from mapper.cli.report import report_command
from mapper.cli.rules import rules_command
from mapper.cli.serve import serve_command
from mapper.cli.whatif import whatif_command
from mapper.core.errors import LatmapError

__all__ = ["cli", "main"]

for _command in (map_command, report_command, discover_command, serve_command, deps_command, examples_command,
                 explain_command, whatif_command, budgets_command, buckets_command, dashboards_command, rules_command,
                 demo_command):
    add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 objective broken, 2 error)."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rv = cli.main(args=argv, prog_name="latmap", standalone_mode=False)
        return rv if isinstance(rv, int) else EXIT_OK
    except SystemExit as done:
        return int(done.code or 0)
    except click.exceptions.Abort:
        echo("latmap: aborted", err=True)
        return EXIT_ERROR
    except click.ClickException as err:
        err.show()
        return EXIT_ERROR
    except LatmapError as err:
        for line in str(err).splitlines() or ["error"]:
            echo(f"latmap: error: {line}", err=True)
        return err.exit_code
    except KeyboardInterrupt:
        echo("latmap: interrupted", err=True)
        return EXIT_ERROR
    except Exception as err:
        if debug:
            raise
        echo(f"latmap: internal error: {type(err).__name__}: {err} "
             "(a bug in latmap; rerun with --debug and report it)", err=True)
        return EXIT_ERROR
