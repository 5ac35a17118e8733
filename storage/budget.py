"""A study's trial budget over all workers: what counts as done, the budget `sweeper extend` sets, and a lock so
no worker overshoots it."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from storage import locks, retry, stopflag, studies
from storage.contract.errors import BadInput, optuna_experimental

# Optuna's own tables, only the columns read here.
_trials = sa.table("trials", sa.column("trial_id"), sa.column("study_id"), sa.column("state"))
_system_attrs = sa.table("trial_system_attributes", sa.column("trial_id"), sa.column("key"))
_study_attrs = sa.table("study_system_attributes", sa.column("study_id"), sa.column("key"), sa.column("value_json"))

ATTR = "sweeper_n_trials"  # study system attr: the budget set by `sweeper extend` (else the spec's n_trials)


class Step(str, enum.Enum):
    """What a worker does next (a str: logs and JSON show the word)."""

    RUN = "run"  # start a trial (or a waiting retry)
    WAIT = "wait"  # trials running elsewhere fill the budget: look again soon
    DONE = "done"  # the budget is spent
    STOPPED = "stopped"  # `sweeper stop` holds the study
    GONE = "gone"  # the study was deleted, or replaced by a new one of its name (storage.studies.same)


@dataclass(frozen=True)
class Counts:
    """Trials of a study by state; `retried` FAIL trials (stale, interrupted) live on as new trials."""

    complete: int = 0
    pruned: int = 0
    fail: int = 0
    retried: int = 0
    running: int = 0
    waiting: int = 0
    stopped: bool = False  # `sweeper stop` holds the study (storage.stopflag), read in the same statement
    extended: int | None = None  # the budget set by `sweeper extend` (extend, below), same statement
    gone: bool = False  # deleted or replaced since its uid was the one given to counts(), same statement
    n_trials: int | None = None  # the spec's budget, as the reader gave it to counts() (None: not given)

    @property
    def failed(self) -> int:
        """FAIL trials that were not retried (a retried one lives on as its retry)."""
        return self.fail - self.retried

    @property
    def total(self) -> int:
        """Every trial of the study, whatever its state."""
        return self.complete + self.pruned + self.fail + self.running + self.waiting

    @property
    def done(self) -> int:
        """Trials that use up the budget: complete, pruned, and failed ones that were not retried."""
        return self.complete + self.pruned + self.failed

    def refuse_stopped(self, name: str) -> None:
        """BadInput when study `name` (whose counts these are) is stopped: what lifts it."""
        if self.stopped:
            raise BadInput(f"study '{name}' is stopped (sweeper stop): lift it with sweeper resume {name}")

    @property
    def budget(self) -> int | None:
        """The study's budget: `sweeper extend`'s if it set one, else the spec's `n_trials` (None when the
        counts were read without it and the study was never extended)."""
        return self.n_trials if self.extended is None else self.extended

    def next_step(self) -> Step:
        """What a worker should do: RUN a trial, WAIT for running ones, or stop (DONE), against `budget`.

        WAITING trials (retries, grid points) always run. A new trial starts only while the trials
        done and running leave room in the budget; when only running trials fill it, the worker
        waits, since a running trial whose worker dies is failed and retried, and needs a worker.
        """
        n_trials = self.budget
        if n_trials is None:
            raise TypeError("these counts carry no budget: read them with the spec's, "
                            "budget.counts(engine, study_id, n_trials=spec.n_trials)")
        if self.waiting:
            return Step.RUN
        if self.done + self.running < n_trials:
            return Step.RUN
        return Step.DONE if self.done >= n_trials else Step.WAIT


def counts(engine: sa.Engine | sa.Connection, study_id: int, *, n_trials: int | None = None,
           uid: str | None = None) -> Counts:
    """Count a study's trials by state; with the spec's `n_trials`, counts that know the study's budget
    (Counts.budget, Counts.next_step); with `uid` (storage.studies.uid), whether the study is still that
    one. On an engine, tried again on transient errors (storage.retry)."""
    if isinstance(engine, sa.Connection):
        return _counts(engine, study_id, n_trials, uid)
    return retry.call(_counts, engine, study_id, n_trials, uid, _what="budget.counts")


def _counts(engine: sa.Engine | sa.Connection, study_id: int, n_trials: int | None = None,
            uid: str | None = None) -> Counts:
    """Count a study's trials by state, read its stop flag and budget, and (with `uid`) whether it is
    still that study, in one query (on `engine` or a connection)."""
    by_state = (sa.select(sa.cast(_trials.c.state, sa.Text), sa.func.count())
                .where(_trials.c.study_id == study_id).group_by(_trials.c.state))
    # Every retry (Optuna's RetryHeartbeatStaleTrialCallback, or ours for an interrupted trial) is a
    # new trial with the system attr 'failed_trial': one per retried FAIL trial.
    retries = (sa.select(sa.literal("retried", sa.Text), sa.func.count()).select_from(_system_attrs.join(
        _trials, _trials.c.trial_id == _system_attrs.c.trial_id))
        .where(_trials.c.study_id == study_id, _system_attrs.c.key == "failed_trial"))
    stop = (sa.select(sa.literal("stopped", sa.Text), sa.func.count()).select_from(_study_attrs)
            .where(_study_attrs.c.study_id == study_id, _study_attrs.c.key == stopflag.ATTR,
                   _study_attrs.c.value_json == "true"))
    budget = sa.func.max(sa.cast(_study_attrs.c.value_json, sa.BigInteger))
    extended = (sa.select(sa.literal("extended", sa.Text), budget)
                .where(_study_attrs.c.study_id == study_id, _study_attrs.c.key == ATTR))
    same = [sa.select(sa.literal("same", sa.Text), studies.same(study_id, uid).scalar_subquery())] if uid else []
    with _connection(engine) as conn:
        found = {str(name).lower(): n for name, n in conn.execute(sa.union_all(by_state, retries, stop, extended,
                                                                               *same))}
    return Counts(complete=found.get("complete", 0), pruned=found.get("pruned", 0), fail=found.get("fail", 0),
                  retried=found["retried"], running=found.get("running", 0), waiting=found.get("waiting", 0),
                  stopped=found["stopped"] > 0, extended=found["extended"], gone=found.get("same", 1) == 0,
                  n_trials=n_trials)


def extend(storage, study_id: int, n_trials: int) -> None:
    """Set the study's trial budget (`sweeper extend`, more seeds of a grid); running workers take it at their
    next trial."""
    storage.set_study_system_attr(study_id, ATTR, int(n_trials))


@contextlib.contextmanager
def _connection(bind):
    if isinstance(bind, sa.Connection):
        yield bind
    else:
        with bind.connect() as conn:
            yield conn


class Overshoot(Exception):
    """A trial started beyond the study's budget (the budget lock died while the trial was created)."""


def lock(engine: sa.Engine, study_id: int) -> locks.Lock:
    """The study's budget lock (storage.locks): one worker at a time counts and creates its next trial.
    On SQLite it is byte `study_id` of DB-lock (byte 0 is the schema's)."""
    return locks.Lock(engine, f"sweeper-budget#{study_id}", study_id)


class Gate:
    """One worker's way through its study's budget: `reserve()` holds the budget lock from the count
    until the trial exists, which the objective says by calling `confirm()`. With the study's `uid`
    (storage.studies.uid, read when the worker started), a study deleted or replaced is Step.GONE."""

    def __init__(self, study, storage, study_id: int, n_trials: int, uid: str | None = None):
        self._study, self._engine, self._study_id, self._n_trials = study, storage.engine, study_id, n_trials
        self._uid = uid
        self._held = None  # the lock while a reservation waits for its trial

    @contextlib.contextmanager
    def reserve(self) -> Iterator[Step]:
        """The next step, decided under the budget lock (taken again after a transient database
        error); the lock is held until `confirm()` or the end of the block, whichever comes first."""
        held = retry.call(self._decide, _what="budget check")
        self._held = held[0]
        try:
            yield held[1]
        finally:
            self._held = None
            held[0].release()

    def confirm(self) -> None:
        """This worker's trial exists: free the budget lock so that others count it.

        A database restart while the lock is held kills it: another worker may then count without this
        worker's trial (still being created, retried) and start one of its own. Then this one gives
        way: Overshoot, if the trial is one too many.
        """
        held, self._held = self._held, None
        if held is None or held.release():
            return
        now = counts(self._engine, self._study_id, n_trials=self._n_trials)
        if now.done + now.running > now.budget:
            raise Overshoot(f"not run: the budget lock was lost in a database restart and the study's "
                            f"{now.budget} trials were already taken")

    def gone(self) -> bool:
        """Whether the study was deleted or replaced since the worker started (never without a `uid`)."""
        return self._uid is not None and studies.gone(self._engine, self._study_id, self._uid)

    def step(self, bind) -> Step:
        """GONE (deleted or replaced), STOPPED (sweeper stop), else RUN, WAIT or DONE (Counts.next_step);
        call it under the lock.

        Before waiting on running trials, fail the stale ones (their worker died): each is retried as
        a WAITING trial, which this worker then runs.
        """
        now = counts(bind, self._study_id, n_trials=self._n_trials, uid=self._uid)
        if now.gone:
            return Step.GONE
        if now.stopped:
            return Step.STOPPED
        step = now.next_step()
        if step is Step.WAIT:
            import optuna

            with optuna_experimental():
                optuna.storages.fail_stale_trials(self._study)
            step = counts(bind, self._study_id, n_trials=self._n_trials).next_step()
        return step

    def _decide(self) -> tuple[locks.Lock, Step]:
        """Take the budget lock and decide; on an error the lock is freed (and the caller retries)."""
        held = lock(self._engine, self._study_id).acquire()
        try:
            return held, self.step(held.bind)
        except BaseException:
            held.release()
            raise
