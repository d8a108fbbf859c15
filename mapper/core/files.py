"""Files as latmap writes them: atomic (a reader sees the old file or the new one, never half
of one) and JSON that diffs cleanly (sorted keys, indent 2, final newline)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from mapper.core.redact import redact


def _file_mode() -> int:
    """What ``open()`` would give a new file: 0666 minus the umask (0644 under the usual 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temp file in the same directory, fsync, rename.

    The file gets the mode a plain ``open()`` would give it (``mkstemp`` makes 0600, which a
    web server serving the history could not read). Remembered secrets are masked
    (:mod:`mapper.core.redact`): every report, dashboard and provisioning file goes through here.
    """
    text = redact(text)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def dumps(doc: Any) -> str:
    """JSON as latmap writes it: sorted keys, indent 2, final newline (diffs cleanly)."""
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
