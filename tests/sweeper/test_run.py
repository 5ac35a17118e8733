"""`sweeper run` end to end: the shipped quickstart on SQLite and on PostgreSQL with two workers."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from storage.contract.errors import BadInput
from sweeper import manager, tables
from tests.clitools import processes_using, read_terminal
from tests.conftest import ROOT
from tests.sweeper.conftest import tiny_spec

pytestmark = pytest.mark.slow  # real processes or whole runs: not in the fast lane (-m 'not slow')

QUICKSTART = ROOT / "studies" / "quickstart.toml"


def _check_finished_study(results: pd.DataFrame, rows: pd.DataFrame, n_trials: int, epochs: int) -> None:
    """n_trials finished trials, each once; epoch rows exactly once, up to the epoch each trial reached."""
    assert len(results) == n_trials
    assert results["trial"].is_unique and sorted(results["trial"]) == list(range(n_trials))
    assert set(results["state"]) <= {"COMPLETE", "PRUNED", "FAIL"}
    assert not rows.duplicated(["trial", "epoch"]).any()
    reached = rows.groupby("trial")["epoch"].agg(["min", "max", "count"])
    for trial in results.itertuples():
        if trial.state == "FAIL":
            continue
        assert reached.loc[trial.trial].tolist() == [1, trial.epochs_run, trial.epochs_run], trial
        if trial.state == "COMPLETE":
            assert trial.epochs_run == epochs
        else:
            assert trial.reason.startswith(f"pruned at epoch {trial.epochs_run}")


def test_quickstart_on_sqlite_finishes_in_time(sweeper, tmp_path):
    started = time.monotonic()
    run = sweeper("run", QUICKSTART, "--workers", "2", timeout=300)
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    assert elapsed < 180, f"quickstart took {elapsed:.0f} s"
    assert "best: trial" in run.stdout and "10/10 done" in run.stderr
    assert (tmp_path / "sweeper.db").exists()  # the default storage, in the current folder

    csv = sweeper("results", "quickstart", "--format", "csv")
    assert csv.returncode == 0, csv.stderr
    results = pd.read_csv(io.StringIO(csv.stdout))
    rows = pd.read_csv(io.StringIO(sweeper("epochs", "quickstart", "--format", "csv").stdout))
    _check_finished_study(results, rows, n_trials=10, epochs=4)

    again = sweeper("run", QUICKSTART)  # the study is done: nothing to run, same summary
    assert again.returncode == 0 and "already done" in again.stderr


def test_quickstart_on_postgres_with_two_workers(sweeper, pg_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}
    run = subprocess.Popen([sys.executable, "-m", "sweeper", "run", str(QUICKSTART), "--workers", "2",
                            "--storage", pg_url.replace("postgresql+psycopg://", "postgresql://")],
                           cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen_running, handle = "", None
    while run.poll() is None:  # watch it as `sweeper status` does, in this process: a status command
        try:  # takes ~1.3 s to start, and the whole run had finished between two of them on CI
            handle = handle or manager.open_study("quickstart", pg_url)
        except BadInput:  # not created yet
            time.sleep(0.05)
            continue
        status = tables.status(handle)
        if "running:" in status:
            seen_running = status
        time.sleep(0.05)
    out, err = run.communicate()
    if handle is not None:
        handle.storage.engine.dispose()
    assert run.returncode == 0, err
    assert "/4" in seen_running.split("running:")[1]  # the current epoch of a running trial, e.g. 2/4

    results = pd.read_json(io.StringIO(sweeper("results", "quickstart", "--storage", pg_url,
                                               "--format", "json").stdout))
    epochs_file = tmp_path / "epochs.parquet"
    assert sweeper("epochs", "quickstart", "--storage", pg_url, "--format", "parquet",
                   "--out", epochs_file).returncode == 0
    _check_finished_study(results, pd.read_parquet(epochs_file), n_trials=10, epochs=4)
    assert len(set(results["worker"])) == 2  # both workers ran trials

    engine = sa.create_engine(pg_url)  # nothing beyond the budget was ever started
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select count(*) from trials")).scalar_one() == 10
    finally:
        engine.dispose()

    status = sweeper("status", "quickstart", "--storage", pg_url)
    assert "trials: 10 of 10 done" in status.stdout and "best: trial" in status.stdout
    studies = sweeper("studies", "--storage", pg_url)
    assert "quickstart" in studies.stdout and "10" in studies.stdout


def test_a_refused_run_ends_the_workers_it_started_and_their_logs(sweeper, write_spec, tmp_path):
    """`sweeper run` starts its workers while it creates the study: a refusal ends them, leaving nothing."""
    assert sweeper("create", write_spec(tiny_spec())).returncode == 0
    changed = write_spec(tiny_spec(epochs=3), name="changed.toml")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    run = sweeper("run", changed, "--workers", "2", env={"TMPDIR": str(scratch)})
    assert run.returncode == 2
    assert run.stderr.startswith("error: study 'tiny' already exists") and run.stderr.count("\n") == 1
    assert not list(scratch.glob("sweeper-tiny-*"))  # the workers' temporary log folder
    assert not processes_using(tmp_path / "sweeper.db")
    results = pd.read_csv(io.StringIO(sweeper("results", "tiny", "--format", "csv").stdout))
    assert results.empty  # no worker touched the study


def test_a_failing_worker_fails_the_run(sweeper, write_spec, tmp_path):
    empty = tmp_path / "idx"
    empty.mkdir()
    spec = write_spec(f"""
        [study]
        name = "broken"
        dataset = "idx:{empty}"
        n_trials = 2
        epochs = 1
    """)
    run = sweeper("run", spec, "--workers", "1")
    assert run.returncode == 2
    assert "worker 0 exited with code 2" in run.stderr
    assert "error:" in run.stderr  # the worker's own one-line reason, from its log


# 8 trials of 12 epochs at batch 1: still running a few seconds after the start
SLOW = """
[study]
name = "slow"
n_trials = 8
epochs = 12
[params]
width = 32
batch_size = 1
schedule = "constant"
lr = {float = [0.001, 0.05], log = true}
"""


def test_ctrl_c_lets_running_trials_finish_then_stops(tmp_path, write_spec):
    import signal

    spec = write_spec(SLOW)
    env = {k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}
    run = subprocess.Popen([sys.executable, "-m", "sweeper", "run", str(spec), "--workers", "2"], cwd=tmp_path,
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    engine = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until a trial is training (it has an epoch row)
        time.sleep(0.2)
        if (tmp_path / "sweeper.db").exists():
            engine = engine or sa.create_engine(f"sqlite:///{tmp_path / 'sweeper.db'}")
            try:
                with engine.connect() as conn:
                    if conn.execute(sa.text("select count(*) from sweeper_epochs")).scalar_one():
                        break
            except sa.exc.OperationalError:
                pass
    run.send_signal(signal.SIGINT)  # as Ctrl-C would: only the run gets it, and tells its workers
    out, err = run.communicate(timeout=120)
    engine.dispose()
    assert run.returncode == 130, err
    assert "stopping: each worker finishes its current trial" in err
    results = pd.read_csv(io.StringIO(subprocess.run(
        [sys.executable, "-m", "sweeper", "results", "slow", "--format", "csv"], cwd=tmp_path, env=env,
        capture_output=True, text=True).stdout))
    assert set(results["state"]) == {"COMPLETE"} and 1 <= len(results) < 8
    assert (results["epochs_run"] == 12).all()  # the trials it let finish ran all their epochs
    assert f"not finished: {len(results)} of 8 trials done" in err


def test_on_a_terminal_the_run_draws_a_bar_with_the_time_left(write_spec, tmp_path):
    """A log gets progress lines (the tests above); a terminal gets one bar, redrawn in place."""
    import fcntl
    import pty
    import struct
    import termios

    # about a second a trial, so that polls see them running (60 epochs were, until warm caches made a
    # trial of this tiny network 0.2 s and the whole run could fall between two polls)
    spec = write_spec(tiny_spec(n_trials=3, epochs=400))
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))  # a 200-column terminal
    env = {k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}
    proc = subprocess.Popen([sys.executable, "-m", "sweeper", "run", str(spec), "--workers", "1"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=follower, env=env)
    os.close(follower)
    chunks = [read_terminal(leader)]
    assert proc.wait(timeout=300) == 0
    os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    frames = [f for f in screen.split("\r") if f.startswith("tiny: ")]
    assert frames, screen[-2000:]
    assert "| 3/3 [" in frames[-1] and "best: trial" in frames[-1], frames[-1]
    assert any(re.search(r"<\d\d:\d\d, .*running: #\d+ \d+/400", f) for f in frames), frames  # time left, epochs
    assert " s] " not in screen  # no log lines on a terminal


def test_a_run_whose_workers_cannot_get_the_data_leaves_no_study_and_says_the_way_out(sweeper, write_spec,
                                                                                      tmp_path, mnist_dir):
    """No network: the workers cannot download MNIST. The message names the way out, the study `sweeper run`
    created is removed again, and the corrected spec (the same name, the files on disk) then runs."""
    import socket

    with socket.socket() as s:  # a port on 127.0.0.1 that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"SWEEPER_DATA_DIR": str(tmp_path / "empty"), "SWEEPER_MNIST_MIRROR": f"http://127.0.0.1:{port}/"}
    spec = write_spec(tiny_spec().replace('dataset = "digits"', 'dataset = "mnist"'))
    failed = sweeper("run", spec, "--workers", "2", env=env)
    assert failed.returncode != 0
    assert 'dataset = "idx:DIR"' in failed.stderr and "SWEEPER_DATA_DIR" in failed.stderr, failed.stderr
    assert "study 'tiny' removed again" in failed.stderr
    fixed = write_spec(tiny_spec().replace('dataset = "digits"', f'dataset = "idx:{mnist_dir}"'), "fixed.toml")
    done = sweeper("run", fixed, "--workers", "2", env=env)
    assert done.returncode == 0, done.stderr
