"""`sweeper submit --slurm`: the sbatch script, its refusals, and an array on a real one-node Slurm."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import optuna
import pytest

from sweeper import manager, toml_spec
from tests import slurmtools
from tests.clitools import one_line, sweeper_cli
from tests.conftest import need
from tests.sweeper.test_scale import check_complete, spec_text


def create(url: str, name: str = "s", **kw) -> None:
    """The study `name` of tests/sweeper/test_scale.py's spec on `url`, with a checkpoint every epoch."""
    spec = tomllib.loads(spec_text(name, **kw))
    spec["study"]["checkpoint_every"] = 1
    handle, _ = manager.create(toml_spec.parse(spec), url)
    handle.storage.engine.dispose()


def submit(*args, cwd: Path, env: dict | None = None):
    return sweeper_cli("submit", *args, cwd=cwd, env=env)


CPU_SCRIPT = """\
#!/bin/bash
# Workers of sweeper study 's': each task of this array runs one `sweeper worker`, which
# pulls the study's trials from its database until the budget is spent or `sweeper stop`.
# A task killed by Slurm (time limit, preemption) leaves its trial to another worker, which
# resumes it from its last checkpoint. Written by `sweeper submit`; sbatch it again to add workers.
#SBATCH --job-name=sweeper-s
#SBATCH --array=0-7%3
#SBATCH --cpus-per-task=2
#SBATCH --mem=2G
#SBATCH --time=1:30:00
#SBATCH --output={logs}/s-%A_%a.out
#SBATCH --open-mode=append
#SBATCH --requeue

export SWEEPER_STORAGE={url}
export SWEEPER_ARTIFACTS={artifacts}  # checkpoints, kept weights
exec {python} -m sweeper worker s --worker-index "$SLURM_ARRAY_TASK_ID" --threads 2
"""

GPU_SCRIPT = """\
#!/bin/bash
# Workers of sweeper study 'blog.l2': each task of this array runs one `sweeper worker`, which
# pulls the study's trials from its database until the budget is spent or `sweeper stop`.
# A task killed by Slurm (time limit, preemption) leaves its trial to another worker, which
# resumes it from its last checkpoint. Written by `sweeper submit`; sbatch it again to add workers.
#SBATCH --job-name=sweeper-blog.l2
#SBATCH --array=0-3
#SBATCH --cpus-per-task=4
#SBATCH --gres=gpu:1
#SBATCH --partition=gpu
#SBATCH --account=lab
#SBATCH --output={logs}/blog.l2-%A_%a.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --qos=long

: "${{SWEEPER_STORAGE:?set it to the study database URL (it has a password, so it is not written here)}}"
export SWEEPER_ARTIFACTS=/shared/artifacts  # checkpoints, kept weights
module load cuda/12
exec {python} -m sweeper worker blog.l2 --worker-index "$SLURM_ARRAY_TASK_ID" --threads 4 --device cuda
"""


def test_a_cpu_dry_run_prints_the_script_and_submits_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'one.db'}"
    create(url)
    done = submit("s", "--slurm", "--storage", url, "--workers", 8, "--parallel", 3, "--cpus-per-worker", 2,
                  "--mem", "2G", "--time", "1:30:00", "--one-node", "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == CPU_SCRIPT.format(logs=tmp_path / "slurm-logs", url=url, python=sys.executable,
                                            artifacts=tmp_path / "one.db-artifacts")
    assert not (tmp_path / "slurm-logs").exists()  # a dry run writes nothing


def test_a_gpu_dry_run_keeps_the_password_out_of_the_script(pg_url, tmp_path):
    from sqlalchemy.engine import make_url

    create(pg_url, "blog.l2")
    with_password = make_url(pg_url).set(password="s3cret").render_as_string(hide_password=False)
    done = submit("blog.l2", "--slurm", "--storage", with_password, "--workers", 4, "--gpus-per-worker", 1,
                  "--cpus-per-worker", 4, "--partition", "gpu", "--account", "lab", "--sbatch=--qos=long",
                  "--setup", "module load cuda/12", "--artifacts", "/shared/artifacts", "--dry-run",
                  cwd=tmp_path)  # trust auth: the password is not checked
    assert done.returncode == 0, done.stderr
    assert done.stdout == GPU_SCRIPT.format(logs=tmp_path / "slurm-logs", python=sys.executable)
    assert "s3cret" not in done.stdout + done.stderr


def test_without_an_artifacts_folder_it_warns_that_killed_trials_start_again(pg_url, tmp_path):
    create(pg_url)
    env = {k: v for k, v in os.environ.items() if k not in ("SWEEPER_STORAGE", "SWEEPER_ARTIFACTS")}
    done = submit("s", "--slurm", "--storage", pg_url, "--workers", 2, "--dry-run", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "warning: no artifacts folder: a trial whose task is killed starts again at epoch 1" in done.stderr
    assert "SWEEPER_ARTIFACTS" not in done.stdout


@pytest.mark.parametrize("args, words", [
    (["--workers", "0"], ["--workers 0: use 1 or more"]),
    (["--workers", "4", "--parallel", "0"], ["--parallel 0: use 1 or more"]),
    (["--workers", "4", "--mem", "lots"], ["--mem 'lots'", "4G"]),
    (["--workers", "4", "--time", "soon"], ["--time 'soon'", "2:00:00"]),
    (["--workers", "4", "--sbatch", "qos=long"], ["--sbatch 'qos=long'", "--sbatch=--qos=long"]),
    (["--workers", "2"], ["no study 'nope'", "known: s"]),
])
def test_bad_requests_are_one_line_and_submit_nothing(args, words, pg_url, tmp_path):
    create(pg_url)
    name = "nope" if "no study 'nope'" in words else "s"
    done = submit(name, "--slurm", "--storage", pg_url, *args, cwd=tmp_path)
    one_line(done, *words)
    assert not (tmp_path / "slurm-logs").exists()


def test_an_sqlite_file_is_refused_for_a_cluster(tmp_path):
    url = f"sqlite:///{tmp_path / 'one.db'}"
    create(url)
    done = submit("s", "--slurm", "--storage", url, "--workers", 2, "--dry-run", cwd=tmp_path)
    one_line(done, "is an SQLite file", "use PostgreSQL", "--one-node")


def test_without_sbatch_on_path_it_is_one_line(pg_url, tmp_path):
    create(pg_url)
    env = {**{k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}, "PATH": str(tmp_path)}
    done = submit("s", "--slurm", "--storage", pg_url, "--workers", 2, cwd=tmp_path, env=env)
    one_line(done, "sbatch is not on PATH", "Slurm login node")
    assert not (tmp_path / "slurm-logs").exists()


# ---- a real Slurm -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """The environment of a running one-node Slurm (munge, slurmctld, slurmd), stopped afterwards."""
    why = slurmtools.install()
    need(why is None, why or "")
    root = tmp_path_factory.mktemp("slurm")
    env = slurmtools.start(root)
    yield {k: v for k, v in env.items() if k != "SWEEPER_STORAGE"}
    slurmtools.stop(root, env)


def status(url: str, env: dict, cwd: Path, name: str = "s") -> str:
    done = sweeper_cli("status", name, "--storage", url, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_a_partition_slurm_rejects_is_its_own_reason_in_one_line(slurm, pg_url, tmp_path):
    create(pg_url)
    done = submit("s", "--slurm", "--storage", pg_url, "--workers", 2, "--partition", "nosuch",
                  "--artifacts", tmp_path / "art", cwd=tmp_path, env=slurm)
    one_line(done, "sbatch refused the array: Invalid partition name specified")
    assert not (tmp_path / "slurm-logs").exists()
    assert "slurm array" not in status(pg_url, slurm, tmp_path)  # nothing recorded


def task_of(pid: int) -> str:
    """The array task (JOB_TASK) a worker process runs in, from its environment."""
    environ = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
    return f"{environ['SLURM_ARRAY_JOB_ID']}_{environ['SLURM_ARRAY_TASK_ID']}"


@pytest.mark.slow
def test_an_array_of_6_tasks_2_at_once_survives_a_kill_and_a_stop(slurm, pg_url, tmp_path):
    """Bar (with 6 tasks, not 4, so that some are still pending at the stop): every trial done once; the
    tasks in `sweeper status`; a task killed mid-trial with
    scancel --batch --signal=KILL (SIGKILL at once; without --batch Slurm cancels: SIGTERM, then SIGKILL
    after KillWait): its trial retried from its checkpoint; `sweeper stop` cancels the pending
    tasks; `sweeper resume --submit` sends the array again, which finishes the study."""
    import sqlalchemy as sa

    create(pg_url, n_trials=6, epochs=8, batch_size=1, heartbeat=1, grace=3)  # trials of seconds
    done = submit("s", "--slurm", "--storage", pg_url, "--workers", 6, "--parallel", 2, "--artifacts",
                  tmp_path / "art", cwd=tmp_path, env=slurm)
    assert done.returncode == 0, done.stderr
    job = done.stdout.strip()
    assert re.fullmatch(r"\d+", job) and f"Slurm array {job} of 6 workers submitted" in done.stderr
    assert (tmp_path / "slurm-logs" / f"s-{job}.sbatch").read_text().count("#SBATCH --array=0-5%2") == 1

    first = wait(lambda: (s := status(pg_url, slurm, tmp_path)) and "4 pending, 2 running" in s and s, 120,
                 "two tasks running, four pending")
    assert f"slurm array {job} (6 tasks, submitted " in first

    engine = sa.create_engine(pg_url)
    try:
        def training():  # a running trial with 2 or more epochs written (checkpoints after each)
            running = (optuna.trial.TrialState.RUNNING,)
            for t in optuna.load_study(study_name="s", storage=pg_url).get_trials(states=running):
                with engine.connect() as conn:
                    rows = conn.execute(sa.text("select count(*) from sweeper_epochs where trial_id = :t"),
                                        {"t": t._trial_id}).scalar_one()
                if 2 <= rows <= 6:
                    return t
            return None

        victim = wait(training, 180, "a trial past its second epoch")
    finally:
        engine.dispose()
    task = task_of(int(victim.user_attrs["worker"].rsplit(":", 1)[1]))
    subprocess.run(["scancel", "--batch", "--signal=KILL", task], check=True, env=slurm, timeout=60)
    wait(lambda: slurmtools.jobs(slurm, job).get(task) not in ("RUNNING", "COMPLETING"), 60, "the task to die")

    def resumed():
        logs = "".join(p.read_text() for p in (tmp_path / "slurm-logs").glob("*.out"))
        return re.search(rf"trial (\d+) resumes trial {victim.number} from its checkpoint at epoch \d+", logs)

    retry = wait(resumed, 180, "the killed trial's retry to resume from its checkpoint")
    pending = [task for task, state in slurmtools.jobs(slurm, job).items() if state == "PENDING"]
    assert pending, "no task left pending to cancel: give the array more tasks"
    stopped = sweeper_cli("stop", "s", "--storage", pg_url, cwd=tmp_path, env=slurm)
    assert stopped.returncode == 0 and f"slurm array {job}: its pending tasks cancelled" in stopped.stderr
    wait(lambda: not {"PENDING", "RUNNING", "COMPLETING"} & set(slurmtools.jobs(slurm, job).values()), 180,
         "the array to end after the stop")
    assert "0 pending, 0 running, 6 ended" in status(pg_url, slurm, tmp_path)
    started = {p.stem.removeprefix("s-") for p in (tmp_path / "slurm-logs").glob("*.out")}  # a task's log
    assert started and not started & set(pending), (pending, started)  # the pending ones never started
    trials = optuna.load_study(study_name="s", storage=pg_url).trials
    assert any(t.state.name == "RUNNING" for t in trials) is False
    left = 6 - sum(t.state.name == "COMPLETE" for t in trials)

    again = sweeper_cli("resume", "s", "--submit", "--storage", pg_url, cwd=tmp_path, env=slurm)
    assert again.returncode == 0, again.stderr
    second = again.stdout.strip()
    wait(lambda: not {"PENDING", "RUNNING", "COMPLETING"} & set(slurmtools.jobs(slurm, second).values()), 300,
         "the second array to finish the study")
    frame, rows = check_complete(pg_url, 6, 8)
    original = frame.set_index("trial").loc[victim.number]
    assert original["state"] == "FAIL" and original["reason"].startswith("no heartbeat")
    assert frame[frame["retry_of"] == victim.number]["trial"].tolist() == [int(retry.group(1))]
    shown = status(pg_url, slurm, tmp_path)
    assert f"slurm array {job} (6 tasks" in shown and f"slurm array {second} (6 tasks" in shown, shown
    print(f"left after the stop: {left} trial(s); the second array ran them")
