"""The Optuna objective of a sweeper study: the only module that knows Optuna's `trial`.

Per trial: sample the searched parameters from the stored distributions, train with the core,
write one epoch row and report the metric after each epoch (pruning when the pruner says so), and
record the outcome as user attrs: `worker` (host:pid, set first), `test_error`, `test_correct` (each
test image right or wrong, storage.contract.flags), `report` (the per-class report), and `outcome` (epochs_run, seconds in training, stopped_early, confident_n,
confident_precision); a trial that fails or is pruned gets `fail_reason` or `prune_reason` and an
`outcome` with the epochs it ran and its last validation error. Each trial stores its `run_key`
(storage.contract.runkey); one whose run another study has already trained takes that trial's epochs
and results instead of training (`shared_from`: {"study", "trial"}), unless $SWEEPER_REUSE is 0.
The attrs are written together, in one transaction each time: every storage call costs a worker
milliseconds of SQLAlchemy.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
import time
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import optuna
from optuna.exceptions import UpdateFinishedTrialError

from storage import epochs, shared
from storage.contract import flags, runkey
from storage.contract.errors import BadInput
from storage.contract.params import VALID_SIZE
from storage.contract.samplers import suggest
from storage.contract.spec import SEED
from storage.studies import StudyGone
from workers import checkpoints

WORKER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class TrialLog:
    """What the objective knows of its last trial, for the worker's log line and its requeue."""

    number: int
    state: str = "RUNNING"  # then COMPLETE, PRUNED or FAIL
    params: dict = field(default_factory=dict)  # the searched ones
    epochs: int = 0
    what: str = ""  # the value, or why it failed or was pruned
    train_seconds: float = 0.0  # time inside train() less the epoch callback's
    callback_seconds: float = 0.0  # time writing epoch rows, reporting, pruning
    interrupted: bool = False  # cut short by a second signal (the worker queues it again)
    lost: bool = False  # taken from this worker (failed as stale by another one): nothing more written into it
    resumed: int = 0  # the epoch of the checkpoint it went on from (0: it started at epoch 1)


class TrialLost(Exception):
    """The trial is no longer this worker's: another worker failed it as stale (this one stopped
    beating for longer than the grace, e.g. SIGSTOP) and may have retried it."""


class Writes:
    """One trial's writes that no decision waits for (epoch rows; reports when nothing prunes), run in
    order on the objective's background thread while the network trains.

    After the first failed write the rest are dropped, not tried (a database that is gone would
    make each wait out its own retries); `error` is that failure, which the next epoch raises.
    """

    def __init__(self, pool: ThreadPoolExecutor):
        self._pool, self._futures, self.error = pool, [], None

    def submit(self, fn, *args, **kwargs) -> None:
        def job():
            if self.error is not None:
                return
            try:
                fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - kept for the trial, raised by wait() and the next epoch
                self.error = self.error or _lost(exc)  # not over a StudyGone the trial set meanwhile

        self._futures.append(self._pool.submit(job))

    def wait(self) -> None:
        """Block until every write is done or dropped; raise the first failure."""
        futures.wait(self._futures)
        if self.error is not None:
            raise self.error


class Objective:
    """Callable(trial) -> metric value for one study, given its collaborators when it is built.

    `train` and `load` are the training core's; `failures` the exceptions that fail one trial (a
    diverged run, bad parameters), not the worker; `on_start()` is called once the trial exists (the
    budget gate frees its lock there); `stop_now` an Event: set, the trial stops after its current
    epoch (KeyboardInterrupt); `keep(trial, result, value)` keeps a complete trial's weights
    (workers.keeper); `checkpoints` (a folder, or None) holds each running trial's training state
    every `[study] checkpoint_every` epochs, from which a retry resumes; `gone()` (or None) is True once
    the study was deleted or replaced, asked before each epoch's writes and the result's where a new
    study may take the deleted one's ids (SQLite), since a trial's writes go by id: StudyGone then,
    which Optuna lets through untold. `last` is the last trial's TrialLog.
    """

    def __init__(self, spec, storage, study_id: int, *, train, load, failures=(), on_start=None, stop_now=None,
                 gone=None, keep=None, checkpoints=None):
        self.spec, self.storage, self.study_id = spec, storage, study_id
        self._train, self._load, self._keep, self._checkpoints = train, load, keep, checkpoints
        self.failures = tuple(failures)
        self._on_start, self._stop_now, self._gone = on_start, stop_now, gone
        self.last: TrialLog | None = None
        self._pruning = spec.pruner["name"] != "none"
        self._reuse = _reuse_on()
        # Writes that no decision waits for (epoch rows; reports when nothing prunes) go to one
        # background thread, in order, while the network trains; a trial ends only when all are done.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweeper-writes")

    def __call__(self, trial: optuna.Trial) -> float:
        self.last = TrialLog(trial.number)
        try:
            return self._run(trial, self.last)
        except KeyboardInterrupt:
            self.last.interrupted = True
            raise

    def _run(self, trial: optuna.Trial, log: TrialLog) -> float:
        seen = {"epoch": 0, "valid_error": math.nan}
        if self._on_start is not None:
            try:
                self._on_start()
            except self.failures as exc:  # e.g. budget.Overshoot: the trial fails with its reason, unrun
                self._finish(trial, log, time.perf_counter(), seen, **self._why(exc))
                raise
        log.params = suggest(trial, self.spec.space)
        params = {**self.spec.fixed, **log.params}
        seed = params.pop(SEED, self.spec.seed)  # a replicate's training seed ([study] repeats)
        key, source = self._shared(params, seed)
        first = {"worker": WORKER, runkey.ATTR: key, **({"shared_from": source.origin} if source else {})}
        for inherited in ("fail_reason", "shared_from"):  # a retry inherits its predecessor's attrs
            if trial.user_attrs.get(inherited) and inherited not in first:
                first[inherited] = None
        writes = Writes(self._writer)  # after the params (on SQLite two writers at once wait on its file lock)
        writes.submit(self._set_attrs, trial, first)
        on_epoch = self._on_epoch(trial, log, writes, seen)
        if source is not None:
            return self._copy(trial, log, source, writes, on_epoch, seen)
        draws = self.spec.seed_draws
        data = self._load(self.spec.dataset, valid_size=params.get("valid_size", VALID_SIZE),
                          split=params.get("split", "random"), split_seed=seed if "split" in draws else None)
        start = time.perf_counter()
        mine, theirs = self._checkpoint_paths(trial)
        try:
            try:
                resume = self._resume(trial, log, theirs, seen, lambda: self._fresh_state(params, data))
                saving = dict(every=self.spec.checkpoint_every, resume=resume,
                              on_checkpoint=self._on_checkpoint(mine, log, writes)) if mine is not None else {}
                result = self._train(self.spec.model, params, data, epochs=self.spec.epochs, steps=self.spec.steps,
                                     seed=seed, on_epoch=on_epoch, draws=draws, fixed_seed=self.spec.seed,
                                     **saving)
            finally:
                self._wait(log, writes)
            _timed(log, start)
            self._still_mine(writes)
            self._set_attrs(trial, {
                "test_error": result.test_error, "report": result.report,
                **({"test_correct": flags.pack(result.test_correct)} if result.test_correct is not None else {}),
                "outcome": dict(epochs_run=result.epochs_run, steps_run=result.steps_run,
                                steps_per_epoch=result.steps_per_epoch, train_images=result.train_images,
                                near_zero=result.near_zero, valid_images=result.valid_images,
                                test_images=result.test_images,
                                train_error_clean=_json_number(result.train_error_clean),
                                seconds=round(log.train_seconds, 3),
                                stopped_early=result.stopped_early, confident_n=result.confident["n"],
                                confident_precision=_json_number(result.confident["precision"]))})
        except (Exception, KeyboardInterrupt) as exc:
            exc = _lost(exc)
            self._finish(trial, log, start, seen, **self._why(exc))
            if not isinstance(exc, (KeyboardInterrupt, TrialLost)):  # else its retry resumes from them
                _remove(mine, *(path for _, path in theirs))
            if isinstance(exc, TrialLost):
                raise exc from None
            raise
        value = self.spec.metric_value(result.valid_error)
        if self._keep is not None:
            self._keep(trial, result, value)
        _remove(mine, *(path for _, path in theirs))  # the last thing before Optuna stores the result
        log.state, log.epochs = "COMPLETE", result.epochs_run
        log.what = f"value {value:.4f} test_error {result.test_error:.4f}"
        return value

    def _shared(self, params: dict, seed: int) -> tuple:
        """(the trial's training key, the COMPLETE trial of another study that trained the same run or
        None); the key is None for parameters that train() refuses (it fails the trial with the reason)."""
        try:
            key = runkey.key(self.spec, params, seed)
        except BadInput:
            return None, None
        return key, shared.find(self.storage.engine, key, self.study_id) if self._reuse else None

    def _copy(self, trial: optuna.Trial, log: TrialLog, source: shared.Source, writes: Writes, on_epoch,
              seen: dict) -> float:
        """Take `source`'s run instead of training it again: its epochs go through `on_epoch` as if they
        were trained now (rows, reports, the pruner), then its result's attrs are this trial's."""
        start = time.perf_counter()
        try:
            try:
                for record in source.epochs:
                    on_epoch(record)
            finally:
                self._wait(log, writes)
            self._still_mine(writes)
            self._set_attrs(trial, source.attrs)
        except (Exception, KeyboardInterrupt) as exc:
            exc = _lost(exc)
            self._finish(trial, log, start, seen, **self._why(exc))
            if isinstance(exc, TrialLost):
                raise exc from None
            raise
        value = self.spec.metric_value(source.valid_error)
        log.state, log.epochs = "COMPLETE", seen["epoch"]
        log.what = (f"reused trial {source.number} of study {source.study}: value {value:.4f} "
                    f"test_error {source.attrs.get('test_error', math.nan):.4f}")
        return value

    def _checkpoint_paths(self, trial: optuna.Trial) -> tuple:
        """(this trial's checkpoint, [(number, checkpoint)] of the trials it retries that left one, latest
        first); (None, []) when off. It resumes from the latest: a retry killed before its first
        checkpoint leaves none."""
        if self._checkpoints is None or not self.spec.checkpoint_every:
            return None, []
        history = self.storage.get_trial_system_attrs(trial._trial_id).get("retry_history") or []
        left = [(n, checkpoints.path(self._checkpoints, self._study_key, n)) for n in reversed(history)]
        mine = checkpoints.path(self._checkpoints, self._study_key, trial.number)
        return mine, [(n, path) for n, path in left if path.exists()]

    @functools.cached_property
    def _study_key(self) -> str:
        """The study's part of its checkpoints' names: unique across databases and deleted studies
        (storage.studies.uid), read once."""
        from storage import studies

        return studies.uid(self.storage, self.study_id)

    def _on_checkpoint(self, path, log: TrialLog, writes: Writes):
        """The callback train() calls with its state every few epochs: once the epoch rows it covers
        are committed, write it (time the sweep adds). A checkpoint that cannot be written is one log
        line, and the trial goes on without more."""
        failed = []

        def save(state: dict) -> None:
            begun = time.perf_counter()
            try:
                writes.wait()  # rows 1..epoch are in the database before the file that says so
                if not failed:
                    checkpoints.save(dict(state, mode=self._mode()), path)
            except (OSError, BadInput) as exc:  # BadInput: a read-only file where it goes
                failed.append(exc)
                logging.getLogger("sweeper.worker").warning("trial %d: no more checkpoints: %s", log.number, exc)
            finally:
                log.callback_seconds += time.perf_counter() - begun

        return save

    @staticmethod
    def _mode() -> str:
        """The compile mode the state belongs to (a checkpoint of another backend is not resumed)."""
        from workers import runtime

        return runtime.compile_mode()

    def _resume(self, trial: optuna.Trial, log: TrialLog, left: list, seen: dict, like) -> dict | None:
        """The training state of the latest usable checkpoint in `left` (see _checkpoint_paths), with
        their epoch rows and reports carried over into this trial; None when there is none (the retry
        starts at epoch 1). `like()`: the trial's fresh training state, which a usable one matches
        (workers.checkpoints.mismatch). Each one passed over is one log line."""
        say = logging.getLogger("sweeper.worker").warning
        fresh = None
        for source, path in left:
            if not path.is_file():
                say("trial %d: checkpoint %s is not a file: passed over (remove it)", trial.number, path)
                continue
            try:
                state = checkpoints.load(path)
            except Exception as exc:  # noqa: BLE001 - a damaged file costs the epochs it held, not the trial
                say("trial %d: checkpoint %s cannot be read (%s)", trial.number, path, exc)
                continue
            if state.get("mode") != self._mode():
                say("trial %d: checkpoint %s is of another backend (%s)", trial.number, path, state.get("mode"))
                continue
            fresh = like() if fresh is None else fresh
            why = checkpoints.mismatch(state, fresh, self.spec.epochs)
            if why is not None:
                say("trial %d: checkpoint %s does not match this trial: %s", trial.number, path, why)
                continue
            rows = epochs.carry(self.storage.engine, study_id=self.study_id, source=source, trial_id=trial._trial_id,
                                trial=trial.number, up_to=state["epoch"])
            if [epoch for epoch, _ in rows] == list(range(1, state["epoch"] + 1)):
                return self._resumed(trial, log, state, rows, source, seen)
            epochs.drop_trial(self.storage.engine, trial._trial_id)
            say("trial %d: checkpoint %s is ahead of its epoch rows", trial.number, path)
        if left:
            say("trial %d starts at epoch 1: no checkpoint of its predecessors can be used", trial.number)
        return None

    def _fresh_state(self, params: dict, data) -> dict:
        """The training state of the network train() builds for `params` on `data` (compiled once per
        architecture, as train() would): the shapes, types and generator a checkpoint must match."""
        from storage.contract.params import resolve
        from workers import compiled

        config = resolve(self.spec.model, params)
        return compiled.network(self.spec.model, config, data.image_shape, data.n_classes).training_state()

    def _resumed(self, trial: optuna.Trial, log: TrialLog, state: dict, rows: list, source: int, seen: dict):
        """Report the carried epochs to the pruner and say so: the state train() resumes from."""
        for epoch, valid_error in rows:
            trial.report(self.spec.metric_value(valid_error), epoch)
        seen.update(epoch=state["epoch"], valid_error=rows[-1][1] if rows else math.nan)
        log.resumed = state["epoch"]
        logging.getLogger("sweeper.worker").info("trial %d resumes trial %d from its checkpoint at epoch %d",
                                                 trial.number, source, state["epoch"])
        return state

    def _why(self, exc: BaseException) -> dict:
        """The attr that says why a trial ended without a result: prune_reason or fail_reason."""
        if isinstance(exc, TrialLost):
            return {"lost": str(exc)}
        if isinstance(exc, optuna.TrialPruned):
            return {"prune_reason": str(exc)}
        if isinstance(exc, (BadInput, *self.failures)):
            return {"fail_reason": str(exc)}
        if isinstance(exc, KeyboardInterrupt):
            return {"fail_reason": "interrupted: its worker was stopped"}
        return {"fail_reason": f"{type(exc).__name__}: {exc}"}

    def _set_attrs(self, trial: optuna.Trial, attrs: dict) -> None:
        """Several user attrs of the trial in one transaction (storage.lean.LeanRDBStorage)."""
        self.storage.set_trial_user_attrs(trial._trial_id, attrs)

    def close(self) -> None:
        """Stop the background writer (its writes are done: each trial waits for them)."""
        self._writer.shutdown(wait=True)

    def _on_epoch(self, trial: optuna.Trial, log: TrialLog, writes: Writes, seen: dict):
        """The callback train() calls after each epoch: write its row, report, prune when told; stop
        when a write failed (the database is gone, or the trial was taken from this worker)."""
        trial_id = trial._trial_id  # Optuna's key of the trial's row: the epoch table refers to it

        def on_epoch(record) -> None:
            if self._stop_now is not None and self._stop_now.is_set():
                raise KeyboardInterrupt
            self._still_mine(writes)
            if writes.error is not None:
                raise writes.error
            begun = time.perf_counter()
            writes.submit(self._write_epoch, trial_id, trial.number, record)
            seen.update(epoch=record.epoch, valid_error=record.valid_error)
            value = self.spec.metric_value(record.valid_error)
            prune = False
            if self._pruning:
                trial.report(value, record.epoch)
                prune = trial.should_prune()
            else:
                writes.submit(trial.report, value, record.epoch)
            log.callback_seconds += time.perf_counter() - begun
            if prune:
                raise optuna.TrialPruned(f"pruned at epoch {record.epoch} by the {self.spec.pruner['name']} "
                                         f"pruner: {self.spec.metric} {value:.4f}")

        return on_epoch

    def _still_mine(self, writes: Writes) -> None:
        """StudyGone, and the trial's queued writes dropped, once `gone()` says the study was deleted or replaced."""
        if self._gone is not None and self._gone():
            writes.error = StudyGone()
            raise writes.error

    def _write_epoch(self, trial_id: int, number: int, record) -> None:
        """One epoch row, only while the trial is RUNNING (TrialLost otherwise)."""
        if not epochs.write(self.storage.engine, study_id=self.study_id, trial_id=trial_id, trial=number,
                            epoch=record.epoch, while_running=True, **{k: getattr(record, k) for k in epochs.COLUMNS}):
            raise TrialLost(f"trial {number} was failed by another worker at epoch {record.epoch} (no heartbeat "
                            "from this one for longer than the grace)")

    def _wait(self, log: TrialLog, writes: Writes) -> None:
        """Block until the trial's background writes are done; raise the first one's error."""
        begun = time.perf_counter()
        try:
            writes.wait()
        finally:
            log.callback_seconds += time.perf_counter() - begun

    def _finish(self, trial, log: TrialLog, start: float, seen: dict, **reason: str) -> None:
        """Attributes of a trial that ends without a result (pruned or failed). Nothing is written into
        a lost trial; when the database is what failed, it is tried once (storage.retry.outage)."""
        _timed(log, start)
        log.state = "PRUNED" if "prune_reason" in reason else "FAIL"
        log.epochs, log.what = seen["epoch"], next(iter(reason.values()))
        if "lost" in reason:
            log.lost = True
            return
        self._set_attrs(trial, {**reason, "outcome": dict(epochs_run=seen["epoch"], seconds=round(log.train_seconds, 3),
                                                          valid_error=_json_number(seen["valid_error"]))})


def _reuse_on() -> bool:
    """$SWEEPER_REUSE: 1 (or unset) copies a run another study trained; 0 trains every trial."""
    text = os.environ.get("SWEEPER_REUSE", "1").strip()
    if text not in ("0", "1"):
        raise BadInput(f"SWEEPER_REUSE={text!r} is not 0 or 1: set 0 to train every trial, or unset it to reuse "
                       "runs that other studies trained")
    return text == "1"


def _lost(exc: BaseException) -> BaseException:
    """A write refused because the trial is finished means another worker took it: TrialLost."""
    if isinstance(exc, UpdateFinishedTrialError):
        return TrialLost(f"the trial was finished by another worker ({exc})")
    return exc


def _remove(*paths) -> None:
    """Remove the checkpoints of a trial that ended (they are kept for a retry when it was cut short).
    What is not a file there (a folder: passed over when read) is left; a file that cannot be
    removed is one log line, never the trial's failure."""
    for path in paths:
        if path is None or path.is_dir():
            continue
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            logging.getLogger("sweeper.worker").warning("checkpoint %s not removed (%s): remove it by hand", path,
                                                        exc.strerror or exc)


def _timed(log: TrialLog, start: float) -> None:
    """Time in train() less the epoch callback's (rows, reports: what the sweep adds)."""
    log.train_seconds = time.perf_counter() - start - log.callback_seconds


def _json_number(x: float) -> float | None:
    """NaN is not JSON: store None instead (the dashboard parses attrs as JSON)."""
    return None if x is None or not math.isfinite(x) else float(x)
