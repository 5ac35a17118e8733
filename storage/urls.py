"""Storage URLs: pick one (flag, $SWEEPER_STORAGE, ./sweeper.db), normalise drivers, mask passwords."""

from __future__ import annotations

import os
from pathlib import Path

from storage.contract.errors import BadInput

ENV = "SWEEPER_STORAGE"
DEFAULT = "sqlite:///sweeper.db"
FIX = f"pass --storage URL or set ${ENV}, e.g. sqlite:///sweeper.db or postgresql://USER@HOST/DB"
# Drivers SQLAlchemy would pick by default that we replace: psycopg 3 is the one installed.
_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}


def resolve(flag: str | None = None) -> str:
    """The storage URL: `flag`, else $SWEEPER_STORAGE, else sqlite:///sweeper.db; drivers normalised."""
    url = flag or os.environ.get(ENV) or DEFAULT
    return normalize(url)


def normalize(url: str) -> str:
    """`url` with postgresql:// (and postgres://) rewritten to psycopg 3; BadInput if it is no URL."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    url = url.strip()
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BadInput(f"storage {url!r} is not a database URL: {FIX}") from None
    if parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    refuse_memory(parsed)
    return parsed.render_as_string(hide_password=False)


def refuse_memory(url) -> None:
    """BadInput for an SQLite URL that names no file (`sqlite://`, `sqlite:///`, `:memory:`, a URI with
    mode=memory): SQLAlchemy opens an in-memory database, which each process and connection sees empty."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database or ""
    shown = parsed.render_as_string(hide_password=True).replace("%3A", ":")
    if not database:
        raise BadInput(f"storage {shown} names no SQLite file: write sqlite:///PATH, e.g. sqlite:///sweeper.db "
                       "(four slashes for an absolute path: sqlite:////abs/sweeper.db)")
    if database == ":memory:" or database.startswith("file::memory:") or "mode=memory" in str(parsed):
        raise BadInput(f"storage {shown} is an in-memory SQLite database, empty in every process: name a file "
                       "instead, e.g. sqlite:///sweeper.db")


_SECRET_KEYS = ("pass", "secret", "token")


def mask(url: str) -> str:
    """`url` with its password replaced by ***, for anything printed or logged: the user-info part's and
    any query parameter that carries one (`?password=`, `sslpassword`, a token or secret)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
        secret = {k: "***" for k in parsed.query if any(w in k.lower() for w in _SECRET_KEYS)}
        shown = parsed.set(query={**parsed.query, **secret}).render_as_string(hide_password=True)
        return shown.replace("%2A%2A%2A", "***")
    except Exception:  # noqa: BLE001 - never fail while printing an error
        return "<unparsable storage URL>"


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL (None for other databases and for in-memory SQLite)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.database.startswith("file:"):  # URI form: sqlite:///file:path?mode=...&uri=true
        return Path(parsed.database[5:].split("?", 1)[0])
    return Path(parsed.database)


def sqlite_lock_file(path: Path) -> Path:
    """DB-lock beside an SQLite file DB (and its DB-wal, DB-shm): sweeper's locks between processes
    (byte 0: creating the schema; byte `study_id`: a study's budget)."""
    return path.with_name(path.name + "-lock")


class SameFile:
    """The SQLite file of `url` as it is now (device, inode): `check()` says when the path no longer
    names it (deleted or replaced under a running worker, whose writes then go nowhere)."""

    def __init__(self, url: str):
        self.path = sqlite_path(url)
        self._id = self._identity()

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat() if self.path is not None else None
        except OSError:
            return None
        return None if st is None else (st.st_dev, st.st_ino)

    def check(self) -> None:
        """BadInput when the file this worker opened is no longer at its path (other databases: nothing)."""
        if self.path is not None and self._identity() != self._id:
            raise BadInput(f"the SQLite file {self.path} was deleted or replaced while this worker ran: what it "
                           "wrote since is lost; stop the workers (sweeper stop) before moving or deleting a "
                           "study's database")
