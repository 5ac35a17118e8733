"""Sampler and pruner settings: names, options checked against Optuna's signatures, seeds per worker."""

from __future__ import annotations

import optuna
import pytest

from storage.contract import samplers
from storage.contract.errors import BadInput


def test_a_name_becomes_a_table_with_the_study_seed():
    assert samplers.normalize("sampler", "tpe", seed=7, epochs=3) == {"name": "tpe", "seed": 7, "multivariate": True}
    assert samplers.normalize("sampler", {"name": "random", "seed": 1}, seed=7, epochs=3) == \
        {"name": "random", "seed": 1}
    assert samplers.normalize("pruner", "hyperband", seed=0, epochs=9) == {"name": "hyperband", "max_resource": 9}


@pytest.mark.parametrize("kind, value, message", [
    ("sampler", "tpee", "unknown sampler 'tpee': did you mean 'tpe'?"),
    ("pruner", "medain", "unknown pruner 'medain': did you mean 'median'?"),
    ("sampler", {"name": "tpe", "n_startup_trial": 3}, "did you mean 'n_startup_trials'?"),
    ("pruner", {"name": "median", "n_warmup_steps": -1}, "[study] pruner median:"),
    ("sampler", 3, "is invalid: write a name"),
])
def test_bad_settings_are_bad_input(kind, value, message):
    with pytest.raises(BadInput) as err:
        samplers.normalize(kind, value, seed=0, epochs=3)
    assert message in str(err.value)


def test_parallel_workers_get_different_seeds_except_for_qmc():
    tpe = [samplers.build("sampler", {"name": "random", "seed": 3}, seed_offset=k) for k in (0, 1)]
    study = optuna.create_study()
    draws = [s.sample_independent(study, study.ask(), "x", optuna.distributions.FloatDistribution(0, 1))
             for s in tpe]
    assert draws[0] != draws[1]
    qmc = samplers.build("sampler", {"name": "qmc", "seed": 3}, seed_offset=5)
    assert qmc._seed == 3


@pytest.mark.parametrize("name", sorted(samplers.SAMPLERS))
def test_every_sampler_builds(name):
    if name == "cmaes":
        pytest.importorskip("cmaes")
    table = samplers.normalize("sampler", name, seed=0, epochs=2)
    samplers.build("sampler", table, search_space={"lr": [0.1, 0.2]})


@pytest.mark.parametrize("name", sorted(samplers.PRUNERS))
def test_every_pruner_builds(name):
    samplers.build("pruner", samplers.normalize("pruner", name, seed=0, epochs=4))


def test_a_rehearsal_runs_the_sampler_and_pruner_as_a_worker_would():
    """What the option checks miss fails here, at create time, with Optuna's message (not in every worker)."""
    from optuna.distributions import FloatDistribution

    space = {"lr": FloatDistribution(0.01, 0.1)}
    samplers.rehearse({"name": "tpe", "n_startup_trials": 1}, {"name": "median", "n_startup_trials": 1}, space, 3)
    with pytest.raises(BadInput, match=r"sampler tpe with pruner none fails on a rehearsal \(TypeError"):
        samplers.rehearse({"name": "tpe", "n_startup_trials": "x"}, {"name": "none"}, space, 3)
    with pytest.raises(BadInput, match=r"fails on a rehearsal \(ZeroDivisionError"):
        samplers.rehearse({"name": "random"}, {"name": "hyperband", "reduction_factor": 1, "max_resource": 3},
                          space, 3)
