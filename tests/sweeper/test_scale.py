"""Scale out and survive: parallel workers, kill -9, a PostgreSQL restart, load, SQLite, stop/resume, masking.

Real processes, real signals and the real local PostgreSQL (restarted by one test); no mocks.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from storage import epochs
from sweeper import analysis, manager, toml_spec
from tests.conftest import need

pytestmark = pytest.mark.slow  # real processes or whole runs: not in the fast lane (-m 'not slow')


SPEC = """
[study]
name = "{name}"
dataset = "digits"
n_trials = {n_trials}
epochs = {epochs}
sampler = {sampler}
heartbeat = {heartbeat}
grace = {grace}

[params]
width = {width}
schedule = "constant"
batch_size = {batch_size}
lr = {{float = [0.01, 0.3], log = true}}
"""


def spec_text(name="s", *, n_trials=12, epochs=3, batch_size=4, width=16, heartbeat=1, grace=3,
              sampler='"random"') -> str:
    return SPEC.format(name=name, n_trials=n_trials, epochs=epochs, batch_size=batch_size, width=width,
                       heartbeat=heartbeat, grace=grace, sampler=sampler)


def create(url: str, **kw):
    handle, _ = manager.create(toml_spec.parse(tomllib.loads(spec_text(**kw))), url)
    handle.storage.engine.dispose()
    return handle


def env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}


def start_worker(url: str, *args: str, name: str = "s"):
    argv = [sys.executable, "-m", "workers", "worker", name, "--storage", url, "--threads", "1", *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env())


def sweeper(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "sweeper", *map(str, args)], capture_output=True, text=True,
                          env=env(), cwd=cwd, timeout=timeout)


def trials(url: str, name: str = "s"):
    return optuna.load_study(study_name=name, storage=url).trials


def check_complete(url: str, n_complete: int, epochs_per_trial: int, name: str = "s"):
    """n_complete COMPLETE trials, none RUNNING or WAITING, each COMPLETE trial's epoch rows exactly once."""
    frame = analysis.open(name, storage=url).trials()
    assert (frame["state"] == "COMPLETE").sum() == n_complete, frame[["trial", "state", "reason"]]
    assert not frame["state"].isin(["RUNNING", "WAITING"]).any()
    engine = sa.create_engine(url)
    try:
        rows = epochs.read(engine, manager.open_study(name, url).study_id)
    finally:
        engine.dispose()
    assert not rows.duplicated(["trial", "epoch"]).any()
    done = frame[frame["state"] == "COMPLETE"]
    counts = rows.groupby("trial")["epoch"].agg(list)
    for number in done["trial"]:
        assert counts[number] == list(range(1, epochs_per_trial + 1)), (number, counts.get(number))
    values = [t.value for t in trials(url, name) if t.state.name == "COMPLETE"]
    assert len(values) == n_complete and all(v is not None and 0 <= v <= 1 for v in values)
    return frame, rows


def wait_until(condition, timeout: float, what: str, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            assert p.poll() is None, f"a worker exited while waiting for {what}: {p.stdout.read()}"
        try:
            if condition():
                return
        except sa.exc.OperationalError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def finish(procs, timeout: float = 180) -> list[str]:
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        outs.append(out)
        assert p.returncode == 0, out[-3000:]
    return outs


def test_kill_9_during_a_second_trial_is_retried_and_rows_never_mix(pg_url):
    """Bar 1: PostgreSQL, 3 workers, 12 trials; kill -9 one worker in its second trial."""
    create(pg_url, n_trials=12, epochs=6, batch_size=1, heartbeat=1, grace=3)  # trials of a few seconds
    procs = [start_worker(pg_url, "--worker-index", str(i)) for i in range(3)]
    victim = procs[0]
    label = f"{socket.gethostname()}:{victim.pid}"
    engine = sa.create_engine(pg_url)
    seen = {}

    def victim_in_second_trial() -> bool:
        mine = [t for t in trials(pg_url) if t.user_attrs.get("worker") == label]
        running = [t for t in mine if t.state.name == "RUNNING"]
        if len(mine) < 2 or not running:  # its second trial (a later one only if polling missed it)
            return False
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select count(*) from sweeper_epochs where trial_id = :t"),
                                {"t": running[0]._trial_id}).scalar_one()
        seen["trial"] = running[0].number
        return 1 <= rows <= 4  # mid-training

    try:
        wait_until(victim_in_second_trial, 150, "the victim's second trial to train", procs)
        os.kill(victim.pid, signal.SIGKILL)  # at once: reading the trials again gave it time to finish
    finally:
        engine.dispose()
    killed = seen["trial"]
    victim.wait()
    finish(procs[1:])

    frame, rows = check_complete(pg_url, 12, 6)
    assert len(frame) == 13  # 12 COMPLETE plus the killed original, FAIL
    original = frame.set_index("trial").loc[killed]
    assert original["state"] == "FAIL"
    assert original["reason"].startswith("no heartbeat for 3 s: its worker died or hung; retried as trial ")
    retry = frame[frame["retry_of"] == killed]
    assert len(retry) == 1 and retry.iloc[0]["state"] == "COMPLETE"
    assert retry.iloc[0]["lr"] == original["lr"] and retry.iloc[0]["worker"] != label
    assert rows[rows["trial"] == retry.iloc[0]["trial"]]["epoch"].tolist() == [1, 2, 3, 4, 5, 6]  # its own rows
    partial = rows[rows["trial"] == killed]["epoch"].tolist()  # the original's rows stay its own
    assert partial == list(range(1, len(partial) + 1)) and 1 <= len(partial) <= 6


def _cluster() -> list[str]:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]


def _pg_answers(url: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def test_workers_survive_a_postgresql_restart(pg_url, tmp_path):
    """Bar 2 (and the thread budget): `sweeper run --workers 2`, the server restarts mid-study."""
    need(Path("/etc/postgresql").is_dir() and os.geteuid() == 0, "cannot restart the local PostgreSQL here")
    options = dict(n_trials=8, epochs=3, batch_size=2, heartbeat=1, grace=30)  # trials of about a second
    create(pg_url, **options)
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(**options))
    logs = tmp_path / "logs"
    run = subprocess.Popen([sys.executable, "-m", "sweeper", "run", str(spec), "--storage", pg_url, "--workers",
                            "2", "--logs", str(logs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env())
    try:
        wait_until(lambda: sum(t.state.name == "COMPLETE" for t in trials(pg_url)) >= 2, 150,
                   "two complete trials", [run])
        restart = subprocess.run([*_cluster(), "restart"], capture_output=True, text=True, timeout=120)
        assert restart.returncode == 0, restart.stderr
        out, err = run.communicate(timeout=240)
    finally:
        if run.poll() is None:
            run.kill()
        if not _pg_answers(pg_url):
            subprocess.run([*_cluster(), "start"], capture_output=True, timeout=120)
        wait_until(lambda: _pg_answers(pg_url), 60, "PostgreSQL to answer again")
    assert run.returncode == 0, err
    check_complete(pg_url, 8, 3)
    assert not (analysis.open("s", storage=pg_url).trials()["state"] == "FAIL").any()
    worker_logs = [(logs / f"worker-{i}.log").read_text() for i in range(2)]
    assert any("retrying for up to" in text for text in worker_logs), "no worker met the restart"
    # the thread budget reached each worker: one thread, its own core (2 workers on >= 2 cores)
    cores = sorted(os.sched_getaffinity(0))
    for i, text in enumerate(worker_logs):
        assert "threads=1 " in text
        if len(cores) >= 2:
            assert f"cpus={cores[i]} " in text


def test_load_8_workers_500_trials_on_postgresql(pg_url, tmp_path, capsys):
    """Bar 3: 8 worker processes, 500 trivially short trials: all finished, none twice, none stuck."""
    spec = tmp_path / "load.toml"
    spec.write_text(spec_text("load", n_trials=500, epochs=1, batch_size=120, width=8, heartbeat=30, grace=60))
    started = time.monotonic()
    run = sweeper("run", spec, "--storage", pg_url, "--workers", "8", timeout=300)
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-3000:]
    frame = analysis.open("load", storage=pg_url).trials()
    assert len(frame) == 500 and frame["trial"].is_unique
    assert set(frame["state"]) == {"COMPLETE"}
    assert frame["worker"].nunique() == 8
    with capsys.disabled():
        print(f"\nload: 500 trials by 8 workers on PostgreSQL in {elapsed:.1f} s: {500 / elapsed:.1f} trials/s "
              "(worker start-up included)")


def test_sqlite_with_4_workers_completes_and_warns(tmp_path):
    """Bar 4: SQLite, 4 workers: no crash, every trial done once, a one-line warning naming PostgreSQL."""
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(n_trials=24, epochs=1, batch_size=120, width=8, heartbeat=2, grace=10))
    run = sweeper("run", spec, "--workers", "4", "--logs", tmp_path / "logs", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    warning = [line for line in run.stderr.splitlines() if "share one SQLite file" in line]
    assert len(warning) == 1 and "PostgreSQL" in warning[0] and "postgresql://" in warning[0]
    check_complete(f"sqlite:///{tmp_path / 'sweeper.db'}", 24, 1)


def test_stop_and_resume_reach_every_worker(pg_url, tmp_path):
    create(pg_url, n_trials=30, epochs=4, batch_size=4, heartbeat=2, grace=10)
    procs = [start_worker(pg_url, "--worker-index", str(i)) for i in range(2)]
    wait_until(lambda: sum(t.state.name == "RUNNING" for t in trials(pg_url)) == 2, 150, "two running trials",
               procs)
    stop = sweeper("stop", "s", "--storage", pg_url)
    assert stop.returncode == 0 and "stopped" in stop.stderr, stop.stderr
    outs = finish(procs, timeout=120)
    assert all("is stopped (sweeper stop)" in out for out in outs)
    states = [t.state.name for t in trials(pg_url)]
    assert "RUNNING" not in states and 2 <= states.count("COMPLETE") < 30  # each finished what it held

    late = start_worker(pg_url)  # a worker started while stopped runs nothing
    assert "is stopped" in finish([late])[0] and len(trials(pg_url)) == len(states)
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(n_trials=30, epochs=4, batch_size=4, heartbeat=2, grace=10))
    refused = sweeper("run", spec, "--storage", pg_url)
    assert refused.returncode == 2 and "sweeper resume s" in refused.stderr.strip().splitlines()[-1]

    resumed = sweeper("resume", "s", "--storage", pg_url)
    assert resumed.returncode == 0 and "resumed" in resumed.stderr
    again = start_worker(pg_url, "--n-trials", "1")
    finish([again])
    assert len(trials(pg_url)) == len(states) + 1


SECRET = "s3cretPW42"


@pytest.mark.parametrize("command", [
    ["status", "s"], ["stop", "s"], ["worker", "s"], ["studies"], ["results", "s"],
])
def test_a_password_never_appears_in_a_failing_commands_output(command, pg_available):
    for url in (f"postgresql://postgres:{SECRET}@127.0.0.1:1/nowhere",  # no server there
                f"postgresql://postgres:{SECRET}@127.0.0.1:5432/no_such_db_{os.getpid()}",  # no database
                f"postgresql://postgres@127.0.0.1:1/nowhere?password={SECRET}"):  # given as a parameter
        done = sweeper(*command, "--storage", url, timeout=60)
        assert done.returncode == 2, (command, done.stderr)
        assert SECRET not in done.stdout + done.stderr
        assert "***" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_device_cuda_without_a_gpu_is_one_line_exit_2(sqlite_url):
    import importlib.util

    try:
        has_gpu = importlib.util.find_spec("jax_cuda12_plugin") is not None and bool(
            subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0)
    except OSError:
        has_gpu = False
    if has_gpu:
        pytest.skip("this machine has a CUDA GPU: --device cuda works here")
    create(sqlite_url, n_trials=1)
    done = subprocess.run([sys.executable, "-m", "workers", "worker", "s", "--storage", sqlite_url, "--device",
                           "cuda"], capture_output=True, text=True, env=env(), timeout=120)
    assert done.returncode == 2 and re.match(r"error: --device cuda: .*--device cpu$", done.stderr.strip())
    assert len(done.stderr.strip().splitlines()) == 1
