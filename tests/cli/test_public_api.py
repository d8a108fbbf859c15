"""The public surface of ``mapper`` is a sorted, complete ``__all__``."""

from __future__ import annotations

import mapper


def test_all_is_sorted_and_importable() -> None:
    assert mapper.__all__ == sorted(mapper.__all__)
    for name in mapper.__all__:
        assert getattr(mapper, name) is not None


def test_all_lists_every_public_name() -> None:
    # The facade is lazy (PEP 562): dir() lists what attribute access can load.
    public = {n for n in dir(mapper) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(mapper, n)).__name__ == "module"}
    assert public - modules == set(mapper.__all__)
