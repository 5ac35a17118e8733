"""Shared runs: a configuration and seed that two studies hold is trained once, by the first study's
worker; the second study's worker copies it (value, attrs, epoch rows) and trains only its own trials.

Real workers (workers.worker.work, in this process) on the bundled digits, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import tomllib

import optuna
import pytest
import sqlalchemy as sa

from storage import epochs
from sweeper import analysis, manager, toml_spec, writeup

pytestmark = pytest.mark.slow  # whole runs: not in the fast lane (-m 'not slow')

SPEC = """
[study]
name = "{name}"
title = "{name}: learning rates"
dataset = "digits"
epochs = 4
sampler = "grid"
repeats = {repeats}
{extra}

[params]
width = 256
schedule = "constant"
batch_size = 4  # many small steps: training takes long enough here that copying shows against it
lr = {{grid = {rates}}}
"""
# 1e6 diverges in both studies; 0.1 (seeds 0 and 1) is the run they share; 0.05 and 0.2 are their own.
A, B = ("a", "[1e6, 0.1, 0.05]"), ("b", "[1e6, 0.1, 0.2]")


def _create(url: str, name: str, rates: str, repeats: int = 2, extra: str = ""):
    text = SPEC.format(name=name, rates=rates, repeats=repeats, extra=extra)
    return manager.create(toml_spec.parse(tomllib.loads(text)), url)[0]


def _run(url: str, name_rates: tuple, **spec) -> tuple:
    """Create the study and run one real worker over it: (handle, [(wall_s, train_s) per trial], seconds)."""
    from workers.worker import work

    handle = _create(url, *name_rates, **spec)
    seen = []
    started = time.perf_counter()
    assert work(name_rates[0], url, on_trial=lambda wall, train: seen.append((wall, train))) == 0
    return handle, seen, time.perf_counter() - started


def _epoch_rows(url: str, study_id: int):
    engine = sa.create_engine(url)
    try:
        return epochs.read(engine, study_id).set_index(["trial", "epoch"])
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def test_a_run_two_studies_hold_is_trained_once_and_copied(url, tmp_path):
    first, trained, first_s = _run(url, A)
    second, copied_or_trained, second_s = _run(url, B)
    print(f"\nstudy a: {first_s:.2f} s, study b: {second_s:.2f} s; per trial (wall, train) a: "
          f"{[(round(w, 2), round(t, 2)) for w, t in trained]}, b: "
          f"{[(round(w, 2), round(t, 2)) for w, t in copied_or_trained]}")
    a, b = (optuna.load_study(study_name=name, storage=url).trials for name in ("a", "b"))
    rows_a, rows_b = _epoch_rows(url, first.study_id), _epoch_rows(url, second.study_id)
    # Grid order, seed by seed: trials 0-2 seed 0, 3-5 seed 1; lr 1e6, 0.1, then each study's own.
    for n in (1, 4):
        original, copy = a[n], b[n]
        assert copy.params == original.params and copy.state == original.state == optuna.trial.TrialState.COMPLETE
        assert copy.value == original.value
        assert copy.user_attrs["shared_from"] == {"study": "a", "trial": n}
        assert copy.user_attrs["run_key"] == original.user_attrs["run_key"]
        for attr in ("test_error", "report", "outcome", "test_correct"):
            assert copy.user_attrs.get(attr) == original.user_attrs.get(attr), attr
        assert copy.intermediate_values == original.intermediate_values and len(copy.intermediate_values) == 4
        assert rows_b.loc[n].equals(rows_a.loc[n]) and len(rows_b.loc[n]) == 4
        wall, train = copied_or_trained[n]
        assert train == 0 and wall < trained[n][0], (wall, trained[n])  # no training: less time than it took
    for n in (2, 5):  # each study's own configuration: trained
        assert b[n].state == optuna.trial.TrialState.COMPLETE and "shared_from" not in b[n].user_attrs
        assert b[n].user_attrs["outcome"]["seconds"] > 0 and copied_or_trained[n][1] > 0
        assert b[n].user_attrs["run_key"] != a[n].user_attrs["run_key"]
    for n in (0, 3):  # diverged in study a: not a run to copy, so study b trains it (and it diverges again)
        assert a[n].state == b[n].state == optuna.trial.TrialState.FAIL
        assert "shared_from" not in b[n].user_attrs and b[n].user_attrs["fail_reason"] == "diverged at epoch 1"
        assert b[n].user_attrs["run_key"] == a[n].user_attrs["run_key"]

    frame = analysis.open("b", storage=url).trials()
    assert frame["shared_from"].tolist()[1:2] + frame["shared_from"].tolist()[4:5] == ["a#1", "a#4"]
    assert frame["shared_from"].isna().sum() == 4
    assert analysis.open("a", storage=url).trials()["shared_from"].isna().all()

    report = writeup.write([writeup.Part("", handles=[first, second])], tmp_path / "out", title="t").read_text()
    assert "**Shared runs:** 2 of 6 trials reused runs that other studies trained (2 from `a`)" in report
    assert report.count("**Shared runs:**") == 1  # study a trained all its own
    assert ("so these studies' verdicts rest partly on the same runs and are not independent: `a` and `b` "
            "(2 trials reused).") in report
    trained_b = frame.loc[frame["shared_from"].isna(), "seconds"].sum()
    assert writeup._seconds(trained_b) in report.split("Study `b`")[1].split("of training in all")[0]


def test_with_sweeper_reuse_0_every_trial_trains(sqlite_url, monkeypatch):
    _run(sqlite_url, A)
    monkeypatch.setenv("SWEEPER_REUSE", "0")
    _, seen, _ = _run(sqlite_url, B)
    a, b = (optuna.load_study(study_name=name, storage=sqlite_url).trials for name in ("a", "b"))
    assert not any("shared_from" in t.user_attrs for t in b)
    for n in (1, 4):  # the shared configuration trained again, under the same key
        assert b[n].user_attrs["run_key"] == a[n].user_attrs["run_key"] and seen[n][1] > 0


def test_a_copied_run_meets_the_pruner_as_a_trained_one_would(sqlite_url):
    _run(sqlite_url, ("slow", "[0.001]"), repeats=1)  # learns little in an epoch
    handle, _, _ = _run(sqlite_url, ("b", "[0.1, 0.001]"), repeats=1,
                        extra='pruner = {name = "median", n_startup_trials = 1, n_warmup_steps = 0}')
    trained, copy = optuna.load_study(study_name="b", storage=sqlite_url).trials
    assert trained.state == optuna.trial.TrialState.COMPLETE and "shared_from" not in trained.user_attrs
    assert copy.state == optuna.trial.TrialState.PRUNED and copy.user_attrs["shared_from"] == {"study": "slow",
                                                                                                "trial": 0}
    assert copy.user_attrs["prune_reason"].startswith("pruned at epoch 1 by the median pruner")
    assert sorted(copy.intermediate_values) == [1] and len(_epoch_rows(sqlite_url, handle.study_id).loc[1]) == 1


def test_a_bad_sweeper_reuse_says_what_to_set(sqlite_url, monkeypatch):
    from storage.contract.errors import BadInput
    from workers.worker import work

    _create(sqlite_url, "a", "[0.1]")
    monkeypatch.setenv("SWEEPER_REUSE", "no")
    with pytest.raises(BadInput, match="SWEEPER_REUSE='no' is not 0 or 1: set 0 to train every trial"):
        work("a", sqlite_url)
