"""A study's life after its first run: `sweeper delete` (and Optuna's own delete) leaves no epoch rows
to a study created next; `sweeper extend` raises the budget under running workers; bad input."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import sqlalchemy as sa

from storage import epochs
from tests.sweeper.conftest import tiny_spec

pytestmark = pytest.mark.slow  # the real CLI in processes, whole runs: not in the fast lane (-m 'not slow')


def _frames(sweeper, url: str, name: str = "tiny") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results, epochs) of the study as `sweeper results` and `sweeper epochs` print them in CSV."""
    out = []
    for command in ("results", "epochs"):
        done = sweeper(command, name, "--storage", url, "--format", "csv")
        assert done.returncode == 0, done.stderr
        out.append(pd.read_csv(io.StringIO(done.stdout)))
    return out[0], out[1]


def _assert_own_epochs(sweeper, url: str, n_trials: int, n_epochs: int) -> None:
    """Every trial of the study has its epochs 1..n exactly once, at its own learning rate, and the
    epoch table holds no other row."""
    results, rows = _frames(sweeper, url)
    assert len(results) == n_trials and (results["state"] == "COMPLETE").all()
    assert sorted(rows.groupby("trial")["epoch"].apply(list).items()) == [
        (t, list(range(1, n_epochs + 1))) for t in sorted(results["trial"])]
    lr = rows.groupby("trial")["lr"].first()  # a constant schedule: each epoch at the trial's lr
    assert lr.to_dict() == pytest.approx(results.set_index("trial")["lr"].to_dict(), rel=1e-6)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(epochs.table)).scalar() == len(rows)
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_study_deleted_and_created_again_has_only_its_own_epochs(backend, request, sweeper, write_spec):
    """Optuna's delete left the epoch rows behind: on SQLite the new study took the old ids and its
    rows were dropped as duplicates, so `sweeper epochs` showed the old study's curves."""
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    first = sweeper("run", write_spec(tiny_spec(n_trials=3, epochs=2)), "--storage", url, "--workers", "1")
    assert first.returncode == 0, first.stderr
    optuna_cli = Path(sys.executable).with_name("optuna")  # Optuna's own command, installed beside python
    deleted = subprocess.run([str(optuna_cli), "delete-study", "--study-name", "tiny", "--storage", url],
                             capture_output=True, text=True, timeout=120)
    assert deleted.returncode == 0, deleted.stderr
    other = tiny_spec(n_trials=3, epochs=3).replace("[0.01, 0.5]", "[0.6, 0.9]")
    second = sweeper("run", write_spec(other), "--storage", url, "--workers", "1")
    assert second.returncode == 0, second.stderr
    _assert_own_epochs(sweeper, url, 3, 3)

    if backend == "postgresql":
        return  # sweeper delete itself: on SQLite, whose ids come back
    asked = sweeper("delete", "tiny", "--storage", url)  # no terminal to confirm on: nothing deleted
    assert asked.returncode == 130 and "aborted" in asked.stderr
    gone = sweeper("delete", "tiny", "--storage", url, "--yes")
    assert gone.returncode == 0 and "3 trials, 9 epoch rows" in gone.stderr, gone.stderr
    third = sweeper("run", write_spec(tiny_spec(n_trials=2, epochs=2)), "--storage", url, "--workers", "1")
    assert third.returncode == 0, third.stderr
    _assert_own_epochs(sweeper, url, 2, 2)


def test_extend_while_two_workers_run_ends_with_exactly_the_new_budget(pg_url, sweeper, write_spec):
    from sweeper import manager

    spec = write_spec(tiny_spec(n_trials=4, epochs=25))
    created = sweeper("create", spec, "--storage", pg_url)
    assert created.returncode == 0, created.stderr
    run = subprocess.Popen([sys.executable, "-m", "sweeper", "run", str(spec), "--storage", pg_url, "--workers", "2"],
                           cwd=spec.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    handle = manager.open_study("tiny", pg_url)
    deadline = time.monotonic() + 120
    while handle.counts().done < 1 and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.1)
    before = manager.extend(handle, 9)
    assert before.done < 4, "the study finished before it was extended: give the trials more epochs"
    _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    results, _ = _frames(sweeper, pg_url)
    assert sorted(results["trial"]) == list(range(9)) and (results["state"] == "COMPLETE").all()
    assert results["lr"].nunique() == 9
    assert "9/9 done" in err
    handle.storage.engine.dispose()


def _one_line(done, text: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and text in done.stderr, done.stderr


def test_bad_extend_and_delete_are_one_line_and_change_nothing(sweeper, write_spec, sqlite_url):
    from sweeper import manager

    assert sweeper("create", write_spec(tiny_spec(n_trials=3)), "--storage", sqlite_url).returncode == 0
    handle = manager.open_study("tiny", sqlite_url)
    for _ in range(2):
        handle.study.tell(handle.study.ask(handle.spec.space), 0.5)
    _one_line(sweeper("extend", "tiny", "--n-trials", "1", "--storage", sqlite_url), "must be at least 2")
    _one_line(sweeper("extend", "nope", "--n-trials", "5", "--storage", sqlite_url), "no study 'nope'")
    _one_line(sweeper("delete", "nope", "--yes", "--storage", sqlite_url), "no study 'nope'")
    assert handle.counts().budget == 3 and len(handle.study.trials) == 2
    done = sweeper("extend", "tiny", "--n-trials", "5", "--storage", sqlite_url)
    assert done.returncode == 0 and "budget 5 trials (was 3; 2 done" in done.stderr, done.stderr
    assert handle.counts().budget == 5
    status = sweeper("status", "tiny", "--storage", sqlite_url)
    assert "2 of 5 done" in status.stdout, status.stdout

    grid = tiny_spec(n_trials=2).replace('name = "tpe", n_startup_trials = 3', 'name = "grid"').replace(
        "lr = {float = [0.01, 0.5], log = true}", "lr = {choice = [0.1, 0.2]}").replace(
        "l2 = {float = [1e-6, 1e-3], log = true}", "l2 = 0.0").replace('name = "tiny"', 'name = "g"')
    assert sweeper("create", write_spec(grid, "grid.toml"), "--storage", sqlite_url).returncode == 0
    _one_line(sweeper("extend", "g", "--n-trials", "5", "--storage", sqlite_url), "is a grid")
    handle.storage.engine.dispose()


def test_enqueued_configurations_run_first_in_their_order(sweeper, write_spec, sqlite_url):
    spec = tiny_spec(n_trials=3, epochs=1) + "\n[[enqueue]]\nlr = 0.3\nl2 = 1e-5\n\n[[enqueue]]\nlr = 0.05\n"
    run = sweeper("run", write_spec(spec), "--storage", sqlite_url, "--workers", "1")
    assert run.returncode == 0, run.stderr
    results, _ = _frames(sweeper, sqlite_url)
    assert results["lr"].tolist()[:2] == pytest.approx([0.3, 0.05]) and results["l2"].tolist()[0] == 1e-5
    assert len(results) == 3 and (results["state"] == "COMPLETE").all()


def test_enqueue_copies_the_best_configurations_of_another_study(sweeper, write_spec, sqlite_url):
    from sweeper import manager

    assert sweeper("create", write_spec(tiny_spec(n_trials=6)), "--storage", sqlite_url).returncode == 0
    theirs = manager.open_study("tiny", sqlite_url)
    for lr, error in ((0.02, 0.3), (0.2, 0.1), (0.4, 0.2), (0.05, 0.4)):
        theirs.study.tell(_ask(theirs, lr=lr, l2=1e-4), error)
    other = (tiny_spec(n_trials=3).replace('name = "tiny"', 'name = "next"').replace("width = 16", "width = 32")
             .replace("l2 = {float = [1e-6, 1e-3], log = true}", "l2 = 0.0").replace("[0.01, 0.5]", "[0.1, 0.45]"))
    assert sweeper("create", write_spec(other, "next.toml"), "--storage", sqlite_url).returncode == 0
    done = sweeper("enqueue", "next", "--from", "tiny", "--top", "2", "--storage", sqlite_url)
    assert done.returncode == 0, done.stderr
    assert "2 configuration(s) of 'tiny' queued" in done.stderr and "not copied" in done.stderr
    assert "l2, width" in done.stderr  # searched there, fixed to other values here: named
    mine = manager.open_study("next", sqlite_url)
    waiting = mine.study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [{"lr": 0.2}, {"lr": 0.4}]

    before = len(mine.study.trials)
    _one_line(sweeper("enqueue", "next", "--from", "tiny", "--top", "3", "--storage", sqlite_url),
              "trial 0 of 'tiny': lr = 0.02 lies outside the study's space (0.1 to 0.45, log)")
    _one_line(sweeper("enqueue", "next", "--from", "tiny", "--top", "2", "--storage", sqlite_url),
              "the 2 best configuration(s) of 'tiny' are already queued, running or done in study 'next'")
    _one_line(sweeper("enqueue", "next", "--from", "nope", "--storage", sqlite_url), "no study 'nope'")
    assert len(manager.open_study("next", sqlite_url).study.trials) == before
    for handle in (theirs, mine):
        handle.storage.engine.dispose()


def _ask(handle, **params):
    """A trial of `handle`'s study at these parameter values."""
    handle.study.enqueue_trial(params)
    return handle.study.ask(handle.spec.space)


def test_kept_weights_export_and_evaluate_to_the_trials_test_error(sweeper, write_spec, sqlite_url, tmp_path):
    """keep = "best": each trial best when it finished keeps its weights; the export evaluates to its figure."""
    import json
    import re
    import urllib.request

    from sweeper import manager

    run = sweeper("run", write_spec(tiny_spec(n_trials=4, epochs=2)), "--storage", sqlite_url, "--workers", "1")
    assert run.returncode == 0, run.stderr
    results, _ = _frames(sweeper, sqlite_url)
    best = results.loc[results["valid_error"].idxmin()]
    done = sweeper("export", "tiny", "--out", "best.npz", "--storage", sqlite_url)
    assert done.returncode == 0 and f"trial {best['trial']} of study 'tiny'" in done.stderr, done.stderr
    judged = sweeper("evaluate", "best.npz", "--json")
    assert judged.returncode == 0, judged.stderr
    figures = json.loads(judged.stdout)
    assert figures["test_error"] == best["test_error"] and figures["dataset"] == "digits"

    _one_line(sweeper("export", "tiny", "--trial", "99", "--out", "x.npz", "--storage", sqlite_url),
              "study 'tiny' has no trial 99: its trials are 0 to 3")
    handle = manager.open_study("tiny", sqlite_url)
    kept = [t.number for t in handle.study.trials if optuna.artifacts.get_all_artifact_meta(t, storage=handle.storage)]
    handle.storage.engine.dispose()
    assert kept[0] == 0 and int(best["trial"]) in kept  # the first trial, and each that was best when it finished
    for t in set(results["trial"]) - set(kept):
        _one_line(sweeper("export", "tiny", "--trial", str(t), "--out", "x.npz", "--storage", sqlite_url),
                  f"trial {t} of study 'tiny' has no kept weights ([study] keep = \"best\"); trials with weights: "
                  + ", ".join(map(str, kept)))
    _one_line(sweeper("export", "nope", "--out", "x.npz", "--storage", sqlite_url), "no study 'nope'")
    _one_line(sweeper("export", "tiny", "--out", "no/x.npz", "--storage", sqlite_url), "no folder")
    _one_line(sweeper("evaluate", str(write_spec("not weights", "w.npz"))), "is not a sweeper weights file")
    _one_line(sweeper("evaluate", "best.npz", "--dataset", "xor"), "the network takes 8x8 images of 10 classes")
    assert not (tmp_path / "x.npz").exists()

    server = subprocess.Popen([sys.executable, "-m", "sweeper", "dashboard", "--storage", sqlite_url, "--port", "0"],
                              stderr=subprocess.PIPE, text=True)
    try:
        base = re.search(r"http://127\.0\.0\.1:\d+", server.stderr.readline())[0]
        with urllib.request.urlopen(f"{base}/api/studies", timeout=30) as response:
            study_id = json.loads(response.read())["study_summaries"][0]["study_id"]
        with urllib.request.urlopen(f"{base}/api/studies/{study_id}", timeout=30) as response:
            trials = json.loads(response.read())["trials"]
        listed = {t["number"]: [a["filename"] for a in t["artifacts"]] for t in trials}
        assert listed[int(best["trial"])] == ["weights.npz"]
        artifact = next(a for t in trials if t["number"] == int(best["trial"]) for a in t["artifacts"])
        with urllib.request.urlopen(f"{base}/artifacts/{study_id}/{trials[int(best['trial'])]['trial_id']}/"
                                    f"{artifact['artifact_id']}", timeout=30) as response:
            assert response.read() == (tmp_path / "best.npz").read_bytes()
    finally:
        server.terminate()
        server.wait(timeout=30)
