"""The worker loop: pull trials of one study until its budget is spent, as rq's work loop reads.

    work(name, url, options)
      connect: the study, its spec (stored in the study), an RDB storage with heartbeat and retry
      the budget gate, the signal handlers (first SIGTERM/SIGINT: finish this trial, then stop;
      second: now), the objective with its collaborators (the data loaded once; the core caches
      compiled functions per architecture across trials)
      loop until this worker's limits, the first signal or the end of `sweeper run` (its pipe):
          check that an SQLite file is still the one opened (deleted or replaced: stop, say so)
          with gate.reserve() as step:   the budget lock, from the count until the trial exists
              RUN: run one trial (study.optimize, which keeps Optuna's heartbeat); one that another
                   worker took while this one was stopped (failed as stale) is dropped with one line
          WAIT: look again soon (stale trials of dead workers are failed and retried meanwhile)
          STOPPED (sweeper stop) or DONE (the budget is spent): end
          GONE: the study was deleted or replaced (its uid, read at the start, is not there)
      the study gone (seen by the gate, by a trial that failed, or on SQLite before each epoch's
      writes): one line, exit 2, nothing more written (a new study of its name may have its ids)
      the database failing for longer than its patience (or for good): one line, exit 75
      teardown: close the writer thread and the connections, then restore the signal handlers
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import signal
import socket
import sys
import threading
import time

import optuna

from storage import budget, rdb, retry, studies, urls
from storage.budget import Step
from storage.contract import samplers
from storage.contract.errors import BadInput, first_line, optuna_experimental
from storage.contract.options import WorkerOptions
from storage.contract.outcome import COMPLETE, FAIL, RUNNING
from storage.contract.params import VALID_SIZE
from storage.contract.spec import Spec
from workers import runtime
from workers.objective import WORKER, Core, Hooks, Objective
from workers.record import TrialRecord

WAIT_S = 0.5  # how often a worker whose budget is taken by running trials looks again
EXIT_DATABASE = 75  # the database failed for longer than its patience, or for good (sysexits' EX_TEMPFAIL)
EXIT_GONE = 2  # the study was deleted or replaced while this worker ran (as a study missing at the start: 2)
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
        self._previous_hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        return self

    def _unraisable(self, unraisable) -> None:
        """The second signal's KeyboardInterrupt, raised inside a callback that cannot raise (JAX's
        garbage-collection hook): not a traceback in the log, since `now` stops the trial anyway."""
        if not (isinstance(unraisable.exc_value, KeyboardInterrupt) and self.now.is_set()):
            self._previous_hook(unraisable)

    def watch(self, stream) -> None:
        """Stop as on a first signal when `stream` ends: it is the pipe from the `sweeper run` that
        started this worker, and it ends when that process dies (kill -9 included)."""

        def until_the_end() -> None:
            while stream.readline():
                pass
            if not self.requested.is_set():
                log.warning("the sweeper run that started this worker is gone: stopping after the current trial")
                self.requested.set()

        threading.Thread(target=until_the_end, name="sweeper-parent", daemon=True).start()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        sys.unraisablehook = self._previous_hook

    def _handle(self, signum, _frame) -> None:
        if self.requested.is_set():
            # Raised wherever the main thread is; inside a callback that swallows exceptions (JAX's
            # garbage-collection hook does) it is lost, so the flag stops the trial after its epoch.
            self.now.set()
            retry.outage.abandon.set()  # and a failing database is not waited for
            raise KeyboardInterrupt
        self.requested.set()
        log.warning("%s: stopping after the current trial (send the signal again to stop now)",
                    signal.Signals(signum).name)


def work(name: str, url: str, options: WorkerOptions = WorkerOptions(), *, on_trial=None, parent=None) -> int:
    """Run trials of study `name` at `url` until its budget, or this worker's `options.n_trials` or
    `options.timeout`, is reached; the exit code (0, or 130 when stopped now by a second signal).

    A worker started by `sweeper run` (`options.stdin_start`) waits out a transient error while it
    connects (the storage answered moments ago); otherwise an unreachable storage fails at once.
    `parent`: the stream from the process that started this worker (`sweeper run`'s pipe): when it
    ends, that process is gone, and the worker stops as on a first signal. A study deleted or replaced
    under the worker stops it with one line, exit EXIT_GONE.
    `on_trial(wall_s, train_s)`, if given, sees each trial's whole time in this loop (budget check,
    ask, training, epoch rows, reports, tell) and its time inside train() (bench/sweep_overhead.py).
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial is ours (_log_trial)
    study, spec, storage = connect(name, url, worker=options.worker_index, patient=options.stdin_start)
    study_id = storage.get_study_id_from_name(name)
    counts = budget.counts(storage.engine, study_id, n_trials=spec.n_trials)
    if counts.next_step() is Step.DONE:
        log.info("the study's budget of %d trials is spent: nothing to do", counts.budget)
        return 0
    uid = studies.uid(storage, study_id)
    gate = budget.Gate(study, storage, study_id, spec.n_trials, uid=uid)
    shutdown = WarmShutdown()
    objective = build_objective(spec, storage, study_id, url, on_start=gate.confirm, stop_now=shutdown.now,
                                gone=gate.gone if storage.engine.dialect.name == "sqlite" else None, uid=uid)
    shutdown.install()  # after what can refuse to start (the data, the artifact folder): nothing to restore then
    if parent is not None:
        shutdown.watch(parent)
    log.info("worker %s on study '%s': %d trials of %s on %s; %s", WORKER, name, counts.budget,
             spec.model, spec.dataset, runtime_line())
    _warn_shared_sqlite(storage, study_id)
    limits, database = Limits(options.n_trials, options.timeout), urls.SameFile(url)
    try:
        try:
            while not limits.reached(shutdown):
                database.check()  # an SQLite file deleted or replaced under this worker: stop and say so
                with gate.reserve() as step:  # the budget lock, held until the trial exists (gate.confirm)
                    if step is Step.RUN:
                        run_trial(study, objective, gate, on_trial)
                        limits.ran += 1
                if step is Step.WAIT:
                    shutdown.requested.wait(WAIT_S)
                elif step is Step.GONE:
                    raise studies.StudyGone
                elif step is not Step.RUN:
                    _log_end(step, spec, limits.ran,
                             budget.counts(storage.engine, study_id, n_trials=spec.n_trials).budget)
                    break
        except KeyboardInterrupt:
            requeue_interrupted(study, spec, objective)
            return 130
        except studies.StudyGone:
            log.error("error: study '%s' was deleted (or replaced) while this worker ran: stopping, writing nothing "
                      "more into it; a new study of that name needs new workers (sweeper stop %s before sweeper "
                      "delete lets running trials finish)", name, name)
            return EXIT_GONE
    except Exception as exc:
        if retry.database_error(exc) is None:
            raise
        _log_database_gone(retry.database_error(exc), objective.last)
        return EXIT_DATABASE
    finally:
        objective.close()  # queued writes are dropped once one failed: quick
        storage.engine.dispose()
        shutdown.restore()  # last: a signal during teardown is still ours
    return 0


class Limits:
    """This worker's own limits (trials, seconds) and the first signal: whether to start another trial."""

    def __init__(self, n_trials: int | None, timeout: float | None):
        self.n_trials, self.timeout, self.ran, self._started = n_trials, timeout, 0, time.monotonic()

    def reached(self, shutdown: WarmShutdown) -> bool:
        """True (and the reason logged) when this worker should start no more trials."""
        if shutdown.requested.is_set():
            log.info("stopped on request after %d trial(s)", self.ran)
        elif self.n_trials is not None and self.ran >= self.n_trials:
            log.info("ran the %d trial(s) asked for", self.ran)
        elif self.timeout is not None and time.monotonic() - self._started >= self.timeout:
            log.info("timeout of %g s reached after %d trial(s)", self.timeout, self.ran)
        else:
            return False
        return True


def build_objective(spec: Spec, storage, study_id: int, url: str, *, on_start, stop_now, gone=None,
                    uid: str | None = None) -> Objective:
    """The study's objective with its collaborators: the training core, the data (loaded here once:
    a missing data set fails now), the trial failures that do not stop the worker, the gate's
    `on_start` and `gone`, the second signal's `stop_now`, the keeper of weights (its artifact
    folder made now) and the checkpoints (named by `uid`, the study's key: read when not given)."""
    from storage import artifacts
    from workers.checkpoints import Checkpoints
    from workers.data import load
    from workers.keeper import Keeper
    from workers.train import Diverged, train

    _data(spec)
    store = artifacts.store(url, create=True) if spec.keeps_files else None
    saved = (Checkpoints(artifacts.folder(url), uid or studies.uid(storage, study_id), spec.checkpoint_every)
             if store is not None and spec.checkpoint_every else None)
    hooks = Hooks(on_start=on_start, stop_now=stop_now, gone=gone, keep=Keeper(spec.keep, store, spec.name),
                  checkpoints=saved)
    core = Core(train, load, failures=(Diverged, BadInput, budget.Overshoot))
    return Objective(spec, storage, study_id, core, hooks)


def seed_offset(worker: int | None, trials: int) -> int:
    """The offset of this worker's sampler seed: different for parallel workers (`worker`, their index,
    else host and pid) and for each start of the study (the `trials` it holds then), so that neither a
    second worker nor a resumed run replays a seeded stream already used (QMC and grid keep the
    study's seed: their own logic never repeats a point)."""
    who = f"{socket.gethostname()}:{os.getpid()}" if worker is None else str(worker)
    return int.from_bytes(hashlib.sha256(f"{who}/{trials}".encode()).digest()[:4], "big")


def _log_end(step: Step, spec: Spec, ran: int, n_trials: int) -> None:
    """Why the loop ended when the study itself ended it (stopped, or its budget of `n_trials` spent)."""
    if step is Step.STOPPED:
        log.info("study '%s' is stopped (sweeper stop) after %d trial(s) here: sweeper resume %s lifts it",
                 spec.name, ran, spec.name)
    else:
        log.info("the study's budget of %d trials is spent; this worker ran %d", n_trials, ran)


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

    return load(spec.dataset, valid_size=spec.fixed.get("valid_size", VALID_SIZE),
                split=spec.fixed.get("split", "random"))


def runtime_line() -> str:
    """This process's thread budget and device, as the log shows them (tests and users check it)."""
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    cpus = ",".join(map(str, sorted(os.sched_getaffinity(0)))) if hasattr(os, "sched_getaffinity") else "?"
    device = os.environ.get("JAX_PLATFORMS", "cpu")
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
    return (f"threads={threads} cpus={cpus} backend={runtime.current().backend} device={device}"
            + (f" CUDA_VISIBLE_DEVICES={gpu}" if gpu is not None else ""))


def _warn_shared_sqlite(storage, study_id: int) -> None:
    """One line when this worker shares an SQLite file with others: PostgreSQL is the fix."""
    if storage.engine.dialect.name == "sqlite" and budget.counts(storage.engine, study_id).running:
        log.warning(rdb.SQLITE_SHARED)


def connect(name: str, url: str, *, worker: int | None = None, patient: bool = False):
    """(study, spec, storage): the spec read from the study, then a storage with its heartbeat.

    The first open waits out a transient error only when `patient`; the second always does (the
    storage has just answered). The sampler's seed is offset by `seed_offset(worker, trials)`.
    """
    _, spec, plain = studies.load(name, url, patient=patient)
    trials = budget.counts(plain.engine, plain.get_study_id_from_name(name)).total
    plain.engine.dispose()
    sampler = samplers.build("sampler", spec.sampler, search_space=spec.grid_space() if spec.is_grid else None,
                             seed_offset=seed_offset(worker, trials))
    pruner = samplers.build("pruner", spec.pruner)
    study, spec, storage = studies.load(name, url, sampler=sampler, pruner=pruner, heartbeat=spec.heartbeat,
                                        grace=spec.grace, max_retry=spec.max_retry, patient=True)
    return study, spec, storage


def run_trial(study, objective: Objective, gate: budget.Gate, on_trial=None) -> None:
    """One trial through study.optimize, so that Optuna's heartbeat thread runs beside it; log it.

    No Optuna callback: it would read the finished trial back (two statements); the objective
    already knows what the line says. A trial that fails because its study was deleted or replaced
    (Optuna's KeyError 'Record does not exist', an epoch row refused) is StudyGone, and no line.
    """
    begun = time.perf_counter()
    gone = False
    try:
        study.optimize(objective, n_trials=1, catch=objective.core.failures)
    except Exception:
        gone = gate.gone()
        if gone:
            raise studies.StudyGone from None
        if objective.last is None or not objective.last.lost:
            raise  # a lost trial is another worker's now: Optuna's tell refused it, and this worker goes on
    finally:
        if not gone and objective.last is not None and objective.last.outcome.state != RUNNING:
            _log_trial(objective.last)
    if on_trial is not None:
        on_trial(time.perf_counter() - begun, objective.last.train_seconds)


def requeue_interrupted(study, spec: Spec, objective: Objective) -> None:
    """The trial cut short by a second signal, now FAIL: queue it again with its parameters."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    if objective.last is None or not objective.last.interrupted:
        return
    trial = study.trials[objective.last.number]
    if trial.state == TrialState.FAIL:
        with optuna_experimental():
            RetryHeartbeatStaleTrialCallback(max_retry=spec.max_retry)(study, trial)
        log.warning("trial %d interrupted: queued again", trial.number)


def _log_database_gone(exc: BaseException, last: TrialRecord | None) -> None:
    """The one line of a worker that stops because its database failed for good or for too long."""
    running = f"trial {last.number} stays RUNNING until a worker finds it stale and retries it; " \
        if last is not None and last.outcome.state in (RUNNING, FAIL) and not last.lost else ""
    log.error("error: the database failed (%s): this worker stops; %sstart workers again once it answers "
              "($SWEEPER_DB_PATIENCE: how long a call waits for it)", first_line(exc)[:300], running)


def _log_trial(last: TrialRecord) -> None:
    """One line for a finished trial, from what the objective recorded (Objective.last)."""
    params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in last.params.items())
    resumed = f", from epoch {last.resumed}" if last.resumed else ""
    log.info("trial %d %s: %s (%s epochs%s, %.1f s) %s", last.number, last.outcome.state, _what(last),
             last.outcome.epochs_run, resumed, last.train_seconds, params)


def _what(last: TrialRecord) -> str:
    """A complete trial's value and test error (and the run it reused), else why it ended."""
    outcome = last.outcome
    if outcome.state != COMPLETE:
        return outcome.reason
    test = math.nan if outcome.test_error is None else outcome.test_error
    source = outcome.shared_from
    reused = f"reused trial {source['trial']} of study {source['study']}: " if source is not None else ""
    return f"{reused}value {last.value:.4f} test_error {test:.4f}"


def setup_logging(quiet: bool = False) -> None:
    """One line per event on stderr, with time and worker (only our logger: libraries keep theirs)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s.%(msecs)03d {WORKER} %(message)s", datefmt="%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False
