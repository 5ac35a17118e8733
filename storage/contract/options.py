"""How one worker process runs (threads, backend, device, cores, limits): one typed object, turned into argv in one place."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

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

    threads: int | None = None
    backend: str | None = None
    device: str = "cpu"
    cpus: tuple[int, ...] | None = None
    n_trials: int | None = None
    timeout: float | None = None
    worker_index: int | None = None
    quiet: bool = False
    stdin_start: bool = False

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
