"""The Optuna objective of a sweeper study: one trial's life (start, train or copy, finish) over one record.

Per trial: sample the searched parameters from the stored distributions and say who runs it and what
run it is (storage.contract.runkey); train it, going on from a checkpoint the trial it retries left
(workers.checkpoints), or take the same run that another study trained (workers.reuse, unless
$SWEEPER_REUSE is 0); write an epoch row and report the metric after each epoch (workers.writes;
pruning when the pruner says so); and store how it ended as its user attrs (storage.contract.outcome).
The attrs are written together, in one transaction each time: every storage call costs a worker
milliseconds of SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass, replace
from typing import Callable

import optuna

from storage.contract import outcome
from storage.contract.errors import BadInput
from storage.contract.outcome import FAIL, PRUNED, Outcome
from storage.contract.params import VALID_SIZE
from storage.contract.samplers import suggest
from storage.contract.spec import SEED
from workers import checkpoints, reuse, writes
from workers.record import TrialRecord
from workers.resume import Resume
from workers.writes import TrialLost

WORKER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Core:
    """The training core: `train` and `load`, and the `failures` that fail one trial, not the worker."""

    train: Callable
    load: Callable
    failures: tuple = ()  # a diverged run, bad parameters, an overshot budget


@dataclass(frozen=True)
class Hooks:
    """What the worker lends each trial (each optional): `on_start()`, called once the trial exists (the
    budget gate frees its lock there); `stop_now`, an Event: set, the trial stops after its epoch
    (KeyboardInterrupt); `gone()`, True once the study was deleted or replaced, asked before each
    epoch's writes and the result's where a new study may take its ids (SQLite): StudyGone then,
    which Optuna lets through untold; `keep(trial, result, value)` keeps a complete trial's weights
    (workers.keeper); `checkpoints` holds running trials' states, from which a retry resumes."""

    on_start: Callable | None = None
    stop_now: object = None
    gone: Callable | None = None
    keep: Callable | None = None
    checkpoints: checkpoints.Checkpoints | None = None


class Objective:
    """Callable(trial) -> metric value for the study `study_id` in `storage`: its trials train with
    `core`, lent the worker's `hooks`. `last` is the last trial's TrialRecord."""

    def __init__(self, spec, storage, study_id: int, core: Core, hooks: Hooks = Hooks()):
        self.spec, self.storage, self.study_id, self.core, self.hooks = spec, storage, study_id, core, hooks
        self.last: TrialRecord | None = None
        self._reuse, self._resume = reuse.enabled(), Resume(hooks.checkpoints, storage, study_id, spec)
        self._writer = writes.Writer(spec, storage.engine, study_id, hooks.stop_now, hooks.gone)

    def __call__(self, trial: optuna.Trial) -> float:
        self.last = record = TrialRecord(trial.number)
        try:
            return self._life(trial, record)
        except KeyboardInterrupt:
            record.interrupted = True
            raise

    def _life(self, trial: optuna.Trial, record: TrialRecord) -> float:
        """Start, train or copy, finish: each way it ends without a result goes through `_ending`."""
        if self.hooks.on_start is not None:
            with self._ending(trial, record, catch=self.core.failures):  # budget.Overshoot: it fails unrun
                self.hooks.on_start()
        params, seed = self._start(trial, record)
        on_epoch = self._writer.on_epoch(trial, record)
        if record.source is not None:
            return self._copy(trial, record, on_epoch)
        return self._train(trial, record, params, seed, on_epoch)

    def _start(self, trial: optuna.Trial, record: TrialRecord) -> tuple[dict, int]:
        """Sample its parameters, find its run, say who runs it: (its training parameters, its seed)."""
        record.params = suggest(trial, self.spec.space)
        params = {**self.spec.fixed, **record.params}
        seed = params.pop(SEED, self.spec.seed)  # a replicate's training seed ([study] repeats)
        key, record.source = reuse.find(self.spec, self.storage, self.study_id, params, seed, self._reuse)
        origin = record.source.origin if record.source is not None else None
        record.outcome = replace(record.outcome, worker=WORKER, run_key=key, shared_from=origin)
        record.written = record.outcome
        first = record.outcome.to_attrs()
        first.update(outcome.inherited(trial.user_attrs, first))  # a retry inherits its predecessor's attrs
        record.writes = self._writer.writes()  # after the params (two SQLite writers wait on its file lock)
        record.writes.submit(self._set_attrs, trial, first)
        return params, seed

    def _copy(self, trial: optuna.Trial, record: TrialRecord, on_epoch) -> float:
        """Take another study's run instead of training it: its epochs as if trained now, its result."""
        record.begun = time.perf_counter()
        with self._ending(trial, record):
            with self._waiting(record):
                reuse.replay(record.source, on_epoch)
            ended = self._store(trial, record, reuse.copied(record.source, record.outcome))
        record.outcome, record.value = ended, self.spec.metric_value(record.source.valid_error)
        return record.value

    def _train(self, trial: optuna.Trial, record: TrialRecord, params: dict, seed: int, on_epoch) -> float:
        """Train its run, from a checkpoint of a trial it retries where one can be used; store the result."""
        spec, draws = self.spec, self.spec.seed_draws
        data = self.core.load(spec.dataset, valid_size=params.get("valid_size", VALID_SIZE),
                              split=params.get("split", "random"),
                              split_seed=seed if "split" in draws else None)
        record.begun = time.perf_counter()
        left = self._resume.left(trial)
        with self._ending(trial, record, left):
            with self._waiting(record):
                like = lambda: checkpoints.fresh(spec.model, params, data)  # noqa: E731
                result = self.core.train(spec.model, params, data, epochs=spec.epochs, steps=spec.steps,
                                         seed=seed, on_epoch=on_epoch, draws=draws, fixed_seed=spec.seed,
                                         **self._resume.arguments(trial, record, left, like))
            record.stop_clock()
            ended = self._store(trial, record, record.trained(result))
        value = self.spec.metric_value(result.valid_error)
        if self.hooks.keep is not None:
            self.hooks.keep(trial, result, value)
        self._resume.remove(trial, left)  # the last thing before Optuna stores the result
        record.outcome, record.value = ended, value
        return value

    @contextlib.contextmanager
    def _ending(self, trial: optuna.Trial, record: TrialRecord, left: list | None = None,
                catch=(Exception, KeyboardInterrupt)):
        """What ends the trial inside without a result: `_finish` it, and remove its checkpoints and those
        it retries (`left`), unless it was cut short (its retry resumes from them)."""
        try:
            yield
        except catch as exc:
            why = writes.lost(exc)
            self._finish(trial, record, why)
            if not isinstance(why, (KeyboardInterrupt, TrialLost)):
                self._resume.remove(trial, left)
            if why is not exc:
                raise why from None
            raise

    def _finish(self, trial: optuna.Trial, record: TrialRecord, exc: BaseException) -> None:
        """The attrs of a trial that ends without a result (pruned or failed). Nothing is written into
        a lost trial; when the database is what failed, it is tried once (storage.retry.outage)."""
        record.stop_clock()
        record.lost = isinstance(exc, TrialLost)
        state = PRUNED if isinstance(exc, optuna.TrialPruned) else FAIL
        record.outcome = replace(record.outcome, state=state, reason=self._why(exc),
                                 seconds=round(record.train_seconds, 3))
        if not record.lost:
            self._set_attrs(trial, record.outcome.to_attrs(since=record.written))

    def _why(self, exc: BaseException) -> str:
        """Why a trial ended without a result."""
        if isinstance(exc, (TrialLost, optuna.TrialPruned, BadInput, *self.core.failures)):
            return str(exc)
        if isinstance(exc, KeyboardInterrupt):
            return "interrupted: its worker was stopped"
        return f"{type(exc).__name__}: {exc}"

    def _store(self, trial: optuna.Trial, record: TrialRecord, ended: Outcome) -> Outcome:
        """Write the result `ended` into the trial's attrs, unless its study is gone; `ended` back."""
        record.writes.check(self.hooks.gone)
        self._set_attrs(trial, ended.to_attrs(since=record.written))
        return ended

    @contextlib.contextmanager
    def _waiting(self, record: TrialRecord):
        """Run the block, then wait for the trial's background writes (whatever the block did)."""
        try:
            yield
        finally:
            self._wait(record)

    def _wait(self, record: TrialRecord) -> None:
        """Block until the trial's background writes are done; raise the first one's error."""
        record.timed(record.writes.wait)()

    def _set_attrs(self, trial: optuna.Trial, attrs: dict) -> None:
        """Several user attrs of the trial in one transaction (storage.lean.LeanRDBStorage)."""
        self.storage.set_trial_user_attrs(trial._trial_id, attrs)

    def close(self) -> None:
        """Stop the background writer (its writes are done: each trial waits for them)."""
        self._writer.close()


