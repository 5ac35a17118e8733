"""The run another study trained, found by its training key on every backend: COMPLETE only, never the
asking study's own, the earliest first, its value as a validation error whatever the metric."""

from __future__ import annotations

import math

import optuna
from optuna.trial import TrialState, create_trial

from storage import epochs, rdb, shared

KEY, OTHER = "a" * 32, "b" * 32


def _trial(state=TrialState.COMPLETE, value=0.1, key=KEY, **attrs):
    return create_trial(state=state, value=value if state == TrialState.COMPLETE else None,
                        user_attrs={"run_key": key, **attrs})


def _studies(url):
    storage = rdb.open_storage(url, create=True)
    epochs.create(storage.engine)
    studies = [optuna.create_study(storage=storage, study_name=name, direction=direction)
               for name, direction in (("a", "minimize"), ("b", "minimize"), ("acc", "maximize"))]
    return storage, [storage.get_study_id_from_name(s.study_name) for s in studies], studies


def test_the_earliest_complete_trial_of_another_study_with_its_attrs_and_epochs(db_url):
    storage, (a, b, _), (study_a, study_b, _) = _studies(db_url)
    study_a.add_trial(_trial(TrialState.FAIL))
    study_a.add_trial(_trial(key=OTHER))
    study_a.add_trial(_trial(value=0.25, test_error=0.3, report={"accuracy": 0.7}, outcome={"epochs_run": 2},
                             worker="h:1"))
    study_a.add_trial(_trial(value=0.5))  # a later one with the same key: not taken
    source_id = study_a.trials[2]._trial_id
    for epoch, valid in ((2, 0.25), (1, math.nan)):
        epochs.write(storage.engine, study_id=a, trial_id=source_id, trial=2, epoch=epoch, train_loss=1.0,
                     train_error=0.5, valid_error=valid, lr=0.1, seconds=0.2)
    found = shared.find(storage.engine, KEY, b)
    assert (found.study, found.number, found.valid_error) == ("a", 2, 0.25)
    assert found.origin == {"study": "a", "trial": 2}
    assert found.attrs == {"test_error": 0.3, "report": {"accuracy": 0.7}, "outcome": {"epochs_run": 2}}
    assert [e.epoch for e in found.epochs] == [1, 2] and math.isnan(found.epochs[0].valid_error)
    assert found.epochs[1] == shared.Epoch(2, 1.0, 0.5, 0.25, 0.1, 0.2)
    assert shared.find(storage.engine, KEY, a) is None  # never the study's own trials
    assert shared.find(storage.engine, "c" * 32, b) is None


def test_failed_pruned_and_running_trials_are_not_runs_to_copy(db_url):
    storage, (a, b, _), (study_a, _, _) = _studies(db_url)
    study_a.add_trial(_trial(TrialState.FAIL, fail_reason="diverged at epoch 1"))
    study_a.add_trial(create_trial(state=TrialState.PRUNED, value=0.9, intermediate_values={1: 0.9},
                                   user_attrs={"run_key": KEY}))  # a pruned trial has its last value
    running = study_a.ask()
    running.set_user_attr("run_key", KEY)
    assert shared.find(storage.engine, KEY, b) is None


def test_a_study_that_maximises_the_accuracy_gives_its_validation_error(db_url):
    storage, (_, b, _), (_, _, accuracy) = _studies(db_url)
    accuracy.add_trial(_trial(value=0.75))
    assert shared.find(storage.engine, KEY, b).valid_error == 0.25
    assert shared.find(storage.engine, KEY, b).epochs == []
