"""What a map is asked for: the spec (a path or a loaded one), the overrides a command line
gives, the window, and who to tell about progress. A frozen value, so a command builds it
once and every step downstream reads the same thing.

Loading the spec with its overrides lives here, not in :mod:`mapper.app.job`, because the
commands that never map (``dashboards``, ``rules``) load specs too, and this module costs
only the spec loader: no numpy, pandas or collector is imported to read a YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mapper.core.spec import StreamSpec, load_spec, with_live_series
from mapper.core.urls import check_http_url

if TYPE_CHECKING:
    from mapper.app.pipeline import Progress

__all__ = ["MapRequest", "requested_spec"]


@dataclass(frozen=True)
class MapRequest:
    """One map to make.

    ``spec`` is the spec file, or a spec already loaded (a command that checks its arguments
    against the stages loads it first). The overrides apply to either, each only when given:
    ``prometheus`` points every Prometheus source at a URL (one with credentials in it is
    refused), ``timeout`` is every remote source's per-request timeout in seconds, ``engine``
    is where traces are analysed (``local`` or ``dask://host:port``). ``length`` is the
    window's length in seconds (``None``: the spec's), ``until`` its end in unix seconds
    (``None``: now). ``progress`` is called with ``(done, total, label)`` after each query.
    ``explain``: how far the map explains its tail (``report.json`` ``explanations``): None
    (the default) from the span fields latmap keeps, True also from every span and resource
    attribute (read for it: ``--explain``), False not at all (``--no-explain``).
    """

    spec: str | Path | StreamSpec
    prometheus: str | None = None
    timeout: float | None = None
    engine: str | None = None
    length: float | None = None
    until: float | None = None
    progress: Progress | None = None
    explain: bool | None = None


def requested_spec(request: MapRequest, *, live: bool = False) -> StreamSpec:
    """The spec of ``request``, loaded when it is a path, with the overrides applied (the one
    place they are); ``live``: traced stages read from ``latmap serve --stream``'s series
    (dashboards, rules). Raises SpecError (with file:line) or UsageError (a bad override)."""
    if request.prometheus is not None:
        check_http_url(request.prometheus, "--prometheus")
    spec = request.spec if isinstance(request.spec, StreamSpec) else load_spec(request.spec)
    spec = with_live_series(spec) if live else spec
    spec = spec.with_source_url("prometheus", request.prometheus) if request.prometheus else spec
    spec = spec.with_engine(request.engine) if request.engine else spec
    return spec.with_timeout(request.timeout) if request.timeout else spec
