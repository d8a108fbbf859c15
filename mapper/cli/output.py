"""What every command prints, and how it ends: the exit codes, one ``echo`` for every line,
the map in the format asked, and the progress bar of a long map."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from mapper import render
from mapper.core.files import dumps
from mapper.core.redact import for_terminal

EXIT_OK = 0
EXIT_OBJECTIVE_BROKEN = 1
EXIT_ERROR = 2

#: What ``map`` and ``demo`` can print on stdout.
FORMATS = ("table", "json", "markdown")


def echo(text: str, err: bool = False, nl: bool = True) -> None:
    """Print as every line of latmap is printed: remembered secrets masked, control
    characters (terminal escapes) removed, whatever a source or a spec put in the text."""
    click.echo(for_terminal(text), err=err, nl=nl)


def exit_code(*, broken: bool, regressions: int = 0) -> int:
    """The one rule for a scheduler: 1 when an objective is broken or a regression was
    found, else 0 (errors are 2, decided in :func:`mapper.cli.entry.main`)."""
    return EXIT_OBJECTIVE_BROKEN if broken or regressions else EXIT_OK


def render_map(fmt: str, lm: Any, found: Any, flow: bool = False) -> str:
    """The map and its findings as ``fmt`` (table, json or markdown) for stdout; ``flow``
    adds the flow block to the table (json and markdown always carry the flow)."""
    if fmt == "json":
        return dumps(render.report.to_json(lm, found))
    if fmt == "markdown":
        return str(render.report.to_markdown(lm, found))
    return str(render.report.to_table(lm, found, flow=flow))


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[int, int, str], None] | None]:
    """A progress bar on stderr for multi-query work, when stderr is a terminal; ``None``
    (no callback) otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    bar: Any = None

    def update(done: int, total: int, label: str) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label="querying", file=sys.stderr,
                                    show_pos=True, item_show_func=lambda _: label)
            bar.__enter__()
        bar.update(1)

    try:
        yield update
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
