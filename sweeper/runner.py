"""`sweeper run`: start N worker processes on this machine, show progress from the storage, sum up."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

POLL_S = 1.0


def run(handle, *, n_workers: int, timeout: float | None = None, backend: str | None = None,
        log_dir: str | None = None) -> int:
    """Run `n_workers` workers of `handle`'s study until its budget is spent; the exit code.

    The workers run in their own process group, so that a Ctrl-C reaches them only through this
    process: the first Ctrl-C (or SIGTERM) asks each worker to finish its trial and stop, the
    second to stop now (its trial is queued again).
    """
    spec = handle.spec
    if handle.counts().next_step(spec.n_trials) == "done":
        _echo(f"study '{spec.name}' is already done: {handle.counts().done} of {spec.n_trials} trials")
        _summary(handle)
        return 0
    logs = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix=f"sweeper-{spec.name}-"))
    logs.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    workers = [_start(handle, i, threads, timeout, backend, logs) for i in range(n_workers)]
    _echo(f"{n_workers} worker(s), {threads} thread(s) each; logs in {logs}")
    stops = []

    def stop(signum, _frame) -> None:
        stops.append(signum)
        _echo("stopping: each worker finishes its current trial (Ctrl-C again to stop them now)"
              if len(stops) == 1 else "stopping now: running trials are queued again")
        for p, _ in workers:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    started, last_line = time.monotonic(), None
    try:
        while True:
            alive = [p for p, _ in workers if p.poll() is None]
            line = _progress(handle)
            if line != last_line:
                _echo(f"[{time.monotonic() - started:6.0f} s] {line}")
                last_line = line
            if not alive:
                break
            time.sleep(POLL_S)
    finally:
        for p, log in workers:
            p.wait()
            log.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _summary(handle)
    counts = handle.counts()
    if counts.next_step(spec.n_trials) != "done":
        _echo(f"not finished: {counts.done} of {spec.n_trials} trials done; run again (or start workers) "
              "to go on")
    if stops:
        return 130
    failed = [(i, p.returncode) for i, (p, _) in enumerate(workers) if p.returncode != 0]
    for i, code in failed:
        _echo(f"worker {i} exited with code {code}; the end of {logs / f'worker-{i}.log'}:")
        _echo("".join(_tail(logs / f"worker-{i}.log")).rstrip())
    if failed:
        return 2 if all(code == 2 for _, code in failed) else 1
    if log_dir is None:
        shutil.rmtree(logs, ignore_errors=True)
    return 0


def _start(handle, index: int, threads: int, timeout, backend, logs: Path):
    argv = [sys.executable, "-m", "workers", "worker", handle.spec.name, "--threads", str(threads),
            "--worker-index", str(index)]
    env = {**os.environ, "SWEEPER_STORAGE": _absolute(handle.url)}  # not in argv, where ps shows passwords
    if timeout is not None:
        argv += ["--timeout", str(timeout)]
    if backend is not None:
        argv += ["--backend", backend]
    log = open(logs / f"worker-{index}.log", "w", encoding="utf-8")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True), log


def _absolute(url: str) -> str:
    """An SQLite URL with an absolute path, so a worker in another folder finds the same file."""
    from storage import urls

    path = urls.sqlite_path(url)
    if path is None or path.is_absolute():
        return url
    return f"sqlite:///{path.resolve()}"


def _progress(handle) -> str:
    from sweeper import report

    counts = handle.counts()
    return (f"{counts.done}/{handle.spec.n_trials} done ({counts.pruned} pruned, {counts.fail - counts.retried} "
            f"failed), {counts.running} running | best: {report.best_line(handle)}")


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
