"""How one worker process runs (threads, backend, device, cores, limits): one typed object, its options and argv."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from storage.contract.errors import BadInput

BACKENDS = ("jax", "numba", "c")  # PyTensor's JAX, NUMBA and C (CVM) linkers (workers.runtime)
DEFAULT_BACKEND = "jax"


def backend_name(name: str | None = None) -> str:
    """The backend to use: `name`, else $SWEEPER_BACKEND, else jax; BadInput if unknown."""
    import os

    name = (name or os.environ.get("SWEEPER_BACKEND") or DEFAULT_BACKEND).lower()
    if name not in BACKENDS:
        raise BadInput(f"unknown backend '{name}': use one of {', '.join(BACKENDS)}")
    return name


@dataclass(frozen=True)
class WorkerOptions:
    """A worker's options, built once from its command line (`python -m workers worker`) or by
    `sweeper run` for each worker it starts; `argv()` writes them back as that command line.

    threads: BLAS/OpenMP/XLA threads (None: the libraries' own choice); backend: jax, numba or c
    (None: $SWEEPER_BACKEND, else jax); device: cpu or cuda; cpus: the cores to pin the process to;
    n_trials, timeout: this worker's own limits (the study's budget still applies); worker_index:
    offsets the sampler's seed (None: the pid); quiet: warnings only; stdin_start: read the spec on
    stdin, prepare, and start on the line 'start' (how `sweeper run` starts its workers).
    """

    threads: int | None = field(default=None, metadata={"help": "BLAS/OpenMP/XLA threads per worker"})
    backend: str | None = field(default=None, metadata={
        "help": "the workers' compile backend: jax (default), numba or c; or $SWEEPER_BACKEND"})
    device: str = field(default="cpu", metadata={
        "help": "where the workers train (cuda: the jax backend on the GPUs in $CUDA_VISIBLE_DEVICES)"})
    cpus: tuple[int, ...] | None = field(default=None, metadata={
        "help": "pin the worker to these cores, e.g. 0 or 0,1", "metavar": "LIST"})
    n_trials: int | None = field(default=None, metadata={
        "help": "run at most this many trials in this worker (the study's budget still applies)"})
    timeout: float | None = field(default=None, metadata={"help": "start no trial after this many seconds"})
    worker_index: int | None = field(default=None, metadata={
        "help": "offsets the sampler's seed; parallel workers need different ones [default: the pid]"})
    quiet: bool = field(default=False, metadata={"help": "log only warnings, not one line per trial"})
    stdin_start: bool = field(default=False, metadata={
        "help": "read the spec on stdin, prepare, and start on the line 'start' (how sweeper run starts "
                "workers)", "hidden": True})

    def __post_init__(self):
        backend_name(self.backend)  # an unknown --backend or $SWEEPER_BACKEND, before any process starts
        if self.timeout is not None and not (math.isfinite(self.timeout) and self.timeout > 0):
            raise BadInput(f"--timeout {self.timeout}: use a finite number of seconds > 0")
        for name in ("threads", "n_trials"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BadInput(f"--{name.replace('_', '-')} {value}: use 1 or more")

    def argv(self) -> list[str]:
        """The options of `python -m workers worker NAME ...` that build this object again (defaults left out)."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                out.append(flag)
            elif f.name == "cpus":
                out += [flag, ",".join(map(str, value))]
            else:
                out += [flag, str(value)]
        return out


def click_options(*names: str, defaults: dict[str, str] | None = None):
    """A decorator adding the click options of WorkerOptions' fields `names` to a command: each option's
    type, default and help written once, here; `defaults` adds a command's own '[default: ...]' text."""
    import click

    kinds = {"threads": click.IntRange(min=1), "n_trials": click.IntRange(min=1),
             "worker_index": click.IntRange(min=0), "device": click.Choice(["cpu", "cuda"]),
             "timeout": click.FloatRange(min=0, min_open=True)}
    by_name = {f.name: f for f in fields(WorkerOptions)}

    def decorate(command):
        for name in reversed(names):
            f, flag = by_name[name], "--" + name.replace("_", "-")
            help_text = f.metadata["help"] + (f" [default: {defaults[name]}]" if name in (defaults or {}) else "")
            if f.default is False:
                option = click.option(flag, is_flag=True, help=help_text, hidden=f.metadata.get("hidden", False))
            else:
                option = click.option(flag, type=kinds.get(name), default=f.default, help=help_text,
                                      metavar=f.metadata.get("metavar"), show_default=f.default is not None)
            command = option(command)
        return command

    return decorate
