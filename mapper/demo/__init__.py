"""The built-in demo: a simulated day of the trading chain (``data``), its traces sent through
the real OTel SDK (``traces``), a local Prometheus backfilled with promtool (``localprom``),
and the run that maps it all (``run``). Needs no external server.
"""

from typing import TYPE_CHECKING

from mapper.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from mapper.demo import data, localprom, run, traces

__all__ = ["data", "localprom", "run", "traces"]

__getattr__ = lazy_getattr(__name__, __all__)
