"""`python -m workers worker NAME`: pull trials of a study from its storage until the budget is spent."""

from __future__ import annotations

import os
import sys
import threading
import time

import click

from storage.contract.options import WorkerOptions, click_options

STARTED_BY = os.getppid()  # read when the command loads, before its slow imports: the `sweeper run` to watch


@click.command()
@click.argument("name")
@click.option("--storage", metavar="URL", default=None,
              help="database URL [default: $SWEEPER_STORAGE, else sqlite:///sweeper.db]")
@click_options("n_trials", "timeout", "threads", "backend", "device", "cpus", "worker_index", "quiet",
               "stdin_start")
def worker(name, storage, **given) -> None:
    """Pull trials of study NAME until its budget (over all workers), --n-trials or --timeout.

    SIGTERM or Ctrl-C once: finish the current trial, then stop; twice: stop now and queue the
    interrupted trial again.
    """
    from storage import urls
    from storage.contract.exits import exit_now
    from workers import runtime

    url = urls.resolve(storage)
    options = worker_options(given)
    runtime.configure(options)
    if options.device == "cuda":
        runtime.check_cuda()  # one line and exit 2 when JAX sees no GPU
    from workers.worker import setup_logging, work

    setup_logging(options.quiet)
    if options.stdin_start and not wait_for_start(sys.stdin):
        exit_now(0)  # the run that started this worker ended before its study was ready: nothing to do
    exit_now(work(name, url, options, parent=sys.stdin if options.stdin_start else None))  # all written


def worker_options(given: dict) -> WorkerOptions:
    """The typed options from the command's parsed values (--cpus checked against this machine's cores)."""
    from workers import runtime

    return WorkerOptions(**{**given, "cpus": runtime.parse_cpus(given.get("cpus"))})


ORPHAN_WAIT_S = 1.0  # how long a worker whose stdin ended looks for its new parent (the old one's exit)


def wait_for_start(stream) -> bool:
    """How `sweeper run` starts its workers while it creates the study: read the study's spec (one JSON
    line) from `stream`, prepare for it, then wait for the line 'start'. A worker whose `sweeper run`
    dies while it prepares (its stdin ends and it gets a new parent) stops preparing at once: hundreds
    of workers preparing on a few cores take minutes. False when it is not started."""
    import _thread
    import json

    from storage.contract.spec import Spec
    from workers.worker import log, prepare

    line = stream.readline()
    if not line:
        return False
    said, orphaned = [], threading.Event()

    def watch() -> None:
        said.append(stream.readline())
        if not said[0] and _orphaned(STARTED_BY):
            orphaned.set()
            _thread.interrupt_main()  # a KeyboardInterrupt in prepare: its temporary files are removed

    thread = threading.Thread(target=watch, name="sweeper-parent", daemon=True)
    thread.start()
    try:
        prepare(Spec.from_attr(json.loads(line)))
        thread.join()
        return said[0].strip() == "start"
    except KeyboardInterrupt:
        if not orphaned.is_set():
            raise
        log.warning("the sweeper run that started this worker is gone: stopped preparing")
        return False


def _orphaned(parent: int) -> bool:
    """Whether this process's parent is no longer `parent` (it died: the pipe from it ended because it
    exited, not because it closed the pipe), seen within ORPHAN_WAIT_S."""
    deadline = time.monotonic() + ORPHAN_WAIT_S
    while os.getppid() == parent:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
