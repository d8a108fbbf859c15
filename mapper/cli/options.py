"""The options every command that maps a stream takes, declared once.

:func:`map_options` adds ``-c/--config``, ``--prometheus``, ``--window``, ``--until``,
``--engine`` and ``--timeout`` to a command and hands it one :class:`MapOptions` instead of
six parameters; the command turns it into a :class:`~mapper.app.request.MapRequest` when it
wants the map. ``--timeout`` is checked while the command line is parsed (a bad value stops
the command before anything runs); ``--window`` and ``--until`` are checked when the request
is made, so each command keeps the order in which it reports its mistakes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from mapper.app.request import MapRequest, requested_spec
from mapper.cli.parse import duration_of, time_of
from mapper.core.files import REPORT_FILES

if TYPE_CHECKING:
    from mapper.app.pipeline import Progress
    from mapper.core.spec import StreamSpec


def _timeout_value(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    return duration_of(value, "--timeout")


#: ``--timeout`` for every command that talks to a source: seconds, or None (each source's own).
timeout_option = click.option(
    "--timeout", metavar="DURATION", callback=_timeout_value,
    help="Per-request timeout of every source (default: each source's own, 30s).")

#: ``--engine`` for every command that maps a stream.
#: ``latmap map`` and ``latmap report``: how far to explain the tail (the cost of reading every
#: attribute is measured in benchmarks/explain_read.py; docs/explain.md).
explain_option = click.option(
    "--explain/--no-explain", default=None,
    help="Why the tail is slow (report.json explanations): by default from the span fields latmap keeps "
         "(name, status, kind, peer and messaging columns) and the bottleneck's label slices; --explain also "
         "reads every span and resource attribute (host.name, service.version ...: about 2x the CPU and 2.3x the "
         "memory of the map over a million spans); --no-explain computes none.")

engine_option = click.option(
    "--engine", metavar="ENGINE",
    help="Where traces are analysed: local (default) or dask://host:8786 (overrides the spec's engine).")

_MAP_OPTIONS = (
    click.option("-c", "--config", "config", required=True, type=click.Path(dir_okay=False),
                 help="The stream spec (stream.yaml)."),
    click.option("--prometheus", metavar="URL", help="Override the URL of every prometheus source."),
    click.option("--window", metavar="DURATION", help="Look-back, e.g. 24h, 90m (default: the spec's)."),
    click.option("--until", metavar="TIME", help="Window end: RFC 3339 or unix seconds (default: now)."),
    engine_option,
    timeout_option,
)


@dataclass(frozen=True)
class MapOptions:
    """The shared options as given: ``window`` and ``until`` still text (checked by
    :meth:`request`), ``timeout`` already in seconds."""

    config: str
    prometheus: str | None = None
    window: str | None = None
    until: str | None = None
    engine: str | None = None
    timeout: float | None = None

    def spec(self) -> StreamSpec:
        """The spec with ``--prometheus``, ``--engine`` and ``--timeout`` applied, for a
        command that checks its own arguments against the stages before mapping."""
        return requested_spec(self._request_of(self.config))

    def request(self, spec: StreamSpec | None = None, progress: Progress | None = None) -> MapRequest:
        """The map to make: of ``spec`` when the command loaded it already, else of the file;
        a UsageError for a bad ``--window`` or ``--until``."""
        length = duration_of(self.window, "--window")
        until = time_of(self.until, "--until")
        return self._request_of(self.config if spec is None else spec, length, until, progress)

    def _request_of(self, spec: str | StreamSpec, length: float | None = None, until: float | None = None,
                   progress: Progress | None = None) -> MapRequest:
        """The request for ``spec`` with this command line's overrides."""
        return MapRequest(spec, prometheus=self.prometheus, timeout=self.timeout, engine=self.engine,
                          length=length, until=until, progress=progress)


def map_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared options to ``command``, which takes them as one ``options: MapOptions``
    (its other parameters pass through by name)."""

    @functools.wraps(command)
    def with_options(*, config: str, prometheus: str | None, window: str | None, until: str | None,
                     engine: str | None, timeout: float | None, **rest: Any) -> Any:
        return command(options=MapOptions(config, prometheus, window, until, engine, timeout), **rest)

    for option in reversed(_MAP_OPTIONS):
        with_options = option(with_options)
    return with_options

#: The report files, for help texts (map, report, demo).
REPORTS = ", ".join(REPORT_FILES)
