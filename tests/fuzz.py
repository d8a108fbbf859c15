"""Shared Hypothesis settings and strategies for the property suites (``tests/*/test_fuzz_*``).

Bounded in time on purpose: a fixed number of examples per property and no per-example
deadline (the machine is shared), so the suites take seconds, run on every ``pytest`` and
still try a few thousand hostile inputs. ``HYPOTHESIS_PROFILE=long`` tries ten times more.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# The default (every pytest run, CI included) is deterministic: the same draws on every run of
# one Hypothesis version, no example database carried between runs, so a submission never
# fails on a lucky draw. HYPOTHESIS_PROFILE=long is the randomised search (ten times more
# examples, a fresh seed each run, failures remembered in .hypothesis/).
settings.register_profile("latmap", max_examples=150, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=1500, deadline=None, derandomize=False,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "latmap"))

#: Scalars a JSON or YAML document can hold, the awkward ones included.
scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["", "NaN", "+Inf", "-Inf", "1e400", "0x10", "24h", "-1s", "le", "quantile", "\x1b[2J"]))

#: Any JSON-like value: scalars, lists and string-keyed mappings, nested a few levels.
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                     st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=25)


def outcome(call: Any, errors: type[BaseException] | tuple[type[BaseException], ...]) -> tuple[Any, str | None]:
    """``(value, None)`` when ``call()`` answers, ``(None, message)`` when it raises one of the
    clean ``errors``; anything else propagates (and fails the property)."""
    try:
        return call(), None
    except errors as err:
        return None, str(err)
