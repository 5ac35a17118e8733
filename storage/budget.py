"""A study's trial budget over all workers: what counts as done, and a lock so no worker overshoots it."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from dataclasses import dataclass

import sqlalchemy as sa

from storage import control, retry, urls

# Optuna's own tables, only the columns read here.
_trials = sa.table("trials", sa.column("trial_id"), sa.column("study_id"), sa.column("state"))
_system_attrs = sa.table("trial_system_attributes", sa.column("trial_id"), sa.column("key"))
_study_attrs = sa.table("study_system_attributes", sa.column("study_id"), sa.column("key"), sa.column("value_json"))


@dataclass(frozen=True)
class Counts:
    """Trials of a study by state; `retried` FAIL trials (stale, interrupted) live on as new trials."""

    complete: int = 0
    pruned: int = 0
    fail: int = 0
    retried: int = 0
    running: int = 0
    waiting: int = 0
    stopped: bool = False  # `sweeper stop` holds the study (storage.control), read in the same statement

    @property
    def failed(self) -> int:
        """FAIL trials that were not retried (a retried one lives on as its retry)."""
        return self.fail - self.retried

    @property
    def done(self) -> int:
        """Trials that use up the budget: complete, pruned, and failed ones that were not retried."""
        return self.complete + self.pruned + self.failed

    def next_step(self, n_trials: int) -> str:
        """What a worker should do: 'run' a trial, 'wait' for running ones, or stop ('done').

        WAITING trials (retries, grid points) always run. A new trial starts only while the trials
        done and running leave room in the budget; when only running trials fill it, the worker
        waits, since a running trial whose worker dies is failed and retried, and needs a worker.
        """
        if self.waiting:
            return "run"
        if self.done + self.running < n_trials:
            return "run"
        return "done" if self.done >= n_trials else "wait"


def counts(engine: sa.Engine | sa.Connection, study_id: int) -> Counts:
    """Count a study's trials by state; on an engine, tried again on transient errors (storage.retry)."""
    if isinstance(engine, sa.Connection):
        return _counts(engine, study_id)
    return retry.call(_counts, engine, study_id, _what="budget.counts")


def _counts(engine: sa.Engine | sa.Connection, study_id: int) -> Counts:
    """Count a study's trials by state, and read its stop flag, in one query (on `engine` or a connection)."""
    by_state = (sa.select(sa.cast(_trials.c.state, sa.Text), sa.func.count())
                .where(_trials.c.study_id == study_id).group_by(_trials.c.state))
    # Every retry (Optuna's RetryHeartbeatStaleTrialCallback, or ours for an interrupted trial) is a
    # new trial with the system attr 'failed_trial': one per retried FAIL trial.
    retries = (sa.select(sa.literal("retried", sa.Text), sa.func.count()).select_from(_system_attrs.join(
        _trials, _trials.c.trial_id == _system_attrs.c.trial_id))
        .where(_trials.c.study_id == study_id, _system_attrs.c.key == "failed_trial"))
    stop = (sa.select(sa.literal("stopped", sa.Text), sa.func.count()).select_from(_study_attrs)
            .where(_study_attrs.c.study_id == study_id, _study_attrs.c.key == control.ATTR,
                   _study_attrs.c.value_json == "true"))
    with _connection(engine) as conn:
        found = {str(name).lower(): n for name, n in conn.execute(sa.union_all(by_state, retries, stop))}
    return Counts(complete=found.get("complete", 0), pruned=found.get("pruned", 0), fail=found.get("fail", 0),
                  retried=found["retried"], running=found.get("running", 0), waiting=found.get("waiting", 0),
                  stopped=found["stopped"] > 0)


@contextlib.contextmanager
def _connection(bind):
    if isinstance(bind, sa.Connection):
        yield bind
    else:
        with bind.connect() as conn:
            yield conn


class Overshoot(Exception):
    """A trial started beyond the study's budget (the budget lock died while the trial was created)."""


class Lock:
    """A lock per study across processes: held from the budget check until the next trial exists.

    PostgreSQL: a session advisory lock; SQLite: a POSIX lock on byte `study_id` of the file
    DB-lock beside the database (SQLite workers share one machine). Either is freed if the process dies.
    Other databases get no lock: a race may then start a trial or two beyond the budget.
    """

    def __init__(self, engine: sa.Engine, study_id: int):
        self._engine, self._study_id = engine, study_id
        self._conn = self._file = None

    def acquire(self) -> "Lock":
        """Block until this process holds the lock."""
        dialect = self._engine.dialect.name
        if dialect == "postgresql":
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                conn.execute(sa.select(sa.func.pg_advisory_lock(self._key())))
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        elif dialect == "sqlite":
            path = urls.sqlite_path(self._engine.url.render_as_string(hide_password=False))
            if path is not None:  # byte `study_id` of DB-lock, beside SQLite's own DB-wal and DB-shm
                self._file = open(urls.sqlite_lock_file(path), "a")
                fcntl.lockf(self._file, fcntl.LOCK_EX, 1, self._study_id)
        return self

    def release(self) -> bool:
        """Free the lock; False if it had died before (its connection lost in a server restart).

        A second call does nothing (and returns True).
        """
        held = True
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                held = bool(conn.execute(sa.select(sa.func.pg_advisory_unlock(self._key()))).scalar())
            except sa.exc.DBAPIError:  # the connection died (server restart): its lock died with it
                held = False
                conn.invalidate()
            finally:
                conn.close()
        if self._file is not None:
            file, self._file = self._file, None
            fcntl.lockf(file, fcntl.LOCK_UN, 1, self._study_id)
            file.close()
        return held

    @property
    def bind(self) -> sa.Engine | sa.Connection:
        """Where to run queries while holding the lock: its own connection when it has one."""
        return self._conn if self._conn is not None else self._engine

    def __enter__(self) -> "Lock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def _key(self) -> int:
        digest = hashlib.sha1(f"sweeper-budget#{self._study_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)
