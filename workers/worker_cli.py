"""`python -m workers worker NAME`: pull trials of a study from its storage until the budget is spent."""

from __future__ import annotations

import sys

import click

from storage.contract.options import WorkerOptions


@click.command()
@click.argument("name")
@click.option("--storage", metavar="URL", default=None,
              help="database URL [default: $SWEEPER_STORAGE, else sqlite:///sweeper.db]")
@click.option("--n-trials", type=click.IntRange(min=1), default=None,
              help="run at most this many trials in this worker (the study's budget still applies)")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="start no trial after this many seconds")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="BLAS/OpenMP/XLA threads")
@click.option("--backend", default=None, help="jax (default), numba or c; or $SWEEPER_BACKEND")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="where the jax backend trains (cuda: the GPUs in $CUDA_VISIBLE_DEVICES)")
@click.option("--cpus", default=None, metavar="LIST", help="pin this worker to these cores, e.g. 0 or 0,1")
@click.option("--worker-index", type=click.IntRange(min=0), default=None,
              help="offsets the sampler's seed; parallel workers need different ones [default: the pid]")
@click.option("--quiet", is_flag=True, help="log only warnings, not one line per trial")
@click.option("--stdin-start", is_flag=True, hidden=True,
              help="read the spec on stdin, prepare, and start on the line 'start' (how sweeper run starts workers)")
def worker(name, storage, **given) -> None:
    """Pull trials of study NAME until its n_trials (over all workers), --n-trials or --timeout.

    SIGTERM or Ctrl-C once: finish the current trial, then stop; twice: stop now and queue the
    interrupted trial again.
    """
    from storage import urls
    from storage.contract.process import exit_now
    from workers import runtime

    url = urls.resolve(storage)
    options = worker_options(given)
    runtime.configure(options)
    if options.device == "cuda":
        runtime.check_cuda()  # one line and exit 2 when JAX sees no GPU
    from workers.worker import setup_logging, wait_for_start, work

    setup_logging(options.quiet)
    if options.stdin_start and not wait_for_start(sys.stdin):
        exit_now(0)  # the run that started this worker ended before its study was ready: nothing to do
    exit_now(work(name, url, options, parent=sys.stdin if options.stdin_start else None))  # all written


def worker_options(given: dict) -> WorkerOptions:
    """The typed options from the command's parsed values (--cpus checked against this machine's cores)."""
    from workers import runtime

    return WorkerOptions(**{**given, "cpus": runtime.parse_cpus(given.get("cpus"))})
