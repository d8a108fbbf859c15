"""The application layer: what a command does, end to end, as library functions.

``job`` (:func:`~mapper.app.job.run_map`: the one way a command gets its map, from a
``request`` that names the spec, the overrides and the window), ``pipeline`` (the map job:
``gather`` -> analyse -> ``reports``; the trace side in ``trace_side``, what a map reads of its
spec in ``plan``), ``history`` (the nightly report's
dated runs), ``discover`` (draft a spec from what a Prometheus or a spool holds), ``pushgw``
(push a run to a Pushgateway), ``live`` (``latmap serve --stream``: the live value stream),
``engine`` (traces partition by partition, locally or on Dask; its tasks in
``partition_tasks``). The CLI calls these; so can
any Python program.
"""

from typing import TYPE_CHECKING

from mapper.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from mapper.app import (
        budgets,
        dask_client,
        discover,
        draft,
        engine,
        examples,
        explain,
        gather,
        history,
        job,
        live,
        partition_tasks,
        pipeline,
        plan,
        pushgw,
        reports,
        request,
        trace_side,
    )

__all__ = ["budgets", "dask_client", "discover", "draft", "engine", "examples", "explain", "gather", "history", "job",
           "live", "partition_tasks", "pipeline", "plan", "pushgw", "reports", "request", "trace_side"]

__getattr__ = lazy_getattr(__name__, __all__)
