"""Files as latmap writes them: atomic (a reader sees the old file or the new one, never half
of one) and JSON that diffs cleanly (sorted keys, indent 2, final newline); and files as
latmap reads what a user names (a spec, a baseline, a token file): bounded, regular files only,
JSON too deep to parse refused, so ``/dev/zero`` or a 5,000-deep document is an error, not a hang."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from mapper.core.errors import OutputError
from mapper.core.redact import redact

#: The files a map is written as: ``--out`` of map, report and demo, and each ``--history`` run.
REPORT_FILES = ("report.json", "report.md", "report.html", "map.svg")


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
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    except OSError as err:
        raise OutputError(f"{p}: cannot write: {err.strerror or err}") from None
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{p}: cannot write: {err.strerror or err}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def dumps(doc: Any) -> str:
    """JSON as latmap writes it: sorted keys, indent 2, final newline (diffs cleanly)."""
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


class BoundedReadError(ValueError):
    """A file that cannot be read within the bounds; the message names the file and why."""


def read_bounded(path: str | Path, limit: int, what: str = "file") -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    A device, FIFO or directory is refused before a byte is read (``/dev/zero`` would never end,
    a FIFO could block for ever), and so is a file over ``limit`` (read to ``limit + 1`` only).
    FileNotFoundError passes through (callers say "not found" their own way); every other
    problem is a :class:`BoundedReadError` naming the file.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise BoundedReadError(f"{p}: cannot read the {what}: {err.strerror}") from err
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"
        raise BoundedReadError(f"{p}: {kind}; the {what} must be a regular file")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(limit + 1)
        except OSError as err:
            raise BoundedReadError(f"{p}: cannot read the {what}: {err.strerror}") from err
    if len(data) > limit:
        raise BoundedReadError(f"{p}: larger than {_size(limit)}; not a {what}")
    return data


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB" if n >= 1 << 10 else f"{n} bytes"


def loads_json(text: str | bytes, where: str) -> Any:
    """JSON from ``text``; a document nested too deeply for the parser (thousands of levels)
    is a ValueError naming ``where``, like any other malformed document, not a RecursionError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{where}: nested too deeply to read") from None
