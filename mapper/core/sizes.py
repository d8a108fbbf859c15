"""Sizes in bytes, as a person writes them (``500MiB``, ``10GB``, ``1048576``).

Shared by ``latmap serve --max-disk`` and a source's ``max_response``, so both accept the
same spellings and refuse the same nonsense (negative, not finite, beyond an exbibyte).
"""

from __future__ import annotations

import re

from mapper.core.redact import quoted

__all__ = ["MAX_SIZE", "parse_size"]

#: Larger is a typo, not a size (and would overflow the int64 counters it feeds).
MAX_SIZE = 1 << 60
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def parse_size(text: object) -> int:
    """Bytes from ``text``; ValueError (with a hint, quoting at most 40 characters) otherwise."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValueError("not a size (use e.g. 500MiB, 10GiB)")
    m = re.fullmatch(r"\s*(\d{1,20}(?:\.\d{1,9})?)\s*(|B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", str(text))
    if not m:
        raise ValueError(f"not a size: {quoted(str(text), 40)} (use e.g. 500MiB, 10GiB)")
    size = int(float(m.group(1)) * _UNITS[m.group(2)])
    if size > MAX_SIZE:
        raise ValueError(f"too large: {quoted(str(text), 40)}")
    return size
