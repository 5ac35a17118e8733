"""The epoch writer: each epoch's row, report and pruning; the writes no decision waits for on one thread."""

from __future__ import annotations

import time
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor

import optuna
from optuna.exceptions import UpdateFinishedTrialError

from storage import epochs
from storage.studies import StudyGone


class TrialLost(Exception):
    """The trial is no longer this worker's: another worker failed it as stale (this one stopped
    beating for longer than the grace, e.g. SIGSTOP) and may have retried it."""


class Writer:
    """The epoch writer of a study's trials: train()'s callback after each epoch (its row, its report, the
    pruner), and the one background thread where the writes that no decision waits for go, in order,
    while the network trains. `stop_now` and `gone` are the worker's (workers.objective.Hooks)."""

    def __init__(self, spec, engine, study_id: int, stop_now=None, gone=None):
        self.spec, self.engine, self.study_id = spec, engine, study_id
        self.stop_now, self.gone = stop_now, gone
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweeper-writes")

    def writes(self) -> Writes:
        """A new trial's queue of writes."""
        return Writes(self._pool)

    def on_epoch(self, trial, record):
        """The callback train() calls after each epoch of `trial`: write its row, report, prune when told;
        stop when a write failed (the database is gone, or the trial was taken from this worker)."""
        queue, name = record.writes, self.spec.pruner["name"]
        row = (epoch_row, self.engine, self.study_id, trial._trial_id, trial.number)

        def on_epoch(epoch) -> None:
            if self.stop_now is not None and self.stop_now.is_set():
                raise KeyboardInterrupt
            queue.check(self.gone)
            if queue.error is not None:
                raise queue.error
            begun = time.perf_counter()
            queue.submit(*row, epoch)
            record.reached(epoch.epoch, epoch.valid_error)
            value = self.spec.metric_value(epoch.valid_error)
            if name != "none":
                trial.report(value, epoch.epoch)
            else:
                queue.submit(trial.report, value, epoch.epoch)
            prune = name != "none" and trial.should_prune()
            record.callback_seconds += time.perf_counter() - begun
            if prune:
                raise optuna.TrialPruned(f"pruned at epoch {epoch.epoch} by the {name} pruner: "
                                         f"{self.spec.metric} {value:.4f}")

        return on_epoch

    def close(self) -> None:
        """Stop the thread (its writes are done: each trial waits for its own)."""
        self._pool.shutdown(wait=True)


class Writes:
    """One trial's writes that no decision waits for (epoch rows; reports when nothing prunes).

    After the first failed write the rest are dropped, not tried (a database that is gone would
    make each wait out its own retries); `error` is that failure, which the next epoch raises.
    """

    def __init__(self, pool: ThreadPoolExecutor):
        self._pool, self._futures, self.error = pool, [], None

    def submit(self, fn, *args, **kwargs) -> None:
        """Queue `fn(*args, **kwargs)`, unless a write failed already."""
        def job():
            if self.error is not None:
                return
            try:
                fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - kept for the trial, raised by wait() and the next epoch
                self.error = self.error or lost(exc)  # not over a StudyGone the trial set meanwhile

        self._futures.append(self._pool.submit(job))

    def wait(self) -> None:
        """Block until every write is done or dropped; raise the first failure."""
        futures.wait(self._futures)
        if self.error is not None:
            raise self.error

    def check(self, gone) -> None:
        """StudyGone, and the writes still queued dropped, once `gone()` (if given) says the study was
        deleted or replaced."""
        if gone is not None and gone():
            self.error = StudyGone()
            raise self.error


def epoch_row(engine, study_id: int, trial_id: int, number: int, record) -> None:
    """Trial `number`'s row of the epoch `record`, only while the trial is RUNNING (TrialLost otherwise)."""
    if not epochs.write(engine, study_id=study_id, trial_id=trial_id, trial=number, epoch=record.epoch,
                        while_running=True, **{k: getattr(record, k) for k in epochs.COLUMNS}):
        raise TrialLost(f"trial {number} was failed by another worker at epoch {record.epoch} (no heartbeat "
                        "from this one for longer than the grace)")


def lost(exc: BaseException) -> BaseException:
    """A write refused because the trial is finished means another worker took it: TrialLost."""
    if isinstance(exc, UpdateFinishedTrialError):
        return TrialLost(f"the trial was finished by another worker ({exc})")
    return exc
