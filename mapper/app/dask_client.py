"""The Dask client a partitioned map runs its tasks with (``engine: dask``).

Connecting is the one step of a Dask map that can hang on a wrong address, so it has a
deadline of its own; everything after it (tasks, retries, worker memory) is Dask's.
"""

from __future__ import annotations

from typing import Any

from mapper.core.deadline import DeadlinePassed, call_within
from mapper.core.errors import UsageError
from mapper.core.redact import remote_text
from mapper.core.spec.engine import EngineSpec

__all__ = ["connect"]


def connect(engine: EngineSpec, timeout: float = 10.0) -> Any:
    """A Dask client on ``engine.scheduler``; an unreachable or mismatched scheduler is a
    UsageError (one line, exit 2)."""
    try:
        from distributed import Client
    except ImportError as err:
        raise UsageError("engine dask: install latmap[dask] (dask[dataframe] and distributed)") from err
    client = _client_within(Client, str(engine.scheduler), timeout)
    try:
        client.get_versions(check=True)
    except ValueError as err:  # distributed raises on a version mismatch of required packages
        client.close()
        raise UsageError(f"engine dask: {engine.scheduler}: {str(err).splitlines()[0]}") from err
    return client


def _client_within(client_class: Any, scheduler: str, timeout: float) -> Any:
    """``Client(scheduler)`` within ``timeout`` (plus a grace), or a UsageError.

    Dask's own ``timeout`` covers the TCP connect, not its handshake: a server on that port
    that accepts and then says nothing a scheduler would (an HTTP server, a proxy) kept the
    client waiting for ever. The client is made in a daemon thread and abandoned past the
    deadline, so ``latmap`` exits with one line instead of hanging."""
    deadline = timeout + 5.0
    try:
        return call_within(lambda: client_class(scheduler, timeout=timeout, set_as_default=False), deadline,
                           "latmap-dask-connect")
    except DeadlinePassed:
        raise UsageError(f"engine dask: {scheduler} did not answer as a Dask scheduler within "
                         f"{deadline:g} s (is it the scheduler's comm port, usually 8786?)") from None
    except Exception as err:
        raise UsageError(f"engine dask: scheduler {scheduler} unreachable: {remote_text(err, 200)}") from err
