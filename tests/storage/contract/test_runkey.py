"""A training key is one for the same run in any study, and another as soon as anything that trains differs."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from storage.contract.errors import BadInput
from storage.contract.runkey import key
from storage.contract.spec import Spec

PARAMS = {"width": 500, "activation": "relu", "lr": 0.8, "l2": 1e-4}


def _spec(**over) -> Spec:
    base = dict(name="blog.penalties.l2", model="mlp", dataset="digits", n_trials=6, epochs=20,
                fixed={"width": 500, "activation": "relu"}, sampler={"name": "grid", "seed": 0},
                space={"l2": CategoricalDistribution([0.0, 1e-4]), "seed": CategoricalDistribution([0, 1])})
    base.update(over)
    return Spec(**base)


def test_two_studies_that_hold_the_same_run_give_it_one_key():
    other = _spec(name="blog.rates", title="Rates", about="words", section="rates", claims=[{"text": "x beats y"}],
                  references=[{"config": "x"}], post_length="30,000 steps", keep="all", checkpoint_every=0,
                  sampler={"name": "tpe", "seed": 3}, n_trials=99, metric="valid_accuracy", repeats=5,
                  space={"lr": FloatDistribution(0.1, 1.0, log=True)}, fixed={"width": 500})
    assert key(_spec(), PARAMS, 1) == key(other, PARAMS, 1)
    assert len(key(_spec(), PARAMS, 1)) == 32 and int(key(_spec(), PARAMS, 1), 16) >= 0


def test_a_default_written_out_is_the_same_run_as_one_left_out():
    assert key(_spec(), PARAMS, 0) == key(_spec(), {**PARAMS, "batch_size": 100, "optimizer": "sgd"}, 0)
    assert key(_spec(), PARAMS, 0) == key(_spec(), {**PARAMS, "lr": 0.8, "width": 500.0}, 0)  # types converted


def test_the_order_seed_draws_are_written_in_does_not_matter():
    assert key(_spec(seed_draws=["order", "init", "dropout"]), PARAMS, 0) == key(_spec(), PARAMS, 0)


@pytest.mark.parametrize("change", [
    dict(params={**PARAMS, "l2": 1e-3}),
    dict(params={**PARAMS, "dropout": 0.5}),
    dict(spec=dict(epochs=21)),
    dict(spec=dict(epochs=None, steps=20)),
    dict(spec=dict(dataset="mnist")),
    dict(spec=dict(model="lenet", fixed={"width": 500})),
    dict(seed=2),
    dict(spec=dict(seed_draws=["init", "order"])),
    dict(spec=dict(seed_draws=["init", "order", "dropout", "split"])),
], ids=["param", "one-more-param", "epochs", "steps", "dataset", "model", "seed", "fewer-draws", "split-drawn"])
def test_anything_that_trains_differently_changes_it(change):
    params = change.get("params", PARAMS)
    if change.get("spec", {}).get("model") == "lenet":
        params = {"width": 500, "lr": 0.8, "l2": 1e-4}
    assert key(_spec(**change.get("spec", {})), params, change.get("seed", 1)) != key(_spec(), PARAMS, 1)


def test_the_study_seed_counts_only_for_the_parts_the_trial_seed_does_not_draw():
    every = ["init", "order", "dropout", "split"]
    assert key(_spec(seed=7, seed_draws=every), PARAMS, 1) == key(_spec(seed_draws=every), PARAMS, 1)
    assert key(_spec(seed=7), PARAMS, 1) != key(_spec(), PARAMS, 1)  # the split is not drawn
    assert key(_spec(seed=7, seed_draws=["init"]), PARAMS, 1) != key(_spec(seed_draws=["init"]), PARAMS, 1)


def test_parameters_train_would_refuse_have_no_key():
    with pytest.raises(BadInput, match="lr=-1"):
        key(_spec(), {**PARAMS, "lr": -1}, 0)
