"""One trial's record as its worker runs it: its outcome so far, its timings, how it ended."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from storage.contract import flags
from storage.contract.outcome import COMPLETE, Outcome


@dataclass
class TrialRecord:
    """One trial as it runs here: what its life reads and writes; the worker's log line and requeue after."""

    number: int
    params: dict = field(default_factory=dict)  # the searched ones
    outcome: Outcome = Outcome(epochs_run=0, valid_error=math.nan)  # so far: RUNNING, then how it ended
    written: Outcome = Outcome()  # what of it the trial's attrs hold already
    value: float | None = None  # the objective's value, once COMPLETE
    source: object = None  # another study's run it takes instead of training (storage.shared.Source)
    writes: object = None  # its epoch rows and reports, queued (workers.writes.Writes)
    resumed: int = 0  # the epoch of the checkpoint it went on from (0: it started at epoch 1)
    begun: float | None = None  # perf_counter() when its training (or copy) began
    train_seconds: float = 0.0  # time in train() less the callbacks'
    callback_seconds: float = 0.0  # time writing epoch rows, reporting, pruning, checkpointing
    interrupted: bool = False  # cut short by a second signal (the worker queues it again)
    lost: bool = False  # taken from this worker (failed as stale by another one): nothing more written

    def reached(self, epoch: int, valid_error: float) -> None:
        """Its epochs went as far as `epoch`, the last one's validation error `valid_error`."""
        self.outcome = replace(self.outcome, epochs_run=epoch, valid_error=valid_error)

    def timed(self, fn: Callable) -> Callable:
        """`fn`, its time counted as the callbacks' (what the sweep adds to training)."""
        def call(*args):
            begun = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.callback_seconds += time.perf_counter() - begun

        return call

    def stop_clock(self) -> None:
        """Its time in train() so far, less the callbacks' (rows, reports); none before it began."""
        begun = self.begun
        self.train_seconds = 0.0 if begun is None else time.perf_counter() - begun - self.callback_seconds

    def trained(self, result) -> Outcome:
        """Its outcome, having trained to `result` (workers.train.Result) in its train_seconds."""
        correct = flags.pack(result.test_correct) if result.test_correct is not None else None
        return replace(self.outcome, state=COMPLETE, test_error=result.test_error, report=result.report,
                       test_correct=correct, epochs_run=result.epochs_run, steps_run=result.steps_run,
                       steps_per_epoch=result.steps_per_epoch, train_images=result.train_images,
                       valid_images=result.valid_images, test_images=result.test_images,
                       near_zero=result.near_zero, train_error_clean=result.train_error_clean,
                       seconds=round(self.train_seconds, 3), stopped_early=result.stopped_early,
                       confident_n=result.confident["n"], confident_precision=result.confident["precision"])
