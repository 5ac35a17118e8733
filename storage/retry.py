"""Retry a storage call with backoff on transient errors: server restart, dropped connection, SQLite busy."""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time

import sqlalchemy as sa

from storage.contract.errors import first_line

log = logging.getLogger("sweeper.worker")

def patience_s() -> float:
    """How long one call keeps trying before the error is let through (a server restart takes seconds):
    $SWEEPER_DB_PATIENCE in seconds, read at each call (default 120; 0: no retries); BadInput else."""
    text = os.environ.get("SWEEPER_DB_PATIENCE", "").strip() or "120"
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        from storage.contract.errors import BadInput

        raise BadInput(f"SWEEPER_DB_PATIENCE={text!r} is not a number of seconds >= 0: set it to e.g. 120, "
                       "or unset it")
    return value


FIRST_WAIT_S, MAX_WAIT_S = 0.1, 5.0
_TRANSIENT_TEXT = ("database is locked", "database is busy", "server closed the connection", "connection reset",
                   "connection refused", "terminating connection", "could not connect", "connection is closed",
                   "the database system is", "consuming input failed", "ssl syscall", "broken pipe",
                   "connection timeout", "admin_shutdown", "connection failed", "not accepting connections",
                   "connection has been closed", "no connection to the server", "could not receive data",
                   "could not send data", "timeout expired", "lost synchronization", "connection timed out",
                   "accepting connections")
# PostgreSQL's SQLSTATEs of errors that pass (besides class 08, connection exceptions): shutdowns,
# a server starting, serialization failures and deadlocks, too many connections.
_TRANSIENT_STATES = ("57P01", "57P02", "57P03", "40001", "40P01", "53300")


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps, e.g. Optuna's StorageInternalError) may pass if tried again:
    a lost connection, a server starting or stopping, a busy SQLite file, a deadlock. Not a missing
    table, a schema that is not Optuna's or a full disk: an OperationalError is not transient as such."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, (sa.exc.InterfaceError, sa.exc.DisconnectionError)):
            return True
        state = getattr(getattr(exc, "orig", None), "sqlstate", None) or getattr(exc, "sqlstate", None)
        if isinstance(state, str) and (state.startswith("08") or state in _TRANSIENT_STATES):
            return True
        if any(text in str(exc).lower() for text in _TRANSIENT_TEXT):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def database_error(exc: BaseException) -> BaseException | None:
    """The database's error in `exc` or what it wraps (SQLAlchemy's, a driver's, Optuna's storage
    error), else None: Optuna's tell can hide it behind an error of its own."""
    from optuna.exceptions import StorageInternalError

    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, (sa.exc.SQLAlchemyError, StorageInternalError)):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


class _Outage:
    """This process's view of its database: down once a call outlasted its patience, until one succeeds.

    While down, each call tries once: a worker whose database stays away for longer than the patience
    stops within about one patience, instead of waiting a whole patience for each queued write.
    `abandon` (set by a worker's first SIGTERM or Ctrl-C) ends the waiting of calls that are failing.
    """

    def __init__(self):
        self.since: float | None = None
        self.abandon = threading.Event()

    @property
    def down(self) -> bool:
        return self.since is not None


outage = _Outage()


def call(fn, *args, _what: str | None = None, _patience: float | None = None, **kwargs):
    """fn(*args, **kwargs), tried again with exponential backoff while it fails transiently.

    The first transient failure and the recovery are logged (one line each); after `_patience`
    seconds (default $SWEEPER_DB_PATIENCE or 120), or at once while the database is known to be down
    (`outage`) or the process is stopping, the last error is raised.
    """
    patience = patience_s() if _patience is None else _patience
    deadline, wait, failures = time.monotonic() + patience, FIRST_WAIT_S, 0
    what = _what or getattr(fn, "__name__", "?")
    while True:
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - filtered just below
            if not is_transient(exc):
                raise
            if outage.down or outage.abandon.is_set() or time.monotonic() + wait > deadline:
                if not outage.down:
                    outage.since = time.monotonic()
                    why = ("the process is stopping" if outage.abandon.is_set()
                           else f"still failing after {patience:.0f} s")
                    log.error("database call %s: %s (%s): giving up", what, why, first_line(exc)[:200])
                raise
            if failures == 0:
                log.warning("database call %s failed (%s); retrying for up to %.0f s", what, first_line(exc)[:200],
                            patience)
            failures += 1
            outage.abandon.wait(wait * (0.5 + random.random()))  # a stopping worker waits no more
            wait = min(wait * 2, MAX_WAIT_S)
            continue
        if failures or outage.down:
            log.warning("database call %s succeeded after %d retries", what, failures)
            outage.since = None
        return result
