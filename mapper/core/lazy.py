"""Lazy package attributes (PEP 562): a package names its submodules, or the public names it
re-exports, and each is imported on first use.

This is what keeps ``latmap --help`` and a decode worker fast: importing a package loads
nothing below it until a caller touches an attribute, so a command pays only for the modules
(and the numpy, pandas, scipy, matplotlib, pyarrow behind them) that it uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_getattr(package: str, submodules: Iterable[str] = (),
                 names: Mapping[str, str] | None = None) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``submodules`` are imported as
    ``package.<name>``; ``names`` maps a public name to the module that defines it."""
    subs = frozenset(submodules)
    where = dict(names or {})

    def __getattr__(name: str) -> Any:
        if name in subs:
            return importlib.import_module(f"{package}.{name}")
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
