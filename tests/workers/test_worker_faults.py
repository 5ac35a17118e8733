"""Slow faults under a real worker: a database that stays away, a full disk, a worker stopped (SIGSTOP)
for longer than the grace and woken again. Real processes, a real PostgreSQL database refusing
connections, a real full tmpfs.

After each fault: nothing reported complete is lost, no epoch row is written twice or into a trial
another worker took, nothing is left RUNNING once a worker has passed by, no process is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import replace

import optuna
import pytest
import sqlalchemy as sa

from sweeper import analysis
from tests.clitools import alive
from tests.conftest import small_tmpfs
from tests.workers.test_worker import create, epoch_rows, wait_for_epoch, worker

pytestmark = pytest.mark.slow

EPOCHS = 40  # about 0.3 s each (digits, batch 1): a trial outlives the fault
SHORT = 10  # where only a stopped (SIGSTOP) worker must outlive its epoch: no outage to outlast


def _admin(url: str, *statements: str) -> None:
    """Run statements about the test database `url` from the server's maintenance database."""
    name = url.rsplit("/", 1)[1]
    engine = sa.create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(sa.text(statement.format(name=name)))
    finally:
        engine.dispose()


def refuse(url: str) -> None:
    """The test database refuses new connections and loses the ones it had (the server stays up)."""
    _admin(url, 'alter database "{name}" allow_connections false',
           "select pg_terminate_backend(pid) from pg_stat_activity"
           " where datname = '{name}' and pid <> pg_backend_pid()")


def allow(url: str) -> None:
    _admin(url, 'alter database "{name}" allow_connections true')


def check_after_the_fault(url: str, n_complete: int, epochs: int = EPOCHS) -> None:
    """Every COMPLETE trial has its `epochs` epoch rows exactly once; nothing RUNNING; every FAIL retried."""
    trials = optuna.load_study(study_name="w", storage=url).trials
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == n_complete and "RUNNING" not in states, states
    rows = epoch_rows(url)
    assert rows.duplicated(["trial", "epoch"]).sum() == 0
    for t in trials:
        if t.state.name == "COMPLETE":
            assert rows[rows["trial"] == t.number]["epoch"].tolist() == list(range(1, epochs + 1))
    frame = analysis.open("w", storage=url).trials()
    assert frame[frame["state"] == "FAIL"]["reason"].str.contains("retried as trial").all(), frame["reason"]


def _error_lines(out: str) -> list[str]:
    assert "Traceback" not in out, out[-3000:]
    return [line for line in out.splitlines() if "error:" in line]


def through_an_outage(url: str, patience: str, signals: int = 0) -> tuple[int, str, float]:
    """A worker mid-trial whose database starts refusing connections (then `signals` SIGTERMs, 0.5 s
    apart): its exit code, its output, and the seconds from the outage (or the last signal) to its exit.
    The database accepts connections again afterwards."""
    create(url, epochs=EPOCHS, batch_size=1, extra="n_trials = 1")
    proc = worker(url, wait=False, env={"SWEEPER_DB_PATIENCE": patience})
    try:
        wait_for_epoch(url, proc)
        refuse(url)
        if signals:
            time.sleep(2)  # the worker is retrying now
        for _ in range(signals):
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
        begun = time.monotonic()
        out, _ = proc.communicate(timeout=90)
        return proc.returncode, out, time.monotonic() - begun
    finally:
        proc.kill()
        allow(url)


def test_a_database_refusing_connections_for_longer_than_the_patience_stops_the_worker(pg_url):
    """It retried each queued epoch write for the whole patience (hours for a long trial), its heartbeat
    thread died with a traceback and the trial stayed RUNNING."""
    code, out, took = through_an_outage(pg_url, "4")
    assert code == 75, out[-3000:]
    assert took < 4 + 15, f"{took:.0f} s after the database went away"
    errors = _error_lines(out)
    assert len(errors) == 1 and "the database failed" in errors[0] and "accepting connections" in errors[0], errors
    assert "trial 0 stays RUNNING until a worker finds it stale" in errors[0]
    rescue = worker(pg_url)  # the database is back: trial 0 is stale, failed and retried
    assert rescue.returncode == 0, rescue.stderr[-3000:]
    check_after_the_fault(pg_url, 1)


def test_a_second_signal_stops_a_worker_that_waits_for_its_database(pg_url):
    """With the database away, the signal handlers had been restored: SIGTERM killed the worker."""
    code, out, took = through_an_outage(pg_url, "300", signals=2)
    assert code in (75, 130), (code, out[-3000:])
    assert took < 15, f"{took:.0f} s after the second SIGTERM"
    assert len(_error_lines(out)) <= 1
    assert worker(pg_url).returncode == 0
    check_after_the_fault(pg_url, 1)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs."""
    with small_tmpfs(tmp_path / "disk", "4m") as mnt:
        yield mnt


def test_a_full_disk_under_the_sqlite_file_stops_the_worker(small_disk):
    url = f"sqlite:///{small_disk / 'w.db'}"
    create(url, epochs=EPOCHS, batch_size=1, extra="n_trials = 1")
    proc = worker(url, wait=False)
    try:
        wait_for_epoch(url, proc)
        subprocess.run(["dd", "if=/dev/zero", f"of={small_disk / 'filler'}", "bs=4k"], capture_output=True)
        begun = time.monotonic()
        out, _ = proc.communicate(timeout=90)
        took = time.monotonic() - begun
    finally:
        proc.kill()
    assert proc.returncode == 75, out[-3000:]
    assert took < 15, f"{took:.0f} s after the disk filled"
    errors = _error_lines(out)
    assert len(errors) == 1 and "full" in errors[0], errors
    (small_disk / "filler").unlink()
    rescue = worker(url)
    assert rescue.returncode == 0, rescue.stderr[-3000:]
    check_after_the_fault(url, 1)


def test_a_worker_woken_after_its_trial_was_taken_drops_it_and_goes_on(pg_url):
    """SIGSTOP past the grace, then SIGCONT: it trained on, wrote its epochs into the FAIL trial that
    another worker had retried, then died with 'Cannot tell a FAIL trial'."""
    create(pg_url, epochs=SHORT, batch_size=1, extra="n_trials = 2")
    sleeper = worker(pg_url, wait=False)
    try:
        wait_for_epoch(pg_url, sleeper)
        sleeper.send_signal(signal.SIGSTOP)
        rescuer = worker(pg_url, wait=False)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the rescuer fails trial 0 as stale and retries it
            study = optuna.load_study(study_name="w", storage=pg_url)
            if study.trials[0].state.name == "FAIL" and (epoch_rows(pg_url)["trial"] == 1).any():
                break
            time.sleep(0.2)
        else:
            raise AssertionError("trial 0 was not failed as stale in time")
        rows_of_0 = (epoch_rows(pg_url)["trial"] == 0).sum()
        sleeper.send_signal(signal.SIGCONT)
        out, _ = sleeper.communicate(timeout=180)
        rest, _ = rescuer.communicate(timeout=180)
    finally:
        for proc in (sleeper, rescuer):
            proc.send_signal(signal.SIGCONT)
            proc.kill()
    assert sleeper.returncode == 0 and rescuer.returncode == 0, (out[-3000:], rest[-3000:])
    assert "Traceback" not in out and "Cannot tell" not in out
    assert sum("was failed by another worker" in line or "finished by another worker" in line
               for line in out.splitlines()) == 1, out[-3000:]
    assert (epoch_rows(pg_url)["trial"] == 0).sum() == rows_of_0  # nothing written into the taken trial
    check_after_the_fault(pg_url, 2, SHORT)


def test_sweeper_run_ends_when_the_study_is_done_and_names_the_worker_it_left(pg_url, tmp_path):
    """A worker stopped for good (SIGSTOP): the run waited on it for ever although the study was done."""
    import sys

    from tests.workers.test_worker import SPEC

    spec = tmp_path / "w.toml"
    spec.write_text(SPEC.format(epochs=SHORT, batch_size=1, extra="n_trials = 2", dataset="digits",
                                params='lr = {float = [0.01, 0.3], log = true}'))
    run = subprocess.Popen([sys.executable, "-m", "sweeper", "run", str(spec), "--storage", pg_url, "--workers", "2",
                            "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pid = None
    try:
        wait_for_epoch(pg_url, run)
        pid = int(optuna.load_study(study_name="w", storage=pg_url).trials[0].user_attrs["worker"].rsplit(":", 1)[1])
        os.kill(pid, signal.SIGSTOP)
        out, _ = run.communicate(timeout=240)
    finally:
        run.kill()
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert run.returncode == 0, out[-3000:]
    assert f"(pid {pid}) had not exited" in out and "killed it" in out, out[-3000:]
    assert not alive(pid)
    check_after_the_fault(pg_url, 2, SHORT)


def test_a_trial_killed_at_epoch_7_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_run(pg_url, tmp_path):
    """A retried trial started again at epoch 1; now it goes on from its predecessor's last checkpoint."""
    import json
    import sys

    create(pg_url, epochs=10, batch_size=1, extra="n_trials = 1\ncheckpoint_every = 3", params="dropout = 0.2")
    env = {"SWEEPER_ARTIFACTS": str(tmp_path / "artifacts")}
    first = worker(pg_url, wait=False, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (epoch_rows(pg_url)["epoch"] >= 7).any():
        assert first.poll() is None, first.stdout.read()
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    killed_at = int(epoch_rows(pg_url)["epoch"].max())
    assert 7 <= killed_at < 10, "the trial ended before it was killed: give it slower epochs"

    second = worker(pg_url, env=env)  # waits for the grace, fails trial 0 as stale, runs its retry
    assert second.returncode == 0, second.stderr
    saved = killed_at - killed_at % 3  # checkpoint_every = 3: 6, or 9 when a loaded machine polled late
    assert f"trial 1 resumes trial 0 from its checkpoint at epoch {saved}" in second.stderr, second.stderr
    assert "trial 1 COMPLETE" in second.stderr and f"from epoch {saved}" in second.stderr
    trials = optuna.load_study(study_name="w", storage=pg_url).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    rows = epoch_rows(pg_url)
    mine, theirs = rows[rows["trial"] == 1], rows[rows["trial"] == 0]
    assert mine["epoch"].tolist() == list(range(1, 11))  # no gap, no duplicate
    assert theirs["epoch"].tolist() == list(range(1, killed_at + 1))
    assert mine[mine["epoch"] <= saved].drop(columns="trial").reset_index(drop=True).equals(
        theirs[theirs["epoch"] <= saved].drop(columns="trial").reset_index(drop=True))  # carried over as they were
    assert list((tmp_path / "artifacts" / "checkpoints").iterdir()) == []  # removed once the trial ended

    whole = subprocess.run([sys.executable, "-m", "workers", "train", "--dataset", "digits", "--epochs", "10",
                            "--threads", "1", "--json", *[f"--param={k}={v}" for k, v in {
                                "width": 32, "schedule": "constant", "batch_size": 1, "dropout": 0.2}.items()]],
                           capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    result = json.loads(whole.stdout.splitlines()[-1])
    assert (trials[1].value, trials[1].user_attrs["test_error"]) == (result["valid_error"], result["test_error"])


@pytest.mark.parametrize("damage", ["unreadable", "ahead of its rows"])
def test_a_retry_whose_checkpoint_cannot_be_used_starts_at_epoch_1_and_removes_it(damage, sqlite_url, tmp_path):
    """A damaged checkpoint, or one whose epoch rows are not all there, costs the epochs it held, not
    the trial or the worker."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    from storage import studies
    from storage.contract.errors import optuna_experimental

    handle = create(sqlite_url, epochs=4, extra="n_trials = 1\ncheckpoint_every = 2", params="dropout = 0.1")
    trial = handle.study.ask()
    handle.study.tell(trial, state=optuna.trial.TrialState.FAIL)
    with optuna_experimental():
        RetryHeartbeatStaleTrialCallback(max_retry=3)(handle.study, handle.study.trials[0])
    checkpoints = tmp_path / "sweeper.db-artifacts" / "checkpoints"  # beside the SQLite file of sqlite_url
    checkpoints.mkdir(parents=True)
    path = checkpoints / f"{studies.uid(handle.storage, handle.study_id)}-0.npz"
    if damage == "unreadable":
        path.write_bytes(b"not a checkpoint")
    else:  # a real state at epoch 2 of these parameters, but trial 0 wrote no epoch row
        from workers import checkpoints as saved
        from workers import runtime
        from workers.data import load
        from workers.train import train

        train("mlp", dict(width=32, schedule="constant", batch_size=1, dropout=0.1), load("digits"), epochs=4,
              every=2, on_checkpoint=lambda state: saved.save(replace(state, mode=runtime.compile_mode()),
                                                              path))
    done = worker(sqlite_url)
    assert done.returncode == 0, done.stderr
    why = "cannot be read" if damage == "unreadable" else "is ahead of its epoch rows"
    assert "trial 1: checkpoint" in done.stderr and why in done.stderr, done.stderr
    assert "trial 1 starts at epoch 1: no checkpoint of its predecessors can be used" in done.stderr
    rows = epoch_rows(sqlite_url)
    assert rows[rows["trial"] == 1]["epoch"].tolist() == [1, 2, 3, 4]
    assert list(checkpoints.iterdir()) == []
