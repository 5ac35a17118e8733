"""A trial's outcome as its user attrs hold it: their names, and the record that writes and reads them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

WORKER = "worker"  # host:pid of the worker that runs it (written first)
RUN_KEY = "run_key"  # its training key (storage.contract.runkey)
SHARED_FROM = "shared_from"  # {"study", "trial"}: the run of another study it took instead of training
TEST_ERROR = "test_error"  # the kept network's test error
TEST_CORRECT = "test_correct"  # each test image right or wrong (storage.contract.flags)
REPORT = "report"  # the per-class test report (workers.metrics.report)
OUTCOME = "outcome"  # the figures of how it went (FIGURES)
FAIL_REASON = "fail_reason"  # why it failed
PRUNE_REASON = "prune_reason"  # why it was pruned
RESULT = (TEST_ERROR, REPORT, OUTCOME, TEST_CORRECT)  # a complete trial's result: what a copy takes
INHERITED = (FAIL_REASON, SHARED_FROM)  # a retry's from the trial it retries, cleared unless it sets them
NAMES = (WORKER, RUN_KEY, SHARED_FROM, *RESULT, FAIL_REASON, PRUNE_REASON)  # every trial attr sweeper writes
RUNNING, COMPLETE, PRUNED, FAIL = "RUNNING", "COMPLETE", "PRUNED", "FAIL"  # Optuna's states, by name
UNFINISHED = ("epochs_run", "seconds", "valid_error")  # the figures of a trial that failed or was pruned


def _figure(kind: type):
    """A key of the OUTCOME attr, whose values are of `kind` (None where unknown)."""
    return field(default=None, metadata={"figure": kind})


@dataclass(frozen=True)
class Outcome:
    """One trial's outcome: what the objective writes as its user attrs, and what the analysis reads.

    `state` is Optuna's (no attr holds it); `reason` why it failed or was pruned (FAIL_REASON or
    PRUNE_REASON by state). A complete trial stores its result (RESULT) with every figure but
    valid_error (its value stands for it); one that failed or was pruned its reason and UNFINISHED.
    """

    state: str = RUNNING
    reason: str | None = None
    worker: str | None = None
    run_key: str | None = None
    shared_from: dict | None = None
    test_error: float | None = None
    report: dict | None = None
    test_correct: dict | None = None
    valid_error: float | None = _figure(float)
    epochs_run: int | None = _figure(int)
    steps_run: int | None = _figure(int)  # optimizer steps (minibatch updates) in all
    steps_per_epoch: int | None = _figure(int)
    train_images: int | None = _figure(int)
    valid_images: int | None = _figure(int)
    test_images: int | None = _figure(int)
    near_zero: float | None = _figure(float)  # share of the evaluated weights with |w| < 1e-4
    train_error_clean: float | None = _figure(float)  # the kept network's error on the training set
    seconds: float | None = _figure(float)  # in training, less the sweep's writes
    stopped_early: bool | None = _figure(bool)
    confident_n: int | None = _figure(int)  # test predictions whose top probability exceeds 0.5
    confident_precision: float | None = _figure(float)  # the share of those that are right

    def to_attrs(self, since: Outcome | None = None) -> dict:
        """The user attrs this record holds, less those that `since` (already written) holds alike."""
        attrs = {**self._identity(), **self._ending()}
        old = since.to_attrs() if since is not None else {}
        return {k: v for k, v in attrs.items() if k not in old or old[k] != v}

    @classmethod
    def from_attrs(cls, attrs: dict, state: str | None = None) -> Outcome:
        """The record of a trial's user `attrs` (what is missing is None); `state` Optuna's, else theirs."""
        state = state or _state(attrs)
        reason = {FAIL: attrs.get(FAIL_REASON), PRUNED: attrs.get(PRUNE_REASON)}.get(state)
        figures = attrs.get(OUTCOME) if isinstance(attrs.get(OUTCOME), dict) else {}
        return cls(state=state, reason=reason, worker=attrs.get(WORKER), run_key=attrs.get(RUN_KEY),
                   shared_from=attrs.get(SHARED_FROM), test_error=attrs.get(TEST_ERROR),
                   report=attrs.get(REPORT), test_correct=attrs.get(TEST_CORRECT),
                   **{k: figures.get(k) for k in FIGURES})

    def _identity(self) -> dict:
        """Who runs the trial and what run it is (None: parameters train() refuses), written together
        once it has its parameters; the run it took, if any."""
        started = {WORKER: self.worker, RUN_KEY: self.run_key} if self.worker is not None else {}
        return {**started, **({SHARED_FROM: self.shared_from} if self.shared_from is not None else {})}

    def _ending(self) -> dict:
        """How it ended: its result and figures, or why it failed or was pruned (nothing while running)."""
        if self.state == COMPLETE:
            correct = {TEST_CORRECT: self.test_correct} if self.test_correct is not None else {}
            return {TEST_ERROR: self.test_error, REPORT: self.report, **correct,
                    OUTCOME: self._figures(k for k in FIGURES if k != "valid_error")}
        if self.state in (FAIL, PRUNED):
            return {FAIL_REASON if self.state == FAIL else PRUNE_REASON: self.reason,
                    OUTCOME: self._figures(UNFINISHED)}
        return {}

    def _figures(self, names) -> dict:
        """The OUTCOME attr with the figures `names`; a number not finite is None (JSON has no NaN)."""
        return {k: _json(getattr(self, k)) if FIGURES[k] is float else getattr(self, k) for k in names}


FIGURES = {f.name: f.metadata["figure"] for f in fields(Outcome) if "figure" in f.metadata}  # name -> type


def inherited(attrs: dict, written: dict) -> dict:
    """None for each INHERITED attr in a retry's `attrs` that `written` does not set: its start clears it."""
    return {k: None for k in INHERITED if attrs.get(k) and k not in written}


def _state(attrs: dict) -> str:
    """The state a trial's attrs say: pruned or failed by their reason, complete by their result."""
    if attrs.get(PRUNE_REASON):
        return PRUNED
    if attrs.get(FAIL_REASON):
        return FAIL
    return COMPLETE if TEST_ERROR in attrs else RUNNING


def _json(x) -> float | None:
    """NaN is not JSON: None instead (the dashboard parses attrs as JSON)."""
    return None if x is None or not math.isfinite(x) else float(x)
