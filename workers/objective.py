"""The Optuna objective of a sweeper study: the only module that knows Optuna's `trial`.

Per trial: sample the searched parameters from the stored distributions, train with the core,
write one epoch row and report the metric after each epoch (pruning when the pruner says so), and
record the outcome as user attrs: `worker` (host:pid, set first), `test_error`, `report` (the
per-class report), and `outcome` (epochs_run, seconds in training, stopped_early, confident_n,
confident_precision); a trial that fails or is pruned gets `fail_reason` or `prune_reason` and an
`outcome` with the epochs it ran and its last validation error. The attrs are written together, in one
transaction each time: every storage call costs a worker milliseconds of SQLAlchemy.
"""

from __future__ import annotations

import math
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import optuna

from storage import epochs
from storage.contract.errors import BadInput
from storage.contract.params import VALID_SIZE
from storage.contract.spec import SEED

WORKER = f"{socket.gethostname()}:{os.getpid()}"


class Objective:
    """Callable(trial) -> metric value for one study; `train` and `load` are the training core's."""

    def __init__(self, spec, storage, study_id: int, *, train, load, expected=()):
        self.spec, self.storage, self.study_id = spec, storage, study_id
        self._train, self._load = train, load
        self.expected = tuple(expected)  # exceptions that fail one trial (e.g. Diverged), not the worker
        self.on_start = None  # called once the trial exists (the worker frees its budget lock there)
        self.running = None  # the number of the trial in progress (the worker clears it after each)
        self.last = None  # the last trial's number, state, params and outcome, for the worker's log line
        self.stop_now = None  # an Event: set, the trial stops after its current epoch (KeyboardInterrupt)
        self.train_seconds = 0.0  # time inside train() in the last trial, less the epoch callback's
        self.callback_seconds = 0.0  # time the last trial spent writing epoch rows, reporting, pruning
        self._pruning = spec.pruner["name"] != "none"
        # Writes that no decision waits for (epoch rows; reports when nothing prunes) go to one
        # background thread, in order, while the network trains; a trial ends only when all are done.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweeper-writes")

    def __call__(self, trial: optuna.Trial) -> float:
        self.running = trial.number
        self.last = None
        self.train_seconds = self.callback_seconds = 0.0
        seen = {"epoch": 0, "valid_error": math.nan}
        if self.on_start is not None:
            try:
                self.on_start()
            except self.expected as exc:  # e.g. budget.Overshoot: the trial fails with its reason, unrun
                self._finish(trial, {}, time.perf_counter(), seen, **self._why(exc))
                raise
        searched = suggest(trial, self.spec.space)
        first = {"worker": WORKER}
        if trial.user_attrs.get("fail_reason"):  # a retry inherits its predecessor's attrs
            first["fail_reason"] = None
        # in the background, after the params (on SQLite two writers at once wait on its file lock)
        writes = [self._writer.submit(self._set_attrs, trial, first)]
        params = {**self.spec.fixed, **searched}
        seed = params.pop(SEED, self.spec.seed)  # a replicate's training seed ([study] repeats)
        on_epoch = self._on_epoch(trial, writes, seen)
        data = self._load(self.spec.dataset, valid_size=params.get("valid_size", VALID_SIZE))
        start = time.perf_counter()
        try:
            try:
                result = self._train(self.spec.model, params, data, epochs=self.spec.epochs, seed=seed,
                                     on_epoch=on_epoch)
            finally:
                self._wait(writes)
        except (Exception, KeyboardInterrupt) as exc:
            self._finish(trial, searched, start, seen, **self._why(exc))
            raise
        self._timed(start)
        self._set_attrs(trial, {
            "test_error": result.test_error, "report": result.report,
            "outcome": dict(epochs_run=result.epochs_run, seconds=round(self.train_seconds, 3),
                            stopped_early=result.stopped_early, confident_n=result.confident["n"],
                            confident_precision=_json_number(result.confident["precision"]))})
        value = self.spec.metric_value(result.valid_error)
        self.last = dict(number=trial.number, state="COMPLETE", params=searched, epochs=result.epochs_run,
                         seconds=self.train_seconds, what=f"value {value:.4f} test_error {result.test_error:.4f}")
        return value

    def _why(self, exc: BaseException) -> dict:
        """The attr that says why a trial ended without a result: prune_reason or fail_reason."""
        if isinstance(exc, optuna.TrialPruned):
            return {"prune_reason": str(exc)}
        if isinstance(exc, (BadInput, *self.expected)):
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

    def _on_epoch(self, trial: optuna.Trial, writes: list, seen: dict):
        """The callback train() calls after each epoch: write its row, report, prune when told."""
        trial_id = trial._trial_id  # Optuna's key of the trial's row: the epoch table refers to it

        def on_epoch(record) -> None:
            if self.stop_now is not None and self.stop_now.is_set():
                raise KeyboardInterrupt
            begun = time.perf_counter()
            writes.append(self._writer.submit(
                epochs.write, self.storage.engine, study_id=self.study_id, trial_id=trial_id, trial=trial.number,
                epoch=record.epoch, **{k: getattr(record, k) for k in epochs.COLUMNS}))
            seen.update(epoch=record.epoch, valid_error=record.valid_error)
            value = self.spec.metric_value(record.valid_error)
            prune = False
            if self._pruning:
                trial.report(value, record.epoch)
                prune = trial.should_prune()
            else:
                writes.append(self._writer.submit(trial.report, value, record.epoch))
            self.callback_seconds += time.perf_counter() - begun
            if prune:
                raise optuna.TrialPruned(f"pruned at epoch {record.epoch} by the {self.spec.pruner['name']} "
                                         f"pruner: {self.spec.metric} {value:.4f}")

        return on_epoch

    def _wait(self, writes: list) -> None:
        """Block until the trial's background writes are done; raise the first one's error."""
        begun = time.perf_counter()
        try:
            for future in writes:
                future.result()
        finally:
            self.callback_seconds += time.perf_counter() - begun

    def _timed(self, start: float) -> None:
        """Time in train() less the epoch callback's (rows, reports: what the sweep adds)."""
        self.train_seconds = time.perf_counter() - start - self.callback_seconds

    def _finish(self, trial, searched: dict, start: float, seen: dict, **reason: str) -> None:
        """Attributes of a trial that ends without a result (pruned or failed)."""
        self._timed(start)
        self.last = dict(number=trial.number, state="PRUNED" if "prune_reason" in reason else "FAIL",
                         params=searched, epochs=seen["epoch"], seconds=self.train_seconds,
                         what=next(iter(reason.values())))
        self._set_attrs(trial, {**reason, "outcome": dict(epochs_run=seen["epoch"], seconds=round(self.train_seconds, 3),
                                                          valid_error=_json_number(seen["valid_error"]))})


def suggest(trial: optuna.Trial, space: dict) -> dict:
    """Sample every searched parameter from its stored distribution (fixed for enqueued trials)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    params = {}
    for name, dist in space.items():
        if isinstance(dist, FloatDistribution):
            params[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
        elif isinstance(dist, IntDistribution):
            params[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
        elif isinstance(dist, CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, dist.choices)
        else:
            raise TypeError(f"unsupported distribution for {name}: {dist!r}")
    return params


def _json_number(x: float) -> float | None:
    """NaN is not JSON: store None instead (the dashboard parses attrs as JSON)."""
    return None if x is None or not math.isfinite(x) else float(x)
