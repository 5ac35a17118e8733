"""The analysis tables on trials made by hand through Optuna's API (no training), on every backend."""

from __future__ import annotations

import time
import tomllib

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from storage import epochs, rdb
from sweeper import analysis, manager, toml_spec
from tests.sweeper.conftest import tiny_spec

REPORT = {"0": {"precision": 1.0, "recall": 0.5, "f1-score": 0.667, "support": 2.0},
          "1": {"precision": 0.5, "recall": 1.0, "f1-score": 0.667, "support": 1.0},
          "accuracy": 0.667}


@pytest.fixture(params=["sqlite", "postgresql"])
def made(request):
    """A tiny study with trials 0 COMPLETE, 1 PRUNED at epoch 1, 2 FAIL (diverged), 3 RUNNING (see _lose)."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    spec = toml_spec.parse(tomllib.loads(tiny_spec(n_trials=5, epochs=2)))
    handle, _ = manager.create(spec, url)
    storage = rdb.open_storage(url, heartbeat=1, grace=2, max_retry=3)
    study = optuna.load_study(study_name="tiny", storage=storage)
    sid = storage.get_study_id_from_name("tiny")

    def trial(n_epochs, **attrs):
        t = study.ask(spec.space)
        for e in range(1, n_epochs + 1):
            epochs.write(storage.engine, study_id=sid, trial_id=t._trial_id, trial=t.number, epoch=e,
                         train_loss=1.0 / e, train_error=0.3 / e, valid_error=0.2 / e, lr=0.1, seconds=0.5)
            t.report(0.2 / e, e)
        for k, v in attrs.items():
            t.set_user_attr(k, v)
        return t

    with pytest.warns(UserWarning, match="Heartbeat"):
        study.tell(trial(2, test_error=0.12, report=REPORT, worker="h:1",
                         outcome=dict(epochs_run=2, seconds=1.0, stopped_early=False, confident_n=90,
                                      confident_precision=0.99)), 0.1)
        study.tell(trial(1, prune_reason="pruned at epoch 1", outcome=dict(epochs_run=1, seconds=0.5, valid_error=0.2)),
                   state=TrialState.PRUNED)
        study.tell(trial(0, fail_reason="diverged at epoch 1", outcome=dict(epochs_run=0, seconds=0.1)),
                   state=TrialState.FAIL)
        lost = trial(1)
    storage.record_heartbeat(lost._trial_id)
    return url


def _lose(url) -> None:
    """Trial 3's worker died: its heartbeat goes stale, a worker fails it and queues trial 4 as its retry."""
    study = optuna.load_study(study_name="tiny", storage=rdb.open_storage(url, heartbeat=1, grace=2))
    time.sleep(3.2)  # SQLite keeps whole seconds: 3 > grace 2 for sure
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        optuna.storages.fail_stale_trials(study)


@pytest.mark.slow  # waits on the clock (a grace period) or another process
def test_trials_has_one_row_per_trial_with_documented_columns(made):
    _lose(made)
    frame = analysis.open("tiny", storage=made).trials()
    assert frame["trial"].tolist() == [0, 1, 2, 3, 4]
    assert frame["state"].tolist() == ["COMPLETE", "PRUNED", "FAIL", "FAIL", "WAITING"]
    assert list(frame.columns) == ["trial", "state", "lr", "l2", "seed", *analysis.TRIAL_COLUMNS]
    assert frame["seed"].tolist() == [0] * 5  # one training seed for every trial: [study] seed
    assert frame.loc[0, "valid_error"] == 0.1 and frame.loc[0, "test_error"] == 0.12
    assert frame.loc[1, "reason"] == "pruned at epoch 1" and frame.loc[2, "reason"] == "diverged at epoch 1"
    assert frame.loc[3, "reason"].startswith("no heartbeat for 60 s")
    assert frame.loc[3, "reason"].endswith("retried as trial 4")
    assert frame.loc[4, "retry_of"] == 3 and pd.isna(frame.loc[0, "retry_of"])
    assert frame.loc[4, "lr"] == frame.loc[3, "lr"]  # a retry keeps its parameters
    assert frame["epochs_run"].tolist()[:3] == [2, 1, 0]
    assert frame["valid_error"].tolist()[:2] == [0.1, 0.2]  # a pruned trial's: of its last epoch
    assert frame.loc[0, "worker"] == "h:1" and frame.loc[0, "confident_n"] == 90
    assert frame.loc[0, "stopped_early"] == False  # noqa: E712 - a nullable boolean


def test_epochs_is_the_long_table(made):
    frame = analysis.open("tiny", storage=made).epochs()
    assert list(frame.columns) == list(analysis.EPOCH_COLUMNS)
    assert frame[["trial", "epoch"]].values.tolist() == [[0, 1], [0, 2], [1, 1], [3, 1]]
    wide = analysis.open("tiny", storage=made).curves()
    assert list(wide.columns) == [0, 1, 3] and wide.loc[2, 0] == pytest.approx(0.1)


def test_reports_is_long(made):
    frame = analysis.open("tiny", storage=made).reports()
    assert set(frame["trial"]) == {0}
    row = frame[(frame["label"] == "1") & (frame["metric"] == "recall")]
    assert row["value"].tolist() == [1.0]
    assert frame[frame["label"] == "accuracy"]["value"].tolist() == [0.667]


def test_an_empty_study_gives_empty_tables_with_the_columns(sqlite_url):
    manager.create(toml_spec.parse(tomllib.loads(tiny_spec())), sqlite_url)
    frame = analysis.open("tiny", storage=sqlite_url).trials()
    assert frame.empty and list(frame.columns) == ["trial", "state", "lr", "l2", "seed", *analysis.TRIAL_COLUMNS]
    assert analysis.open("tiny", storage=sqlite_url).epochs().empty


def test_open_gives_every_table_and_says_how_to_call_it(made):
    study = analysis.open("tiny", storage=made)
    assert len(study.trials()) == 4 and len(study.epochs()) == 4 and list(study.test_flags()) == []
    assert study.curves("train_loss").loc[1, 0] == pytest.approx(1.0)
    storage = rdb.open_storage(made)
    with pytest.raises(TypeError, match=r"a database URL, not a \w*RDBStorage: e\.g\. analysis\.open\('tiny'"):
        analysis.open("tiny", storage=storage)
    with pytest.raises(TypeError, match=r"'Study' is not a study's name: pass the name"):
        analysis.open(optuna.load_study(study_name="tiny", storage=storage))


def test_an_accuracy_study_shows_both_errors_and_its_metric(sqlite_url):
    text = tiny_spec().replace('[params]', 'metric = "valid_accuracy"\n[params]')
    handle, _ = manager.create(toml_spec.parse(tomllib.loads(text)), sqlite_url)
    assert handle.study.direction == optuna.study.StudyDirection.MAXIMIZE
    trial = handle.study.ask(handle.spec.space)
    handle.study.tell(trial, 0.9)
    frame = analysis.open("tiny", storage=sqlite_url).trials()
    assert frame.loc[0, "valid_accuracy"] == 0.9 and frame.loc[0, "valid_error"] == pytest.approx(0.1)
    assert list(frame.columns).index("valid_accuracy") == list(frame.columns).index("valid_error") + 1


def test_a_point_that_leaves_a_parameter_unset_is_found_among_the_trials():
    """A parameter that some points set and others leave at its default None (width2) comes back from the
    trials table as NaN: the trial still belongs to its configuration."""
    from sweeper.measures import config_of
    from sweeper.toml_spec import parse

    spec = parse({"study": {"name": "w2", "dataset": "xor", "epochs": 2, "repeats": 2},
                  "point": [{"name": "one layer", "depth": 1}, {"name": "3-2", "depth": 2, "width2": 2}]})
    assert [config_of(spec.configs(), dict(depth=d, width2=w)) for d, w in ((1, float("nan")), (2, 2.0))] == \
        ["one layer", "3-2"]
