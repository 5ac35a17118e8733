"""`sweeper run`: start N worker processes on this machine (preparing while the study is created), show
progress from the storage, sum up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import click

from storage.budget import Step
from storage.contract.errors import BadInput
from storage.contract.options import WorkerOptions
from sweeper.progress import Progress

POLL_S = 1.0
LINGER_S = 15.0  # how long workers may take to exit once their study is finished, before they are killed


@dataclass
class Workers:
    """The worker processes of one `sweeper run`, each preparing (imports, data, compiling) until
    `release` lets it start, or `cancel` ends it."""

    procs: list  # (subprocess.Popen, its log file)
    logs: Path
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
        for p, log in self.procs:
            if p.poll() is None:
                p.terminate()
            p.wait()
            log.close()
            _tell(p, "", last=True)
        if not self.keep_logs:
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
    """
    logs = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix=f"sweeper-{spec.name}-"))
    try:
        logs.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"--logs {logs}: {exc.strerror or exc}: choose a folder you can write") from None
    if not os.access(logs, os.W_OK):
        raise BadInput(f"--logs {logs}: the folder is not writable: choose a folder you can write")
    cores = sorted(os.sched_getaffinity(0))
    threads = options.threads or max(1, len(cores) // n_workers)
    pin = n_workers * threads <= len(cores)  # one worker of all cores: a no-op
    # (a lone 1-thread worker is pinned too: unpinned, XLA's helper threads spill onto a second core)
    line = json.dumps(spec.to_attr()) + "\n"
    procs = []
    for i in range(n_workers):
        gpu = gpus[i % len(gpus)] if gpus else None
        mine = replace(options, threads=threads, worker_index=i, stdin_start=True,
                       cpus=tuple(cores[i * threads:(i + 1) * threads]) if pin else None,
                       device="cuda" if gpu is not None else options.device)
        procs.append(_start(spec.name, url, mine, logs / f"worker-{i}.log", gpu=gpu))
        _tell(procs[-1][0], line)
    where = f", GPU {', '.join(gpus)}" if gpus else ", one core each" if pin and threads == 1 else ""
    return Workers(procs, logs, log_dir is not None,
                   f"{n_workers} worker(s), {threads} thread(s) each{where}; logs in {logs}")


def run(handle, workers: Workers, *, quiet: bool = False) -> int:
    """Release `workers` on `handle`'s study, show progress until they exit, sum up; the exit code.
    `quiet` (a caller that runs many studies and says these once): no SQLite warning, workers line or
    table of the best trials.

    The workers run in their own process group, so that a Ctrl-C reaches them only through this
    process: the first Ctrl-C (or SIGTERM) asks each worker to finish its trial and stop, the
    second to stop now (its trial is queued again). Workers still alive LINGER_S after the study
    finished (stopped or hung; their trials were failed as stale and retried) are killed and named.
    """
    spec, counts = handle.spec, handle.counts()
    if counts.next_step(spec.n_trials) is Step.DONE:
        workers.cancel()
        _echo(f"study '{spec.name}' is already done: {counts.done} of {counts.budget(spec.n_trials)} trials")
        if not quiet:
            _summary(handle)
        return 0
    if counts.stopped:
        raise BadInput(f"study '{spec.name}' is stopped (sweeper stop): lift it with sweeper resume {spec.name}")
    from storage import rdb, urls

    if not quiet:
        if urls.sqlite_path(handle.url) is not None and len(workers.procs) > 1:
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
    if not quiet:
        _summary(handle)
    counts = handle.counts()
    if counts.next_step(spec.n_trials) is not Step.DONE:
        _echo(f"not finished: {counts.done} of {counts.budget(spec.n_trials)} trials done; run again (or start "
              "workers) to go on")
    if stops:
        return 130
    failed = [(i, p.returncode) for i, (p, _) in enumerate(procs) if p.returncode != 0 and i not in hung]
    for i, code in failed:
        _echo(f"worker {i} exited with code {code}; the end of {workers.logs / f'worker-{i}.log'}:")
        _echo("".join(_tail(workers.logs / f"worker-{i}.log")).rstrip())
    if failed:
        return 2 if all(code == 2 for _, code in failed) else 1
    if not workers.keep_logs and not hung:
        shutil.rmtree(workers.logs, ignore_errors=True)
    return 0


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


def _start(name: str, url: str, options: WorkerOptions, log_path: Path, *, gpu: str | None = None):
    """One worker process (python -m workers worker NAME OPTIONS), its output in `log_path`."""
    argv = [sys.executable, "-m", "workers", "worker", name, *options.argv()]
    env = {**os.environ, "SWEEPER_STORAGE": _absolute(url)}  # not in argv, where ps shows passwords
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    log = open(log_path, "w", encoding="utf-8")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.PIPE, env=env, text=True,
                            start_new_session=True), log


def _absolute(url: str) -> str:
    """An SQLite URL with an absolute path, so a worker in another folder finds the same file."""
    from storage import urls

    path = urls.sqlite_path(url)
    if path is None or path.is_absolute():
        return url
    return f"sqlite:///{path.resolve()}"


def _summary(handle) -> None:
    from sweeper import analysis, report

    frame = analysis.trials(None, handle)
    keep = ["trial", "state", *handle.spec.space, "valid_error", "test_error", "epochs_run", "seconds"]
    if handle.spec.metric != "valid_error":
        keep.insert(keep.index("valid_error") + 1, handle.spec.metric)
    ascending = handle.spec.direction == "minimize"
    metric = handle.spec.metric
    best = frame[frame["state"] == "COMPLETE"].sort_values(metric, ascending=ascending).head(10)
    click.echo(f"best {len(best)} of {len(frame)} trials by {metric}:")
    click.echo(report.table(best[keep]))
    click.echo("best: " + report.best_line(handle))


def _tail(path: Path, n: int = 15) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-n:]
    except OSError:
        return []


def _echo(text: str) -> None:
    click.echo(text, err=True)
