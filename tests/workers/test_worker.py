"""The worker as users run it: `python -m workers worker NAME` in real processes on a real SQLite file.

Trials train for real (digits, tiny networks); signals are real; a killed worker's trial is found
stale through Optuna's heartbeat and retried by the next worker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib

import optuna
import pandas as pd
import pytest
import sqlalchemy as sa

from storage import epochs
from sweeper import analysis, manager, toml_spec

pytestmark = pytest.mark.slow  # real processes or whole runs: not in the fast lane (-m 'not slow')

SPEC = """
[study]
name = "w"
dataset = "{dataset}"
epochs = {epochs}
heartbeat = 1
grace = 2
{extra}

[params]
width = 32
schedule = "constant"
batch_size = {batch_size}
{params}
"""


def create(url: str, *, epochs: int = 2, batch_size: int = 64, extra: str = "n_trials = 3",
           params: str = 'lr = {float = [0.01, 0.3], log = true}', dataset: str = "digits"):
    text = SPEC.format(epochs=epochs, batch_size=batch_size, extra=extra, params=params, dataset=dataset)
    handle, _ = manager.create(toml_spec.parse(tomllib.loads(text)), url)
    return handle


def worker(url: str, *args: str, wait: bool = True, env: dict | None = None):
    argv = [sys.executable, "-m", "workers", "worker", "w", "--storage", url, "--threads", "1", *args]
    env = None if env is None else {**os.environ, **env}
    if wait:
        return subprocess.run(argv, capture_output=True, text=True, timeout=240, env=env)
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def epoch_rows(url: str):
    engine = sa.create_engine(url)
    try:
        return epochs.read(engine, 1)
    finally:
        engine.dispose()


def wait_for_epoch(url: str, proc, trial: int = 0, timeout: float = 120) -> None:
    """Block until `trial` has written an epoch row (it is mid-training then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            if (epoch_rows(url)["trial"] == trial).any():
                return
        except sa.exc.OperationalError:
            pass
        time.sleep(0.1)
    raise AssertionError("no epoch row in time")


def test_a_diverged_trial_fails_with_its_reason_and_the_worker_goes_on(sqlite_url):
    create(sqlite_url, extra='sampler = "grid"', params="lr = {grid = [1e6, 0.1]}")
    done = worker(sqlite_url)
    assert done.returncode == 0, done.stderr
    frame = analysis.open("w", storage=sqlite_url).trials()
    assert frame["state"].tolist() == ["FAIL", "COMPLETE"]
    assert frame["lr"].tolist() == [1e6, 0.1]  # the grid's points, in order
    assert frame.loc[0, "reason"] == "diverged at epoch 1"
    rows = epoch_rows(sqlite_url)
    assert rows[["trial", "epoch"]].values.tolist() == [[1, 1], [1, 2]]
    assert rows["valid_error"].between(0, 1).all()
    assert "budget of 2 trials is spent" in done.stderr

    trial = optuna.load_study(study_name="w", storage=sqlite_url).trials[1]
    attrs, outcome = trial.user_attrs, trial.user_attrs["outcome"]
    assert 0 <= trial.value <= 1 and 0 <= attrs["test_error"] <= 1
    assert outcome["epochs_run"] == 2 and outcome["seconds"] > 0 and outcome["stopped_early"] is False
    assert attrs["worker"].split(":")[1].isdigit()
    assert set(attrs["report"]) >= {"0", "9", "accuracy", "macro avg"}
    if outcome["confident_n"]:
        assert 0 <= outcome["confident_precision"] <= 1
    else:  # no prediction above p = 0.5: no precision (NaN is stored as null)
        assert outcome["confident_precision"] is None
    failed = optuna.load_study(study_name="w", storage=sqlite_url).trials[0]
    assert failed.user_attrs["outcome"]["epochs_run"] == 0 and failed.user_attrs["fail_reason"]
    assert sorted(trial.intermediate_values) == [1, 2]


def test_own_n_trials_and_the_study_budget(sqlite_url):
    create(sqlite_url, extra="n_trials = 3")
    first = worker(sqlite_url, "--n-trials", "1")
    assert first.returncode == 0 and "ran the 1 trial(s) asked for" in first.stderr
    assert len(optuna.load_study(study_name="w", storage=sqlite_url).trials) == 1
    rest = worker(sqlite_url, "--n-trials", "10")
    assert rest.returncode == 0
    assert len(optuna.load_study(study_name="w", storage=sqlite_url).trials) == 3
    again = worker(sqlite_url)
    assert again.returncode == 0 and "spent: nothing to do" in again.stderr
    assert len(optuna.load_study(study_name="w", storage=sqlite_url).trials) == 3


def test_first_sigterm_finishes_the_trial_then_stops(sqlite_url):
    create(sqlite_url, epochs=12, batch_size=1, extra="n_trials = 3")
    proc = worker(sqlite_url, wait=False)
    wait_for_epoch(sqlite_url, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    trials = optuna.load_study(study_name="w", storage=sqlite_url).trials
    assert [t.state.name for t in trials] == ["COMPLETE"]
    assert len(epoch_rows(sqlite_url)) == 12
    assert "stopping after the current trial" in out


def test_second_sigterm_stops_now_and_queues_the_trial_again(sqlite_url):
    create(sqlite_url, epochs=20, batch_size=1, extra="n_trials = 1")
    proc = worker(sqlite_url, wait=False)
    wait_for_epoch(sqlite_url, proc)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    frame = analysis.open("w", storage=sqlite_url).trials()
    assert frame["state"].tolist() == ["FAIL", "WAITING"]
    assert frame.loc[0, "reason"].startswith("interrupted")
    assert frame.loc[1, "retry_of"] == 0 and frame.loc[1, "lr"] == frame.loc[0, "lr"]
    rest = worker(sqlite_url)  # the retry runs next; the interrupted trial does not count
    assert rest.returncode == 0, rest.stderr
    frame = analysis.open("w", storage=sqlite_url).trials()
    assert frame["state"].tolist() == ["FAIL", "COMPLETE"]
    assert pd.isna(frame.loc[1, "reason"])  # the retry inherited trial 0's attrs, not its reason
    assert frame.loc[0, "reason"] == "interrupted: its worker was stopped; retried as trial 1"


def test_a_killed_workers_trial_goes_stale_and_is_retried(sqlite_url):
    create(sqlite_url, epochs=15, batch_size=1, extra="n_trials = 1")
    doomed = worker(sqlite_url, wait=False)
    wait_for_epoch(sqlite_url, doomed)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    rescue = worker(sqlite_url)  # waits while trial 0 is RUNNING, fails it once stale, runs its retry
    assert rescue.returncode == 0, rescue.stderr
    frame = analysis.open("w", storage=sqlite_url).trials()
    assert frame["state"].tolist() == ["FAIL", "COMPLETE"]
    assert frame.loc[0, "reason"] == "no heartbeat for 2 s: its worker died or hung; retried as trial 1"
    assert frame.loc[1, "retry_of"] == 0 and frame.loc[1, "lr"] == frame.loc[0, "lr"]
    rows = epoch_rows(sqlite_url)
    assert rows[rows["trial"] == 1]["epoch"].tolist() == list(range(1, 16))
    assert rows.duplicated(["trial", "epoch"]).sum() == 0


def test_a_missing_data_set_fails_before_any_trial(tmp_path, sqlite_url):
    empty = tmp_path / "idx"
    empty.mkdir()
    create(sqlite_url, extra="n_trials = 2", dataset=f"idx:{empty}")
    done = worker(sqlite_url)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error:") and len(done.stderr.strip().splitlines()) == 1
    assert optuna.load_study(study_name="w", storage=sqlite_url).trials == []


@pytest.fixture(autouse=True)
def _no_env_storage(monkeypatch):
    monkeypatch.delenv("SWEEPER_STORAGE", raising=False)


def test_stdin_start_prepares_then_runs_on_the_start_line(sqlite_url):
    """How `sweeper run` starts a worker: the spec on stdin, preparation, then the line 'start'."""
    handle = create(sqlite_url, extra="n_trials = 1")
    line = json.dumps(handle.spec.to_attr())
    proc = subprocess.Popen([sys.executable, "-m", "workers", "worker", "w", "--storage", sqlite_url, "--threads", "1",
                             "--stdin-start"], stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdin.write(f"{line}\nstart\n")
    proc.stdin.flush()  # and kept open, as sweeper run keeps it while it lives
    log = proc.stderr.read()
    assert proc.wait(timeout=240) == 0, log
    proc.stdin.close()
    assert "network compiled" in log and log.index("prepared in") < log.index("trial 0 COMPLETE")
    assert [t.state.name for t in optuna.load_study(study_name="w", storage=sqlite_url).trials] == ["COMPLETE"]


@pytest.mark.parametrize("given", ["", "spec"])
def test_stdin_start_without_the_start_line_exits_0_and_touches_nothing(sqlite_url, given):
    """A run refused while its workers prepared: they read the end of stdin and leave the study as it was."""
    handle = create(sqlite_url)
    text = json.dumps(handle.spec.to_attr()) + "\n" if given else ""
    proc = subprocess.run([sys.executable, "-m", "workers", "worker", "w", "--storage", sqlite_url, "--threads", "1",
                           "--stdin-start"], input=text, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert ("prepared in" in proc.stderr) == bool(given)
    assert optuna.load_study(study_name="w", storage=sqlite_url).trials == []


def test_prepare_compiles_only_a_network_that_no_searched_parameter_shapes(sqlite_url, monkeypatch):
    from workers import compiled
    from workers.worker import prepare

    monkeypatch.setattr(compiled, "_cache", {})  # networks other tests compiled in this process

    searched = create(sqlite_url, params='activation = {choice = ["relu", "tanh"]}').spec  # shapes the graph
    before = compiled.compiles
    prepare(searched)
    assert compiled.compiles == before
    prepare(create(sqlite_url.replace("sweeper.db", "other.db")).spec)  # only lr searched
    assert compiled.compiles == before + 1


def test_a_restarted_worker_proposes_no_point_already_tried(sqlite_url):
    """Each start of `sweeper run` numbers its workers 0, 1, ...: a second start of worker 0 must not
    replay the first one's seeded stream (it did: its trials repeated the first start's points)."""
    create(sqlite_url, epochs=1, extra='n_trials = 6\nsampler = {name = "random", seed = 7}')
    for _ in range(2):
        done = worker(sqlite_url, "--worker-index", "0", "--n-trials", "3")
        assert done.returncode == 0, done.stderr
    lrs = [t.params["lr"] for t in optuna.load_study(study_name="w", storage=sqlite_url).trials]
    assert len(lrs) == 6 and len(set(lrs)) == 6, lrs


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_workers_stop_when_their_sweeper_run_is_killed(tmp_path):
    """kill -9 of `sweeper run`: its worker finishes the trial it is in and exits (it went on with the
    whole budget, alone in its own session, out of Ctrl-C's reach)."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    spec = tmp_path / "w.toml"
    spec.write_text(SPEC.format(epochs=3, batch_size=32, extra="n_trials = 200", dataset="digits",
                                params='lr = {float = [0.01, 0.3], log = true}'))
    run = subprocess.Popen([sys.executable, "-m", "sweeper", "run", str(spec), "--storage", url, "--workers", "1",
                            "--threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_epoch(url, run)
    study = optuna.load_study(study_name="w", storage=url)
    pid = int(study.trials[0].user_attrs["worker"].rsplit(":", 1)[1])
    run.kill()
    run.wait()
    deadline = time.monotonic() + 60
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = _alive(pid)
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "the worker went on after its sweeper run died"
    trials = optuna.load_study(study_name="w", storage=url).trials
    assert len(trials) < 200 and all(t.state.is_finished() for t in trials)



def test_a_worker_stops_when_its_sqlite_file_is_deleted(tmp_path):
    """The file deleted under a running worker: it stops before its next trial and says so (it wrote
    the rest of the budget into the unlinked file, reported COMPLETE and exited 0)."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    create(url, epochs=3, batch_size=32, extra="n_trials = 200")
    proc = worker(url, wait=False)
    wait_for_epoch(url, proc)
    for path in tmp_path.glob("w.db*"):
        if path.is_file():  # the database and its -wal, -shm (w.db-artifacts is a folder of kept weights)
            path.unlink()
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 2, out[-2000:]
    assert "w.db was deleted or replaced while this worker ran" in out.splitlines()[-1]
