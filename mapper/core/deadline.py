"""A call that must end by a deadline even when what it waits on never answers.

Socket timeouts bound each wait for bytes, not a whole exchange: a peer that keeps sending
something other than an answer (``100 Continue`` for ever, a server on a Dask port that is
no scheduler) meets every one of them. :func:`call_within` runs the call in a daemon thread
and abandons it past the deadline, so latmap says so in one line instead of hanging; the
abandoned thread ends with the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["DeadlinePassed", "call_within"]

T = TypeVar("T")


class DeadlinePassed(Exception):
    """The call was still running at its deadline (it goes on, abandoned, in its thread)."""


def call_within(call: Callable[[], T], seconds: float, name: str = "latmap-deadline") -> T:
    """``call()``'s result, or what it raised, if it ends within ``seconds``; else DeadlinePassed."""
    outcome: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as err:  # raised again in the calling thread below
            failed.append(err)

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    worker.join(seconds)
    if outcome:
        return outcome[0]
    if failed:
        raise failed[0]
    raise DeadlinePassed(f"still running after {seconds:g} s")
