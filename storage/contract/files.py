"""Files written whole or not at all: a temporary file beside the target, renamed over it once complete."""

from __future__ import annotations

import os
import stat
import tempfile

from storage.contract.errors import BadInput


class NotCreated(OSError):
    """The temporary file could not be made beside the target (a missing or read-only folder): nothing was written."""


def replace_atomically(path, write_to) -> None:
    """`write_to(temporary path)` beside `path`, then the temporary file renamed to `path`; it is removed
    whatever happens, so `path` is the whole new file or what it was. The file gets the mode the umask
    gives a new file (0644 under umask 022), as `open` would. BadInput when `path` is read-only
    (`check_replaceable`), NotCreated when the temporary file cannot be made, else the OSError of
    writing or renaming."""
    path = os.fspath(path)
    check_replaceable(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    except OSError as exc:
        raise NotCreated(exc.errno, exc.strerror) from exc
    os.close(fd)
    try:
        write_to(tmp)
        os.chmod(tmp, created_mode())  # mkstemp makes 0600: the final file follows the umask instead
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_replaceable(path) -> None:
    """BadInput when `path` is an existing file that is read-only (no write bit, or not writable by us):
    someone protected it, so it is not replaced (a rename would, whatever its mode)."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except OSError:
        return  # missing (or unreachable: writing it will say why)
    if stat.S_ISREG(st.st_mode) and (not st.st_mode & 0o222 or not os.access(path, os.W_OK)):
        raise BadInput(f"{path} is read-only: make it writable (chmod u+w {path}) to replace it, or write elsewhere")


def created_mode() -> int:
    """The mode `open` gives a new file under this process's umask (0o644 under 022)."""
    return 0o666 & ~umask()


def umask() -> int:
    """This process's umask: from /proc/self/status where Linux shows it (reading it elsewhere sets it
    for a moment, which other threads would see)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask
