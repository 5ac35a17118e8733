"""The worker loop: pull trials of one study until its budget is spent, as rq's work loop reads.

    work(name, url)
      connect: the study, its spec (stored in the study), an RDB storage with heartbeat and retry
      load the data once (the core caches compiled functions per architecture across trials)
      install signal handlers: first SIGTERM/SIGINT = finish this trial then stop, second = now
      loop: stop if asked by a signal, out of own trials or time;
            under the study's budget lock (taken again after a transient database error), count
            (the count carries the study's `sweeper stop` flag: stop), then run one trial
            (study.optimize, which keeps Optuna's heartbeat), wait for the running trials of
            other workers (failing stale ones), or stop: budget spent
      teardown: restore the signal handlers, close the writer thread and the connections
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time

import optuna

from storage import budget, rdb, retry, studies
from storage.contract import samplers
from storage.contract.errors import BadInput, optuna_experimental
from storage.contract.params import VALID_SIZE
from storage.contract.spec import Spec
from workers.objective import WORKER, Objective

WAIT_S = 0.5  # how often a worker whose budget is taken by running trials looks again
log = logging.getLogger("sweeper.worker")


class WarmShutdown:
    """First signal: stop after the current trial. Second: stop now (KeyboardInterrupt)."""

    def __init__(self):
        self.requested = threading.Event()
        self.now = threading.Event()  # the second signal; the objective also checks it after each epoch
        self._previous = {}

    def install(self) -> "WarmShutdown":
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, _frame) -> None:
        if self.requested.is_set():
            # Raised wherever the main thread is; inside a callback that swallows exceptions (JAX's
            # garbage-collection hook does) it is lost, so the flag stops the trial after its epoch.
            self.now.set()
            raise KeyboardInterrupt
        self.requested.set()
        log.warning("%s: stopping after the current trial (send the signal again to stop now)",
                    signal.Signals(signum).name)


def work(name: str, url: str, *, n_trials: int | None = None, timeout: float | None = None,
         seed_offset: int | None = None, on_trial=None, patient: bool = False) -> int:
    """Run trials of study `name` at `url` until its budget, `n_trials` or `timeout` is reached.

    `patient`: the storage answered moments ago (`sweeper run` created the study), so a transient error
    while connecting (a server restarting) is waited for; otherwise an unreachable storage fails at once.

    `on_trial(wall_s, train_s)`, if given, sees each trial's whole time in this loop (budget check,
    ask, training, epoch rows, reports, tell) and its time inside train() (bench/sweep_overhead.py).
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial is ours (_log_trial)
    study, spec, storage = connect(name, url, seed_offset=os.getpid() if seed_offset is None else seed_offset,
                                   patient=patient)
    study_id = storage.get_study_id_from_name(name)
    if budget.counts(storage.engine, study_id).next_step(spec.n_trials) == "done":
        log.info("the study's budget of %d trials is spent: nothing to do", spec.n_trials)
        return 0

    from workers.data import load

    _data(spec)  # a missing data set fails here, once (a prepared worker has it already)
    from workers.train import Diverged, train

    objective = Objective(spec, storage, study_id, train=train, load=load, expected=(Diverged, budget.Overshoot))
    shutdown = WarmShutdown().install()
    objective.stop_now = shutdown.now
    log.info("worker %s on study '%s': %d trials of %s on %s; %s", WORKER, name, spec.n_trials, spec.model,
             spec.dataset, runtime_line())
    _warn_shared_sqlite(storage, study_id)
    ran, started = 0, time.monotonic()
    try:
        while True:
            if shutdown.requested.is_set():
                log.info("stopped on request after %d trial(s)", ran)
                break
            if n_trials is not None and ran >= n_trials:
                log.info("ran the %d trial(s) asked for", ran)
                break
            if timeout is not None and time.monotonic() - started >= timeout:
                log.info("timeout of %g s reached after %d trial(s)", timeout, ran)
                break
            begun = time.perf_counter()
            lock = budget.Lock(storage.engine, study_id)
            step = retry.call(_locked_step, lock, study, study_id, spec.n_trials, _what="budget check")
            try:
                if step == "run":
                    # the trial exists: others may count it now
                    objective.on_start = lambda: release_checked(lock, storage, study_id, spec.n_trials)
                    run_trial(study, objective, expected=(Diverged, BadInput, budget.Overshoot))
                    objective.running = None
                    ran += 1
                    if on_trial is not None:
                        on_trial(time.perf_counter() - begun, objective.train_seconds)
            finally:
                lock.release()
            if step == "stopped":
                log.info("study '%s' is stopped (sweeper stop) after %d trial(s) here: sweeper resume %s "
                         "lifts it", name, ran, name)
                break
            if step == "done":
                log.info("the study's budget of %d trials is spent; this worker ran %d", spec.n_trials, ran)
                break
            if step == "wait":
                shutdown.requested.wait(WAIT_S)
    except KeyboardInterrupt:
        if objective.running is not None:
            requeue_interrupted(study, spec, objective.running)
        return 130
    finally:
        shutdown.restore()
        objective.close()
        storage.engine.dispose()
    return 0


def wait_for_start(stream) -> bool:
    """How `sweeper run` starts its workers while it creates the study: read the study's spec (one
    JSON line) from `stream`, prepare for it, then wait for the line 'start'.

    False when the stream ends first (the run was refused, or its process died): nothing to do.
    """
    line = stream.readline()
    if not line:
        return False
    prepare(Spec.from_attr(json.loads(line)))
    return stream.readline().strip() == "start"


def prepare(spec: Spec) -> None:
    """Load the study's data set and, when no searched parameter shapes the network, compile it
    and run it once: the first trial then starts at full speed."""
    from workers import compiled
    from workers.train import prepare as compile_network

    begun = time.perf_counter()
    data = _data(spec)
    searched = set(spec.space) & compiled.shaped_by(spec.model)
    if not searched:
        compile_network(spec.model, spec.fixed, data)
    log.info("prepared in %.1f s: %s loaded, %s", time.perf_counter() - begun, spec.dataset,
             f"network compiled when its first trial gets {', '.join(sorted(searched))}" if searched
             else "network compiled")


def _data(spec: Spec):
    """The study's data set, with the validation share of its fixed parameters (loaded once per process)."""
    from workers.data import load

    return load(spec.dataset, valid_size=spec.fixed.get("valid_size", VALID_SIZE))


def _locked_step(lock, study, study_id: int, n_trials: int) -> str:
    """Take the budget lock and decide the next step; on an error the lock is freed (and retried)."""
    lock.acquire()
    try:
        return next_step(study, lock.bind, study_id, n_trials)
    except BaseException:
        lock.release()
        raise


def release_checked(lock, storage, study_id: int, n_trials: int) -> None:
    """Free the budget lock once this worker's trial exists; raise budget.Overshoot if the trial is
    one too many.

    A database restart while the lock is held kills it: another worker may then count without this
    worker's trial (still being created, retried) and start one of its own. Then this one gives way.
    """
    if lock.release():
        return
    counts = budget.counts(storage.engine, study_id)
    if counts.done + counts.running > n_trials:
        raise budget.Overshoot(f"not run: the budget lock was lost in a database restart and the study's "
                               f"{n_trials} trials were already taken")


def runtime_line() -> str:
    """This process's thread budget and device, as the log shows them (tests and users check it)."""
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    cpus = ",".join(map(str, sorted(os.sched_getaffinity(0)))) if hasattr(os, "sched_getaffinity") else "?"
    device = os.environ.get("JAX_PLATFORMS", "cpu")
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
    return (f"threads={threads} cpus={cpus} backend={os.environ.get('SWEEPER_BACKEND', '?')} device={device}"
            + (f" CUDA_VISIBLE_DEVICES={gpu}" if gpu is not None else ""))


def _warn_shared_sqlite(storage, study_id: int) -> None:
    """One line when this worker shares an SQLite file with others: PostgreSQL is the fix."""
    if storage.engine.dialect.name == "sqlite" and budget.counts(storage.engine, study_id).running:
        log.warning(rdb.SQLITE_SHARED)


def connect(name: str, url: str, *, seed_offset: int = 0, patient: bool = False):
    """(study, spec, storage): the spec read from the study, then a storage with its heartbeat.

    The first open waits out a transient error only when `patient`; the second always does (the
    storage has just answered).

    `seed_offset` makes the sampler's seed differ between workers, so that parallel workers with
    one seeded sampler do not propose the same points (QMC and grid keep the shared seed).
    """
    _, spec, plain = studies.load(name, url, patient=patient)
    plain.engine.dispose()
    sampler = samplers.build("sampler", spec.sampler, search_space=spec.grid_space() if spec.is_grid else None,
                             seed_offset=seed_offset)
    pruner = samplers.build("pruner", spec.pruner)
    study, spec, storage = studies.load(name, url, sampler=sampler, pruner=pruner, heartbeat=spec.heartbeat,
                                        grace=spec.grace, max_retry=spec.max_retry, patient=True)
    return study, spec, storage


def next_step(study, bind, study_id: int, n_trials: int) -> str:
    """'stopped' (sweeper stop), else 'run', 'wait' or 'done' (storage.budget.Counts.next_step); call
    it under the budget lock.

    Before waiting on running trials, fail the stale ones (their worker died): each is retried as
    a WAITING trial, which this worker then runs.
    """
    counts = budget.counts(bind, study_id)
    if counts.stopped:
        return "stopped"
    step = counts.next_step(n_trials)
    if step == "wait":
        with optuna_experimental():
            optuna.storages.fail_stale_trials(study)
        step = budget.counts(bind, study_id).next_step(n_trials)
    return step


def run_trial(study, objective: Objective, *, expected: tuple) -> None:
    """One trial through study.optimize, so that Optuna's heartbeat thread runs beside it; log it.

    No Optuna callback: it would read the finished trial back (two statements); the objective
    already knows what the line says.
    """
    try:
        study.optimize(objective, n_trials=1, catch=expected)
    finally:
        if objective.last is not None:
            _log_trial(objective.last)


def requeue_interrupted(study, spec, number: int) -> None:
    """Trial `number`, cut short by a second signal, is FAIL: queue it again with its parameters."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    trial = study.trials[number]
    if trial.state == TrialState.FAIL:
        with optuna_experimental():
            RetryHeartbeatStaleTrialCallback(max_retry=spec.max_retry)(study, trial)
        log.warning("trial %d interrupted: queued again", number)


def _log_trial(last: dict) -> None:
    """One line for a finished trial, from what the objective recorded (Objective.last)."""
    params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in last["params"].items())
    log.info("trial %d %s: %s (%s epochs, %.1f s) %s", last["number"], last["state"], last["what"],
             last["epochs"], last["seconds"], params)


def setup_logging(quiet: bool = False) -> None:
    """One line per event on stderr, with time and worker (only our logger: libraries keep theirs)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s.%(msecs)03d {WORKER} %(message)s", datefmt="%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False
