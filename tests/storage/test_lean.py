"""storage.lean reads the same FrozenTrials as Optuna's own RDBStorage, in two statements a read."""

from __future__ import annotations

import math
import time

import optuna
import pytest
import sqlalchemy as sa
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from storage import lean, urls


def _fill(url: str) -> tuple[RDBStorage, int, int]:
    """Two studies with every kind of trial content; (Optuna's storage, id of a 1- and a 2-objective study)."""
    reference = RDBStorage(urls.normalize(url))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    one = optuna.create_study(study_name="one", storage=reference)
    one.enqueue_trial({"lr": 0.1, "act": "tanh"}, user_attrs={"note": "queued"})
    for i, (state, value) in enumerate([(TrialState.COMPLETE, 0.25), (TrialState.COMPLETE, math.inf),
                                        (TrialState.COMPLETE, -math.inf), (TrialState.FAIL, None),
                                        (TrialState.PRUNED, None), (TrialState.RUNNING, None)]):
        trial = one.ask({"lr": FloatDistribution(1e-4, 1.0, log=True), "act": CategoricalDistribution(["relu", "tanh"]),
                         "width": IntDistribution(10, 1000, step=10), "q": FloatDistribution(0, 1, step=0.25)})
        reported = [0.5, math.nan, math.inf, -math.inf, 0.125 * i]
        for step, v in enumerate(reported[:2] if state == TrialState.RUNNING else reported):
            trial.report(v, step)
        trial.set_user_attr("outcome", {"epochs": i, "nested": [1, None, "x"]})
        trial.set_user_attr("none", None)
        reference.set_trial_system_attr(trial._trial_id, "sys", [i])
        if state != TrialState.RUNNING:
            one.tell(trial, value, state=state)
    one.enqueue_trial({"lr": 0.2})  # a second WAITING trial, after finished ones
    two = optuna.create_study(study_name="two", storage=reference, directions=["minimize", "maximize"])
    two.optimize(lambda t: (t.suggest_float("x", -1, 1), t.suggest_int("n", 1, 5)), n_trials=3)
    ids = reference.get_study_id_from_name("one"), reference.get_study_id_from_name("two")
    return reference, *ids


def canon(trials) -> list:
    """Trials as comparable values: NaN equals NaN, dict order does not count."""
    def norm(x):
        if isinstance(x, float) and math.isnan(x):
            return "nan"
        if isinstance(x, dict):
            return sorted((repr(k), norm(v)) for k, v in x.items())
        if isinstance(x, (list, tuple)):
            return [norm(v) for v in x]
        return x
    return [norm(vars(t)) for t in trials]


def test_every_read_equals_optunas(db_url):
    reference, one, two = _fill(db_url)
    ours = lean.LeanRDBStorage(urls.normalize(db_url))
    for study_id in (one, two):
        theirs = reference.get_all_trials(study_id)
        assert canon(ours.get_all_trials(study_id)) == canon(theirs) and len(theirs) > 2
        for trial in theirs:
            assert canon([ours.get_trial(trial._trial_id)]) == canon([trial])
        for states in [(TrialState.COMPLETE,), (TrialState.WAITING, TrialState.RUNNING), ()]:
            assert (canon(ours.get_all_trials(study_id, states=states))
                    == canon(reference.get_all_trials(study_id, states=states)))
    # What Optuna's cache asks for: unfinished trial ids plus everything after the last finished one.
    trials = reference.get_all_trials(one)
    unfinished = {t._trial_id for t in trials if not t.state.is_finished()}
    for greater in (-1, trials[0]._trial_id, trials[3]._trial_id, trials[-1]._trial_id):
        assert (canon(ours._get_trials(one, None, unfinished, greater))
                == canon(reference._get_trials(one, None, unfinished, greater)))


def test_long_unfinished_list_is_read_by_range(db_url, monkeypatch):
    reference, one, _ = _fill(db_url)
    ours = lean.LeanRDBStorage(urls.normalize(db_url))
    monkeypatch.setattr(lean, "MAX_ID_LIST", 1)
    trials = reference.get_all_trials(one)
    unfinished = {t._trial_id for t in trials if not t.state.is_finished()}
    greater = trials[3]._trial_id
    got = ours._get_trials(one, None, unfinished, greater)
    assert canon(got) == canon(reference._get_trials(one, None, unfinished, greater))
    assert [t._trial_id for t in got] == sorted(i for i in {t._trial_id for t in trials}
                                                if i in unfinished or i > greater)


def test_missing_trial_and_study_raise_key_error_as_optuna_does(db_url):
    reference, one, _ = _fill(db_url)
    ours = lean.LeanRDBStorage(urls.normalize(db_url))
    with pytest.raises(KeyError):
        ours.get_trial(10**6)
    with pytest.raises(KeyError):
        ours.get_all_trials(10**6)
    assert ours.get_all_trials(one, states=(TrialState.COMPLETE,)) != []


def test_a_read_is_two_statements(db_url):
    _fill(db_url)
    ours = lean.LeanRDBStorage(urls.normalize(db_url))
    statements = []
    sa.event.listen(ours.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    one = ours.get_study_id_from_name("one")
    statements.clear()
    trials = ours.get_all_trials(one)
    assert len(statements) == 2
    statements.clear()
    ours.get_trial(trials[1]._trial_id)
    assert len(statements) == 2


def test_a_study_runs_on_it(db_url):
    storage = lean.LeanRDBStorage(urls.normalize(db_url))
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(n_startup_trials=2, seed=1))
    study.optimize(lambda t: (t.suggest_float("x", -2, 2) - 1) ** 2, n_trials=8)
    assert len(study.trials) == 8 and study.best_value < 1
    assert canon(study.trials) == canon(RDBStorage(urls.normalize(db_url)).get_all_trials(study._study_id))


def test_user_attrs_in_one_transaction_as_optunas_one_by_one(db_url):
    ours = lean.LeanRDBStorage(urls.normalize(db_url))
    study = optuna.create_study(storage=ours)
    a, b = study.ask(), study.ask()
    first = {"worker": "host:1", "fail_reason": "old"}
    then = {"fail_reason": None, "report": {"0": {"precision": 0.5}}, "test_error": 0.25, "outcome": [1, "x"]}
    ours.set_trial_user_attrs(a._trial_id, first)
    ours.set_trial_user_attrs(a._trial_id, then)  # an upsert: fail_reason is replaced, not doubled
    for attrs in (first, then):
        for key, value in attrs.items():
            ours.set_trial_user_attr(b._trial_id, key, value)
    assert ours.get_trial(a._trial_id).user_attrs == ours.get_trial(b._trial_id).user_attrs == {**first, **then}
    study.tell(a, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        ours.set_trial_user_attrs(a._trial_id, {"late": 1})
    with pytest.raises(KeyError):
        ours.set_trial_user_attrs(10**6, {"x": 1})


@pytest.mark.slow  # waits on the clock (a grace period) or another process
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_stale_trials_found_as_optuna_finds_them(db_url):
    # a grace of 3 s: a loaded CI machine once took over 1 s between the heartbeat and the first check
    ours = lean.LeanRDBStorage(urls.normalize(db_url), heartbeat_interval=1, grace_period=3)
    reference = RDBStorage(urls.normalize(db_url), heartbeat_interval=1, grace_period=3)
    study = optuna.create_study(storage=ours)
    stale, silent, done = study.ask(), study.ask(), study.ask()  # `silent` never beat
    for trial in (stale, done):
        ours.record_heartbeat(trial._trial_id)
    study.tell(done, 1.0)
    assert ours._get_stale_trial_ids(study._study_id) == [] == reference._get_stale_trial_ids(study._study_id)
    time.sleep(4.2)  # past the grace; SQLite keeps whole seconds
    fresh = study.ask()
    ours.record_heartbeat(fresh._trial_id)
    assert reference._get_stale_trial_ids(study._study_id) == [stale._trial_id]
    # and `silent`, seen without a heartbeat for longer than the grace period (the next test)
    assert sorted(ours._get_stale_trial_ids(study._study_id)) == [stale._trial_id, silent._trial_id]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_running_trial_that_never_beat_is_stale_after_the_grace_period(db_url):
    """A worker killed between taking a trial and its first heartbeat: Optuna would never fail it."""
    storage = lean.LeanRDBStorage(urls.normalize(db_url), heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage)
    silent = study.ask()
    assert storage._get_stale_trial_ids(study._study_id) == []  # first seen now: its worker may beat soon
    time.sleep(0.6)
    late = study.ask()  # a trial that beats before the grace period is over is never stale
    assert storage._get_stale_trial_ids(study._study_id) == []
    time.sleep(0.6)
    storage.record_heartbeat(late._trial_id)
    assert storage._get_stale_trial_ids(study._study_id) == [silent._trial_id]
    optuna.storages.fail_stale_trials(study)
    assert study.trials[silent.number].state == optuna.trial.TrialState.FAIL
    assert study.trials[late.number].state == optuna.trial.TrialState.RUNNING
