"""Files written whole or not at all: a temporary file beside the target, renamed over it once complete."""

from __future__ import annotations

import os
import tempfile


class NotCreated(OSError):
    """The temporary file could not be made beside the target (a missing or read-only folder): nothing was written."""


def replace_atomically(path, write_to) -> None:
    """`write_to(temporary path)` beside `path`, then the temporary file renamed to `path`; it is removed
    whatever happens, so `path` is the whole new file or what it was. NotCreated when the temporary file
    cannot be made, else the OSError of writing or renaming."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    except OSError as exc:
        raise NotCreated(exc.errno, exc.strerror) from exc
    os.close(fd)
    try:
        write_to(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
