"""What `sweeper submit` hands an engine (Slurm, Kubernetes): one typed request, checked once."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from storage.contract.errors import BadInput

MEM = re.compile(r"[1-9][0-9]*[KMGT]?")  # Slurm's --mem: a number of megabytes, or with a unit
TIME = re.compile(r"([0-9]+-)?[0-9]+(:[0-9]{1,2}){0,2}")  # Slurm's --time: MIN, MIN:SEC, H:M:S, D-H[:M[:S]]


@dataclass(frozen=True)
class Submission:
    """N workers of one study for an engine to start; each runs `sweeper worker NAME` on `url`.

    name: the study; url: its storage (the password, if any, never leaves the environment);
    workers: array size (Slurm) or completions (Kubernetes); parallel: at most this many at once
    (None: as many as the engine gives); gpus, cpus: per worker (cpus is also its thread count);
    mem, time: per worker, in Slurm's syntax (e.g. 4G, 2:00:00); partition, account: Slurm's;
    extra: more `#SBATCH` lines (their options only); setup: shell lines run before the worker
    (e.g. `module load cuda`); python: the interpreter the workers run (on a shared file system);
    artifacts: the folder for checkpoints and kept weights (shared by every node), None: none kept.
    """

    name: str
    url: str
    workers: int
    parallel: int | None = None
    gpus: int = 0
    cpus: int = 1
    mem: str | None = None
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    extra: tuple[str, ...] = field(default_factory=tuple)
    setup: tuple[str, ...] = field(default_factory=tuple)
    python: str = "python3"
    artifacts: str | None = None
    backend: str | None = None

    def __post_init__(self):
        for flag, value, least in (("--workers", self.workers, 1), ("--parallel", self.parallel, 1),
                                   ("--cpus-per-worker", self.cpus, 1), ("--gpus-per-worker", self.gpus, 0)):
            if value is not None and value < least:
                raise BadInput(f"{flag} {value}: use {least} or more")
        if self.mem is not None and not MEM.fullmatch(self.mem):
            raise BadInput(f"--mem {self.mem!r}: use megabytes or a number with K, M, G or T, e.g. 4G")
        if self.time is not None and not TIME.fullmatch(self.time):
            raise BadInput(f"--time {self.time!r}: use Slurm's form, e.g. 90 (minutes), 2:00:00 or 1-12:00:00")
        for line in self.extra:
            if "\n" in line or not line.strip().startswith("-"):
                raise BadInput(f"--sbatch {line!r}: give one sbatch option per flag, e.g. --sbatch=--qos=long")
        for line in self.setup:
            if "\n" in line:
                raise BadInput(f"--setup {line!r}: give one shell line per flag")

    @property
    def worker_args(self) -> list[str]:
        """The options of `python -m workers worker NAME` every worker gets (the index comes from the engine)."""
        args = ["--threads", str(self.cpus)]
        if self.gpus:
            args += ["--device", "cuda"]
        if self.backend:
            args += ["--backend", self.backend]
        return args


def check(handle, sub: Submission, *, one_node: bool) -> list[str]:
    """BadInput where the study cannot take these workers; else the warnings to print before submitting."""
    from storage import urls

    counts = handle.counts()
    counts.refuse_stopped(sub.name)
    if counts.done >= counts.budget:
        raise BadInput(f"study '{sub.name}' has spent its budget of {counts.budget} trials: "
                       f"sweeper extend {sub.name} --n-trials N gives it more")
    if urls.sqlite_path(sub.url) is not None and not one_node:
        raise BadInput(f"storage {urls.mask(sub.url)} is an SQLite file, whose locks fail across a cluster's nodes "
                       "and on network file systems: use PostgreSQL (docs/cluster.md), or pass --one-node if "
                       "every task runs on this machine")
    warnings = []
    if sub.artifacts is None:
        warnings.append("no artifacts folder: a trial whose task is killed starts again at epoch 1 and no "
                        "weights are kept; pass --artifacts DIR on a file system every node sees")
    from sweeper import connections

    too_many = connections.warning(sub.url, sub.parallel or sub.workers)
    return warnings + ([too_many] if too_many else [])


def slurm_array(handle, text: str, workers: int, logs: Path) -> tuple[str, Path]:
    """Submit the sbatch script `text` (an array of `workers` tasks) for the study: (job id, the script
    file kept in `logs`). Nothing is left behind when sbatch refuses: no folder made, no script
    written, no array recorded."""
    import datetime as dt
    import os

    from storage import arrays
    from sweeper import slurm

    made = not logs.exists()
    try:
        logs.mkdir(parents=True, exist_ok=True)
        job = slurm.submit(text, {**os.environ, "SWEEPER_STORAGE": handle.url})
    except OSError as err:
        raise BadInput(f"--logs {logs}: {err.strerror}: pick a folder you can write") from None
    except BadInput:
        if made:
            logs.rmdir()
        raise
    kept = logs / f"{handle.study.study_name}-{job}.sbatch"
    kept.write_text(text)
    arrays.add(handle.storage, handle.study_id, {
        "engine": slurm.ENGINE, "job": job, "workers": workers, "script": str(kept), "text": text,
        "submitted": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    return job, kept


def last_array(handle) -> dict:
    """The study's last submitted Slurm array; BadInput if it has none (`sweeper resume --submit`)."""
    from storage import arrays

    submitted = arrays.submitted(handle.storage, handle.study_id)
    if not submitted:
        name = handle.study.study_name
        raise BadInput(f"study '{name}' was never submitted to Slurm: use sweeper submit {name} --slurm ...")
    return submitted[-1]


def array_lines(handle) -> list[str]:
    """One line per submitted array of the study: its tasks by state, as its engine reports them."""
    from storage import arrays
    from sweeper import slurm

    lines = []
    for record in arrays.submitted(handle.storage, handle.study_id):
        counts = slurm.tasks(record["job"], record["workers"])
        head = f"slurm array {record['job']} ({record['workers']} tasks, submitted {record['submitted']})"
        if counts is None:
            lines.append(f"{head}: squeue is not on PATH here (run sweeper status on the cluster)")
        else:
            lines.append(f"{head}: {counts['pending']} pending, {counts['running']} running, {counts['ended']} ended")
    return lines


def cancel_pending(handle) -> list[str]:
    """Cancel the pending tasks of the study's arrays (`sweeper stop`): what was done, one line each."""
    from storage import arrays
    from sweeper import slurm

    lines = []
    for record in arrays.submitted(handle.storage, handle.study_id):
        if slurm.cancel_pending(record["job"]):
            lines.append(f"slurm array {record['job']}: its pending tasks cancelled")
        else:
            lines.append(f"slurm array {record['job']}: scancel is not on PATH here, so its pending tasks will "
                         "start and exit at once (the study is stopped)")
    return lines
