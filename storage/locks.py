"""Named locks across the processes of one database (schema creation, a study's budget); each dies with its process."""

from __future__ import annotations

import fcntl
import hashlib

import sqlalchemy as sa

from storage import urls


class Lock:
    """Held by one process at a time, freed if that process dies.

    PostgreSQL: a session advisory lock whose key hashes `name`, on a connection of its own;
    SQLite: a POSIX lock on byte `slot` of the file DB-lock beside the database (SQLite's users
    share one machine). Other databases (and in-memory SQLite) get no lock.

    `wait_s` (PostgreSQL): give up with OperationalError after this long instead of waiting for
    ever (a process that hangs while holding it then fails the others in time).
    """

    def __init__(self, engine: sa.Engine, name: str, slot: int, *, wait_s: float | None = None):
        self._engine, self._name, self._slot, self._wait_s = engine, name, slot, wait_s
        self._conn = self._file = None

    def acquire(self) -> "Lock":
        """Block until this process holds the lock."""
        dialect = self._engine.dialect.name
        if dialect == "postgresql":
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                if self._wait_s is not None:
                    conn.execute(sa.text(f"set lock_timeout = '{float(self._wait_s)}s'"))
                conn.execute(sa.select(sa.func.pg_advisory_lock(self.key)))
                if self._wait_s is not None:
                    conn.execute(sa.text("reset lock_timeout"))
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        elif dialect == "sqlite":
            path = urls.sqlite_path(self._engine.url.render_as_string(hide_password=False))
            if path is not None:  # beside SQLite's own DB-wal and DB-shm
                self._file = open(urls.sqlite_lock_file(path), "a")
                fcntl.lockf(self._file, fcntl.LOCK_EX, 1, self._slot)
        return self

    def release(self) -> bool:
        """Free the lock; False if it had died before (its connection lost in a server restart).

        A second call does nothing (and returns True).
        """
        held = True
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                held = bool(conn.execute(sa.select(sa.func.pg_advisory_unlock(self.key))).scalar())
            except sa.exc.DBAPIError:  # the connection died (server restart): its lock died with it
                held = False
                conn.invalidate()
            finally:
                conn.close()
        if self._file is not None:
            file, self._file = self._file, None
            fcntl.lockf(file, fcntl.LOCK_UN, 1, self._slot)
            file.close()
        return held

    @property
    def bind(self) -> sa.Engine | sa.Connection:
        """Where to run queries while holding the lock: its own connection when it has one."""
        return self._conn if self._conn is not None else self._engine

    @property
    def key(self) -> int:
        """The PostgreSQL advisory lock key: 64 bits of the name's SHA-1."""
        return int.from_bytes(hashlib.sha1(self._name.encode()).digest()[:8], "big", signed=True)

    def __enter__(self) -> "Lock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
