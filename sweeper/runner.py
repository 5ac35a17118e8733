"""`sweeper run`: start N worker processes on this machine (preparing while the study is created), show
progress from the storage, sum up."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import click

from storage.contract.errors import BadInput
from storage.contract.options import WorkerOptions

POLL_S = 1.0
LINGER_S = 15.0  # how long workers may take to exit once their study is finished, before they are killed
# --workers: at most WORKERS_PER_CORE per core, and MOST_WORKERS_FLOOR on any machine; more only share the
# cores and the memory (a worker holds 70 MB or more: JAX, the data, its compiled network)
WORKERS_PER_CORE = 4
MOST_WORKERS_FLOOR = 8
SQLITE_FEW = 2  # workers that share an SQLite file without a warning (more queue behind its write lock)


@dataclass
class Workers:
    """The worker processes of one `sweeper run`, each preparing (imports, data, compiling) until
    `release` lets it start, or `cancel` ends it."""

    procs: list  # (subprocess.Popen, its log file); none when the study was finished before they started
    logs: Path | None  # None when no worker started
    keep_logs: bool  # the user's --logs folder (else a temporary one, removed after a clean run)
    line: str  # "2 worker(s), 1 thread(s) each, one core each; logs in ..."
    released: bool = False

    def release(self) -> None:
        """Let every worker start on the study, which now exists. Their stdin stays open while this
        process lives: when it dies (kill -9 included), the pipe ends and each worker stops after
        its current trial."""
        self.released = True
        for p, _ in self.procs:
            _tell(p, "start\n")

    def cancel(self) -> None:
        """End workers that were never released (the run was refused) and their logs: they have
        written nothing. Released workers are left to `run`, which waits for them."""
        if self.released:
            return
        for p, _ in self.procs:  # all at once: each ends within its import or preparation
            if p.poll() is None:
                p.terminate()
        for p, log in self.procs:
            p.wait()
            log.close()
            _tell(p, "", last=True)
        if not self.keep_logs and self.logs is not None:
            shutil.rmtree(self.logs, ignore_errors=True)


def start(spec, url: str, *, n_workers: int, options: WorkerOptions = WorkerOptions(),
          gpus: list[str] | None = None, log_dir: str | None = None) -> Workers:
    """Start `n_workers` workers of study `spec` at `url`; they prepare while the study is created.

    Each worker gets `options` (threads, backend, device, timeout), its index, `options.threads`
    BLAS/OpenMP/XLA threads (default: this machine's cores / workers) and, when the workers' threads
    fit the cores, its own cores (XLA sizes its pool by affinity). With `gpus`, worker i sees only GPU
    gpus[i % len(gpus)] (CUDA_VISIBLE_DEVICES) and trains there. Each reads the spec on its stdin,
    loads the data and compiles the network (python -m workers worker --stdin-start), then waits
    for `Workers.release`.

    Before any worker starts: `n_workers` is bounded (WORKERS_PER_CORE per core), a study of that name
    already in the storage is read (a stopped one is refused; a finished one gets no worker) and every
    log file is opened. From here on SIGTERM interrupts this process as Ctrl-C does; either, while the
    workers start, ends those started and raises KeyboardInterrupt.
    """
    sigterm_as_ctrl_c()  # first: what follows imports SQLAlchemy and reads the storage
    from storage.budget import Step

    cores = sorted(os.sched_getaffinity(0))
    most = max(WORKERS_PER_CORE * len(cores), MOST_WORKERS_FLOOR, len(gpus or ()))
    if n_workers > most:
        raise BadInput(f"--workers {n_workers} is more than {most}, the most for the {len(cores)} core(s) here "
                       f"({WORKERS_PER_CORE} per core, at least {MOST_WORKERS_FLOOR}): more only share the cores and "
                       "the memory; to run more, start workers on other machines (sweeper worker NAME)")
    stored = _stored(spec, url)
    if stored is not None:
        stored.refuse_stopped(spec.name)
    if stored is not None and stored.next_step() is Step.DONE:
        return Workers([], None, True, "no worker: the study is finished")
    logs = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix=f"sweeper-{spec.name}-"))
    try:
        logs.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"--logs {logs}: {exc.strerror or exc}: choose a folder you can write") from None
    if not os.access(logs, os.W_OK):
        raise BadInput(f"--logs {logs}: the folder is not writable: choose a folder you can write")
    try:
        files = _open_logs(logs, n_workers)
    except BaseException:
        if log_dir is None:
            shutil.rmtree(logs, ignore_errors=True)
        raise
    threads = options.threads or max(1, len(cores) // n_workers)
    pin = n_workers * threads <= len(cores)  # one worker of all cores: a no-op
    # (a lone 1-thread worker is pinned too: unpinned, XLA's helper threads spill onto a second core)
    line = json.dumps(spec.to_attr()) + "\n"
    where = f", GPU {', '.join(gpus)}" if gpus else ", one core each" if pin and threads == 1 else ""
    workers = Workers([], logs, log_dir is not None,
                      f"{n_workers} worker(s), {threads} thread(s) each{where}; logs in {logs}")
    with _signals_held() as caught:  # a Popen is not cut in half: the signal ends the workers after it
        for i, log in enumerate(files):
            if caught:
                log.close()
                continue
            gpu = gpus[i % len(gpus)] if gpus else None
            mine = replace(options, threads=threads, worker_index=i, stdin_start=True,
                           cpus=tuple(cores[i * threads:(i + 1) * threads]) if pin else None,
                           device="cuda" if gpu is not None else options.device)
            try:
                workers.procs.append((_start(spec.name, url, mine, log, gpu=gpu), log))
            except BaseException:
                for rest in files[i:]:
                    rest.close()
                workers.cancel()
                raise
            _tell(workers.procs[-1][0], line)
    if caught:
        workers.cancel()
        raise KeyboardInterrupt
    return workers


def sigterm_as_ctrl_c() -> None:
    """From now on SIGTERM interrupts this process as Ctrl-C does (KeyboardInterrupt: the CLI ends what
    it started and exits 130), unless a handler of its own is set; `run` handles both while it runs."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.default_int_handler)


@contextlib.contextmanager
def _signals_held():
    """SIGINT and SIGTERM noted in the yielded list, not raised, inside the block."""
    caught = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = {sig: signal.signal(sig, lambda signum, _frame: caught.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stored(spec, url: str):
    """The counts (storage.budget.Counts, with `spec`'s budget) of the study of `spec` at `url` if it is
    there, else None; read without creating anything. BadInput when the database does not answer."""
    from storage import budget, rdb

    if not rdb.has_studies(url):  # a missing SQLite file, or no Optuna tables yet
        return None
    try:
        storage = rdb.open_storage(url)
    except BadInput:  # a schema being made right now, say: creating the study says what is wrong
        return None
    try:
        return budget.counts(storage.engine, storage.get_study_id_from_name(spec.name), n_trials=spec.n_trials)
    except KeyError:  # no study of that name
        return None
    finally:
        storage.engine.dispose()


def _open_logs(folder: Path, n: int) -> list:
    """The workers' log files worker-0.log ... in `folder`, each created (mode by the umask) or emptied,
    never through a symbolic link or into a file linked elsewhere (BadInput, before any worker starts)."""
    files = []
    try:
        for i in range(n):
            files.append(_open_log(folder / f"worker-{i}.log"))
    except BaseException:
        for f in files:
            f.close()
        raise
    return files


def _open_log(path: Path):
    """One log file, opened for writing without following a symbolic link (O_NOFOLLOW) and refused
    when it is not a plain file of its own (a hard link, a pipe): a worker never writes over another file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a pipe fails
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        why = "is a symbolic link" if exc.errno == errno.ELOOP else f"cannot be written ({exc.strerror or exc})"
        raise BadInput(f"--logs {path.parent}: {path.name} {why}: remove it or choose another folder") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise BadInput(f"--logs {path.parent}: {path.name} is not a plain file of its own (a hard link or a pipe): "
                       "remove it or choose another folder")
    os.set_blocking(fd, True)
    os.ftruncate(fd, 0)
    return open(fd, "w", encoding="utf-8")


def run(handle, workers: Workers, *, quiet: bool = False) -> int:
    """Release `workers` on `handle`'s study, show progress until they exit, sum up; the exit code.
    `quiet` (a caller that runs many studies and says these once): no SQLite warning, workers line or
    table of the best trials.

    The workers run in their own process group, so that a Ctrl-C reaches them only through this
    process: the first Ctrl-C (or SIGTERM) asks each worker to finish its trial and stop, the
    second to stop now (its trial is queued again). Workers still alive LINGER_S after the study
    finished (stopped or hung; their trials were failed as stale and retried) are killed and named.
    """
    from storage.budget import Step
    from sweeper.progress import Progress

    spec, counts = handle.spec, handle.counts()
    if counts.next_step() is Step.DONE:
        workers.cancel()
        _echo(f"study '{spec.name}' is already done: {counts.done} of {counts.budget} trials")
        return 0 if _close(handle, quiet) is not None else 1
    counts.refuse_stopped(spec.name)
    from storage import rdb, urls

    if not quiet:
        if urls.sqlite_path(handle.url) is not None and len(workers.procs) > SQLITE_FEW:
            _echo(f"warning: {rdb.SQLITE_SHARED}")
        _echo(workers.line)
    workers.release()
    procs = workers.procs
    stops = []

    def stop(signum, _frame) -> None:
        stops.append(signum)
        _echo("stopping: each worker finishes its current trial (Ctrl-C again to stop them now)"
              if len(stops) == 1 else "stopping now: running trials are queued again")
        for p, _ in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    progress = Progress(handle, bar=not quiet and sys.stderr.isatty())
    finished, hung = None, []
    try:
        while True:
            alive = [p for p, _ in procs if p.poll() is None]
            done = progress.poll()
            if not alive:
                break
            finished = (finished or time.monotonic()) if done else None
            if finished is not None and time.monotonic() - finished > LINGER_S:
                hung = _end_hung(procs, workers.logs)
                continue
            _wait_any(alive, POLL_S)
    finally:
        progress.close()
        for p, log in procs:
            p.wait()
            log.close()
            _tell(p, "", last=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    counts = _close(handle, quiet, progress.uid)
    if counts is not None and counts.next_step() is not Step.DONE:
        _echo(f"not finished: {counts.done} of {counts.budget} trials done; run again (or start "
              "workers) to go on")
    if stops:
        return 130
    failed = [(i, p.returncode) for i, (p, _) in enumerate(procs) if p.returncode != 0 and i not in hung]
    for i, code in failed:
        _echo(f"worker {i} exited with code {code}; the end of {workers.logs / f'worker-{i}.log'}:")
        _echo("".join(_tail(workers.logs / f"worker-{i}.log")).rstrip())
    if failed:
        return 2 if all(code == 2 for _, code in failed) else 1
    if counts is None:
        return 1
    if not workers.keep_logs and not hung:
        shutil.rmtree(workers.logs, ignore_errors=True)
    return 0


def _close(handle, quiet: bool, uid: str | None = None):
    """The best trials (unless `quiet`), then the study's counts; or, when the database does not answer or
    the study is gone (deleted while it ran), one line that says so, and None."""
    from sweeper import progress

    try:
        why = progress.gone(handle, uid)
        if why is None:
            if not quiet:
                _print_best(handle)
            return handle.counts()
    except Exception as exc:  # noqa: BLE001 - only what unreadable() names; the rest is raised
        why = progress.unreadable(handle, exc, uid)
        if why is None:
            raise
    _echo(f"no summary: {why}")
    return None


def _end_hung(procs: list, logs: Path) -> list[int]:
    """Kill the workers still alive LINGER_S after their study finished (stopped with SIGSTOP, or
    hung): they hold no trial that counts (theirs were failed as stale and retried). Their indexes."""
    hung = [i for i, (p, _) in enumerate(procs) if p.poll() is None]
    for i in hung:
        p = procs[i][0]
        _echo(f"worker {i} (pid {p.pid}) had not exited {LINGER_S:.0f} s after the study finished (stopped or "
              f"hung): killed it; its log: {logs / f'worker-{i}.log'}")
        p.kill()
        p.wait()
    return hung


def _tell(p, line: str, *, last: bool = False) -> None:
    """Write one line to a worker's stdin (closing it after the `last`); a worker that died reads nothing."""
    try:
        if line:
            p.stdin.write(line)
            p.stdin.flush()
        if last:
            p.stdin.close()
    except (BrokenPipeError, OSError, ValueError):  # exited already: its log and exit code tell why
        pass


def _wait_any(processes: list, seconds: float) -> None:
    """Sleep up to `seconds`, less when one of the processes exits (the run ends as soon as all have)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and all(p.poll() is None for p in processes):
        time.sleep(0.05)


def _start(name: str, url: str, options: WorkerOptions, log, *, gpu: str | None = None) -> subprocess.Popen:
    """One worker process (python -m workers worker NAME OPTIONS), its output in the open file `log`."""
    argv = [sys.executable, "-m", "workers", "worker", name, *options.argv()]
    env = {**os.environ, "SWEEPER_STORAGE": _absolute(url)}  # not in argv, where ps shows passwords
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.PIPE, env=env, text=True,
                            start_new_session=True)


def _absolute(url: str) -> str:
    """An SQLite URL with an absolute path, so a worker in another folder finds the same file."""
    from storage import urls

    path = urls.sqlite_path(url)
    if path is None or path.is_absolute():
        return url
    return f"sqlite:///{path.resolve()}"


def _print_best(handle) -> None:
    """The best complete trials (lowest value first, or highest, a tie to the lowest number), how many
    of the study's trials were not complete, and the first of them again in one line."""
    from sweeper import analysis, progress, tables

    frame = analysis.trials(handle)
    keep = ["trial", "state", *handle.spec.space, "valid_error", "test_error", "epochs_run", "seconds"]
    if handle.spec.metric != "valid_error":
        keep.insert(keep.index("valid_error") + 1, handle.spec.metric)
    ascending = handle.spec.direction == "minimize"
    metric = handle.spec.metric
    best = frame[frame["state"] == "COMPLETE"].sort_values([metric, "trial"], ascending=[ascending, True],
                                                           kind="stable").head(10)
    others = frame.loc[frame["state"] != "COMPLETE", "state"].value_counts()
    others = ", ".join(f"{n} {_STATES.get(state, state.lower())}" for state, n in others.items())
    click.echo(f"best {len(best)} of {len(frame)} trials{f' ({others})' if others else ''} by {metric}:")
    click.echo(tables.table(best[keep]))
    number = None if best.empty else int(best["trial"].iloc[0])
    click.echo("best: " + progress.best_line(handle, progress.trial(handle, number)))


_STATES = {"PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "queued"}


def _tail(path: Path, n: int = 15) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-n:]
    except OSError:
        return []


def _echo(text: str) -> None:
    click.echo(text, err=True)
