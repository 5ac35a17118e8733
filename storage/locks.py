"""Named locks across the processes of one database (schema creation, a study's budget); each dies with its process."""

from __future__ import annotations

import fcntl
import hashlib
import random
import time

import sqlalchemy as sa

from storage import urls

# Behind a pooler a waiter polls (pg_try_advisory_xact_lock) instead of blocking: a blocked waiter
# would pin a server connection of the pool, and enough of them starve the holder, whose own next
# statement (creating its trial) waits in the pooler's queue for a server connection: a deadlock.
POLL_FIRST_S, POLL_MAX_S = 0.01, 0.25


class Lock:
    """Held by one process at a time, freed if that process dies.

    PostgreSQL: a transaction-level advisory lock (pg_advisory_xact_lock) whose key hashes `name`,
    held by a transaction left open on a connection of its own; release() commits it. A transaction
    also pins its server connection in a pooler such as PgBouncer in transaction mode, where a session
    lock (pg_advisory_lock) breaks: the connection that holds it goes back to the pool after each
    statement, another client's statements then run in the session that holds it (so both "hold" it),
    and the unlock may run in another session. SQLite: a POSIX lock on byte `slot` of the file DB-lock
    beside the database (SQLite's users share one machine). Other databases (and in-memory SQLite) get
    no lock.

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
            conn = self._engine.connect()
            try:
                if behind_pooler(conn):
                    self._poll(conn)
                else:  # the server queues the waiters: first come, first served
                    if self._wait_s is not None:  # LOCAL: it ends with the transaction
                        conn.execute(sa.text(f"set local lock_timeout = '{float(self._wait_s)}s'"))
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(self.key)))
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

    def _poll(self, conn: sa.Connection) -> None:
        """Try the lock until it is free (a short transaction each time, then a jittered pause that holds
        no server connection); OperationalError after `wait_s`."""
        deadline = None if self._wait_s is None else time.monotonic() + self._wait_s
        pause = POLL_FIRST_S
        while not conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(self.key))).scalar():
            conn.rollback()
            if deadline is not None and time.monotonic() >= deadline:
                raise sa.exc.OperationalError(f"pg_try_advisory_xact_lock({self.key})", None, TimeoutError(
                    f"lock {self._name!r} still held by another process after {self._wait_s:g} s"))
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 1.5, POLL_MAX_S)

    def release(self) -> bool:
        """Free the lock; False if it had died before (its connection lost in a server restart).

        A second call does nothing (and returns True).
        """
        held = True
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.commit()  # ends the transaction, and its lock (what ran on `bind` is kept)
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
        """Where to run queries while holding the lock: its own connection (in the lock's transaction)
        when it has one."""
        return self._conn if self._conn is not None else self._engine

    @property
    def key(self) -> int:
        """The PostgreSQL advisory lock key: 64 bits of the name's SHA-1."""
        return int.from_bytes(hashlib.sha1(self._name.encode()).digest()[:8], "big", signed=True)

    def __enter__(self) -> "Lock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def behind_pooler(conn: sa.Connection) -> bool:
    """Whether this PostgreSQL connection goes through a pooler (PgBouncer, ...): the backend pid the
    server gave at login (BackendKeyData) is not the session's pg_backend_pid(), since a pooler hands its
    clients cancel keys of its own. Asked once per connection (kept in the pool entry's info)."""
    if "behind_pooler" not in conn.info:
        told = getattr(getattr(conn.connection.dbapi_connection, "info", None), "backend_pid", None)
        conn.info["behind_pooler"] = (told is not None  # a driver that does not tell: taken as direct
                                      and told != conn.execute(sa.select(sa.func.pg_backend_pid())).scalar())
    return conn.info["behind_pooler"]
