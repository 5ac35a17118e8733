"""Worker options: one typed object, written as argv by WorkerOptions.argv and read back by the worker command."""

from __future__ import annotations

import os

import pytest

from storage.contract.errors import BadInput
from storage.contract.options import WorkerOptions
from workers.worker_cli import worker, worker_options

CORE = sorted(os.sched_getaffinity(0))[0]


def parsed(argv: list[str]) -> WorkerOptions:
    """What `python -m workers worker NAME ARGV` builds, without running it."""
    ctx = worker.make_context("worker", ["study", *argv])
    given = {k: v for k, v in ctx.params.items() if k not in ("name", "storage")}
    return worker_options(given)


@pytest.mark.parametrize("options", [
    WorkerOptions(),
    WorkerOptions(threads=2, backend="numba", device="cuda", cpus=(CORE,), n_trials=5, timeout=1.5, worker_index=3,
                  quiet=True, stdin_start=True),
    WorkerOptions(worker_index=0, timeout=30.0),
])
def test_argv_builds_the_same_options_again(options):
    assert parsed(options.argv()) == options


def test_defaults_are_left_out_of_argv():
    assert WorkerOptions().argv() == []
    assert WorkerOptions(threads=1, cpus=(0, 1)).argv() == ["--threads", "1", "--cpus", "0,1"]


def test_every_worker_option_has_a_field():
    """A new option of the command must reach the typed object (and so sweeper run's argv)."""
    names = {p.name for p in worker.params} - {"name", "storage"}
    assert names == set(WorkerOptions.__dataclass_fields__)


def test_a_core_this_machine_lacks_is_bad_input():
    with pytest.raises(BadInput, match="no core 4096 here"):
        parsed(["--cpus", "4096"])


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_timeout_that_is_no_number_of_seconds_is_bad_input(value):
    """click's FloatRange lets NaN through (every comparison with it is false): the worker never stopped."""
    with pytest.raises(BadInput, match="use a finite number of seconds"):
        parsed(["--timeout", value])
