"""`sweeper run` at its edges (issue 20): a bound on --workers, a study checked before any worker starts,
signals while the workers start, planted log links, a study or database gone before the summary, the
progress bar on a narrow terminal, ties and pruned trials in the summary, an extended budget, the
workers' help, and the SQLite warning."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.clitools import processes_using, read_terminal
from tests.sweeper.conftest import tiny_spec
from tests.sweeper.test_run import SLOW

pytestmark = pytest.mark.slow  # the real CLI in processes, whole runs: not in the fast lane (-m 'not slow')



def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}
    return {**env, **extra}


def _finished(spec: Path, url: str, values: list[float | None], order: list[int] | None = None):
    """Study `spec` at `url` made here with one trial per value, told in `order` (default: by number),
    without training: a value is COMPLETE, None is PRUNED. Its budget is then spent."""
    from optuna.trial import TrialState

    from sweeper import manager, toml_spec

    handle, _ = manager.create(toml_spec.read(str(spec)), url)
    trials = [handle.study.ask() for _ in values]
    for i in order or range(len(values)):
        if values[i] is None:
            handle.study.tell(trials[i], state=TrialState.PRUNED)
        else:
            handle.study.tell(trials[i], values[i])
    handle.storage.engine.dispose()
    return handle


def _wait_for(condition, seconds: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.01)


def _training(url: str) -> bool:
    """Whether a trial of the run has an epoch row (a worker is training)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(sa.text("select count(*) from sweeper_epochs")).scalar_one())
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def _own(stderr: str) -> str:
    """The run's own lines: without the ends of failed workers' logs that it prints last."""
    return re.split(r"^worker \d+ exited with code", stderr, maxsplit=1, flags=re.M)[0]


def _pty_run(args: list, cwd: Path, columns: int) -> tuple[int, list[str], str]:
    """`sweeper ARGS` with stderr on a terminal `columns` wide: (exit code, the bar's frames, stdout)."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "sweeper", *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=follower, env=_env(), text=True)
    os.close(follower)
    chunks = [read_terminal(leader)]
    out = proc.stdout.read()
    code = proc.wait(timeout=300)
    os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    return code, [f.rstrip() for f in re.split(r"[\r\n]", screen) if f.startswith("tiny: ")], out


# 1. --workers is bounded; the study is read before any worker starts; signals while they start


def test_workers_beyond_the_bound_are_refused_in_one_line_before_any_starts(sweeper, write_spec, tmp_path):
    spec = write_spec(tiny_spec(n_trials=2))
    _finished(spec, f"sqlite:///{tmp_path / 'sweeper.db'}", [0.5, 0.4])  # were any started, they would be cut short
    too_many = max(4 * len(os.sched_getaffinity(0)), 8) + 1
    run = sweeper("run", spec, "--workers", too_many, "--logs", tmp_path / "logs")
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith(f"error: --workers {too_many} is more than {too_many - 1}, ")
    assert "sweeper worker NAME" in run.stderr and run.stderr.count("\n") == 1
    assert not list((tmp_path / "logs").glob("worker-*.log"))  # no worker started


def test_a_finished_study_says_so_at_once_and_starts_no_worker(sweeper, write_spec, tmp_path):
    spec = write_spec(tiny_spec(n_trials=2))
    _finished(spec, f"sqlite:///{tmp_path / 'sweeper.db'}", [0.5, 0.4])
    run = sweeper("run", spec, "--workers", "2", "--logs", tmp_path / "logs")
    assert run.returncode == 0, run.stderr
    assert "study 'tiny' is already done: 2 of 2 trials" in run.stderr
    assert "worker(s)" not in run.stderr
    assert not list((tmp_path / "logs").glob("worker-*.log"))


def test_a_stopped_study_is_refused_before_any_worker_starts(sweeper, write_spec, tmp_path):
    spec = write_spec(tiny_spec(n_trials=4))
    _finished(spec, f"sqlite:///{tmp_path / 'sweeper.db'}", [0.5])
    assert sweeper("stop", "tiny").returncode == 0
    run = sweeper("run", spec, "--workers", "2", "--logs", tmp_path / "logs")
    assert run.returncode == 2
    assert run.stderr.startswith("error: study 'tiny' is stopped") and run.stderr.count("\n") == 1
    assert not list((tmp_path / "logs").glob("worker-*.log"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_workers_start_ends_them_and_exits_130(sig, write_spec, tmp_path):
    """Items 1 and 3: SIGTERM (or Ctrl-C) in the run's first second, while it starts its workers and
    creates the study: 130 as later, and no worker left preparing."""
    spec = write_spec(tiny_spec())
    logs = tmp_path / "logs"
    n = 8  # allowed anywhere (4 per core, at least 8): starting them takes a while
    run = subprocess.Popen([sys.executable, "-m", "sweeper", "run", str(spec), "--workers", str(n), "--logs",
                            str(logs)], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        _wait_for(lambda: (logs / "worker-0.log").exists(), what="the first worker's log")
        run.send_signal(sig)
        out, err = run.communicate(timeout=120)
    finally:
        run.kill()
    left = processes_using(tmp_path / "sweeper.db")
    assert run.returncode == 130, err
    assert "Traceback" not in err
    assert not left, f"workers left behind: {left}"


# 2. --logs never follows a planted link


def test_a_planted_log_link_is_refused_and_its_target_left_alone(sweeper, write_spec, tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("precious\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "worker-0.log").symlink_to(target)
    run = sweeper("run", write_spec(tiny_spec(n_trials=2, epochs=1)), "--workers", "1", "--logs", logs)
    assert target.read_text() == "precious\n"
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith(f"error: --logs {logs}: worker-0.log is a symbolic link")
    assert run.stderr.count("\n") == 1
    assert (logs / "worker-0.log").is_symlink()


# 4. the closing summary when the study or the database went away


def test_a_study_deleted_while_it_runs_ends_with_one_line_not_a_traceback(sweeper, write_spec, tmp_path):
    spec = write_spec(SLOW)
    run = subprocess.Popen([sys.executable, "-m", "sweeper", "run", str(spec), "--workers", "1"], cwd=tmp_path,
                           env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _training(f"sqlite:///{tmp_path / 'sweeper.db'}"), what="a trial's first epoch")
        deleted = sweeper("delete", "slow", "--yes")
        assert deleted.returncode == 0, deleted.stderr
        out, err = run.communicate(timeout=180)
    finally:
        run.kill()
    assert run.returncode != 0, err
    assert "no summary: study 'slow' is no longer in sqlite:///" in err, err
    assert "Traceback" not in _own(err), err


def test_a_database_dropped_while_it_runs_ends_with_one_line_not_a_traceback(write_spec, tmp_path, pg_url):
    from tests.conftest import _pg_admin_engine

    spec = write_spec(SLOW)
    run = subprocess.Popen([sys.executable, "-m", "sweeper", "run", str(spec), "--workers", "1", "--storage", pg_url],
                           cwd=tmp_path, env=_env(SWEEPER_DB_PATIENCE="2"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    admin = _pg_admin_engine()
    try:
        _wait_for(lambda: _training(pg_url), what="a trial's first epoch")
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database "{pg_url.rsplit("/", 1)[1]}" with (force)'))
        out, err = run.communicate(timeout=180)
    finally:
        admin.dispose()
        run.kill()
    assert run.returncode != 0, err
    assert "no summary: the database does not answer" in err, err
    assert "Traceback" not in _own(err), err


# 5. the progress bar on a narrow terminal


@pytest.mark.parametrize("columns", [80, 120])
def test_the_bar_keeps_its_width_and_cuts_the_best_trial_at_a_boundary(columns, write_spec, tmp_path):
    code, frames, out = _pty_run(["run", write_spec(tiny_spec(n_trials=3, epochs=2)), "--workers", "1"], tmp_path,
                                 columns)
    assert code == 0
    assert frames and "best: trial" in frames[-1], frames
    for frame in frames:
        assert len(frame) <= columns, frame
        assert frame.endswith("]"), frame  # not cut off by the terminal's edge
        assert len(frame.split("|")[1]) >= 10, frame  # the bar
    shown = frames[-1].split("best: ", 1)[1].removesuffix("]").split(" | running")[0]
    whole = re.search(r"^best: (.*)$", out, re.M).group(1)  # the summary's line holds the whole text
    if shown.endswith("…"):  # cut where a part ends: the rest of the line starts with a boundary
        assert whole.startswith(shown[:-1]) and re.match(r"  | [^\s=]+=", whole[len(shown) - 1:]), (shown, whole)
    else:
        assert shown == whole


# 6. the closing best line and the table agree on a tie; the pruned are counted


@pytest.mark.parametrize("metric, values, rows", [("valid_error", [0.3, 0.2, 0.1, 0.1], [2, 3, 1, 0]),
                                                  ("valid_accuracy", [0.7, 0.7, 0.8, 0.8], [2, 3, 0, 1])])
def test_on_a_tie_the_table_and_the_best_line_name_the_lowest_trial_number(metric, values, rows, sweeper, write_spec,
                                                                          tmp_path):
    """Trials 2 and 3 tie. The table was sorted by value alone (NumPy's sort is not stable: here it put
    trial 3 first) and the line took Optuna's best (trial 2, or another on PostgreSQL)."""
    spec = write_spec(tiny_spec(n_trials=4).replace('model = "mlp"', f'model = "mlp"\nmetric = "{metric}"'))
    _finished(spec, f"sqlite:///{tmp_path / 'sweeper.db'}", values)
    run = sweeper("run", spec)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"best 4 of 4 trials by {metric}:", run.stdout
    assert [int(line.split()[0]) for line in lines[2:6]] == rows, run.stdout  # the table's rows
    assert lines[6].startswith("best: trial 2 "), run.stdout


def test_the_summary_says_how_many_trials_were_pruned(sweeper, write_spec, tmp_path):
    spec = write_spec(tiny_spec(n_trials=5))
    _finished(spec, f"sqlite:///{tmp_path / 'sweeper.db'}", [0.3, None, 0.2, None, 0.4])
    run = sweeper("run", spec)
    assert run.returncode == 0, run.stderr
    assert "best 3 of 5 trials (2 pruned) by valid_error:" in run.stdout, run.stdout
    assert "best: trial 2 " in run.stdout


# 7. after sweeper extend, the run shows the stored budget


def test_after_extend_the_bar_counts_to_the_stored_budget(sweeper, write_spec, tmp_path):
    spec = write_spec(tiny_spec(n_trials=3, epochs=2))
    _finished(spec, f"sqlite:///{tmp_path / 'sweeper.db'}", [0.5, 0.4, 0.3])
    assert sweeper("extend", "tiny", "--n-trials", "5").returncode == 0
    code, frames, _ = _pty_run(["run", spec, "--workers", "1"], tmp_path, 200)
    assert code == 0
    assert frames and all(re.search(r"\| \d+/5 \[", f) for f in frames), frames  # never the spec's 3
    assert "| 5/5 [" in frames[-1]


# 8. the workers' commands are named as people type them


def test_sweeper_worker_help_and_usage_errors_say_sweeper_worker(sweeper):
    shown = sweeper("worker", "--help")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Usage: sweeper worker [OPTIONS] NAME"), shown.stdout
    wrong = sweeper("worker")
    assert wrong.returncode == 2
    assert "(see sweeper worker --help)" in wrong.stderr and "python -m" not in wrong.stderr


# 9. the SQLite warning: not for a couple of workers, still for more


def test_two_workers_on_sqlite_run_without_the_warning_three_get_it(sweeper, write_spec):
    from storage import rdb

    two = sweeper("run", write_spec(tiny_spec(n_trials=2, epochs=1)), "--workers", "2")
    assert two.returncode == 0, two.stderr
    assert rdb.SQLITE_SHARED not in two.stderr
    three = sweeper("run", write_spec(tiny_spec(n_trials=3, epochs=1).replace('"tiny"', '"tiny3"'), "three.toml"),
                    "--workers", "3")
    assert three.returncode == 0, three.stderr
    assert f"warning: {rdb.SQLITE_SHARED}" in three.stderr
