"""Slurm job arrays of workers: write the sbatch script, submit it, read its tasks, cancel the pending ones."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections import Counter
from pathlib import Path

from storage.contract.errors import BadInput
from sweeper.submit import Submission

ENGINE = "slurm"
PENDING = {"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
RUNNING = {"RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT",
           "STOPPED"}


def script(sub: Submission, logs: Path) -> str:
    """The sbatch script: one array task per worker, each `sweeper worker NAME` with the task's index
    (study names hold only letters, digits, '.', '_' and '-': safe in a job or file name).

    A password in the storage URL stays out of it: the tasks then read $SWEEPER_STORAGE, which sbatch
    takes from the environment of `sweeper submit`.
    """
    from sqlalchemy.engine import make_url

    array = f"0-{sub.workers - 1}" + (f"%{sub.parallel}" if sub.parallel else "")
    options = [f"--job-name=sweeper-{sub.name}", f"--array={array}", f"--cpus-per-task={sub.cpus}"]
    options += [f"--gres=gpu:{sub.gpus}"] if sub.gpus else []
    for flag, value in (("mem", sub.mem), ("time", sub.time), ("partition", sub.partition),
                        ("account", sub.account)):
        options += [f"--{flag}={value}"] if value else []
    options += [f"--output={logs / sub.name}-%A_%a.out", "--open-mode=append", "--requeue", *sub.extra]
    lines = ["#!/bin/bash",
             f"# Workers of sweeper study {sub.name!r}: each task of this array runs one `sweeper worker`, which",
             "# pulls the study's trials from its database until the budget is spent or `sweeper stop`.",
             "# A task killed by Slurm (time limit, preemption) leaves its trial to another worker, which",
             "# resumes it from its last checkpoint. Written by `sweeper submit`; sbatch it again to add workers.",
             *(f"#SBATCH {option}" for option in options), ""]
    if make_url(sub.url).password is None:
        lines.append(f"export SWEEPER_STORAGE={shlex.quote(sub.url)}")
    else:
        lines.append(': "${SWEEPER_STORAGE:?set it to the study database URL (it has a password, so it is not '
                     'written here)}"')
    if sub.artifacts:
        lines.append(f"export SWEEPER_ARTIFACTS={shlex.quote(sub.artifacts)}  # checkpoints, kept weights")
    lines += list(sub.setup)
    worker = [sub.python, "-m", "sweeper", "worker", sub.name]
    lines.append(f"exec {shlex.join(worker)} --worker-index \"$SLURM_ARRAY_TASK_ID\" {shlex.join(sub.worker_args)}")
    return "\n".join(lines) + "\n"


def command(name: str) -> str:
    """The path of Slurm's command `name`; BadInput if it is not on PATH."""
    path = shutil.which(name)
    if path is None:
        raise BadInput(f"{name} is not on PATH: run this on a Slurm login node, or add Slurm's commands to PATH")
    return path


def submit(text: str, env: dict[str, str]) -> str:
    """Submit the script `text` with sbatch (on its stdin) and return the job id; BadInput with sbatch's
    own reason if it refuses."""
    done = subprocess.run([command("sbatch"), "--parsable"], input=text, capture_output=True, text=True, env=env,
                          timeout=120)
    if done.returncode != 0:
        raise BadInput(f"sbatch refused the array: {reason(done.stderr)} (fix the options of sweeper submit)")
    return done.stdout.strip().split(";")[0]


def reason(stderr: str) -> str:
    """Slurm's last error line without its 'sbatch: error: ' prefix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else "no reason given"
    return re.sub(r"^\w+: (error|fatal): (Batch job submission failed: )?", "", last)


def tasks(job: str, n: int) -> Counter | None:
    """The array's tasks by state (pending, running, ended), from squeue; None if squeue is not on PATH.

    Slurm forgets ended tasks after its MinJobAge, and lists cancelled tasks that never started as
    the array job alone: a task it does not list has ended.
    """
    path = shutil.which("squeue")
    if path is None:
        return None
    done = subprocess.run([path, "-h", "-r", "-j", job, "--states=all", "-o", "%i|%T"], capture_output=True,
                          text=True, timeout=60)
    states = {}
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        task, _, state = line.strip().partition("|")
        if "_" in task:  # JOB alone: the array's tasks that never started, cancelled together
            states[task] = state
    counts = Counter("pending" if s in PENDING else "running" if s in RUNNING else "ended" for s in states.values())
    counts["ended"] += max(0, n - len(states))
    return counts


def cancel_pending(job: str) -> bool:
    """Cancel the array's tasks that have not started (running ones go on); False if scancel is not on PATH."""
    path = shutil.which("scancel")
    if path is None:
        return False
    subprocess.run([path, "--state=PENDING", job], capture_output=True, text=True, timeout=60)
    return True
