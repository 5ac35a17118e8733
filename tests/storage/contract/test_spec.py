"""A spec survives its JSON form, compares by content, and lists its grid."""

from __future__ import annotations

import dataclasses

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from storage.contract.errors import BadInput
from storage.contract.spec import Spec


def _spec(**over) -> Spec:
    base = dict(name="s", model="mlp", dataset="digits", n_trials=5, epochs=2, fixed={"batch_size": 32},
                space={"lr": FloatDistribution(1e-3, 1.0, log=True), "width": IntDistribution(16, 64, step=16),
                       "optimizer": CategoricalDistribution(["sgd", "adam"])})
    base.update(over)
    return Spec(**base)


def test_same_as_ignores_the_name_only():
    assert _spec().same_as(_spec(name="other"))
    assert not _spec().same_as(_spec(epochs=3))
    assert not _spec().same_as(_spec(space={"lr": FloatDistribution(1e-3, 0.5, log=True)}))


def test_same_search_ignores_what_only_describes_the_study():
    described = _spec(title="t", about="a", section="init", post_train_images=9,
                      claims=[{"text": "x beats y"}], references=[{"config": "x"}])
    assert described.same_search(_spec(name="other")) and not described.same_as(_spec())
    assert not described.same_search(_spec(epochs=3))
    assert not _spec(repeats=2).same_search(_spec())


def test_grid_points_are_the_product_of_the_axes():
    spec = _spec(sampler={"name": "grid", "seed": 0},
                 space={"l2": CategoricalDistribution([0.0, 1e-4]), "width": CategoricalDistribution([16, 32, 48])})
    assert spec.is_grid
    assert spec.grid_points()[:2] == [{"l2": 0.0, "width": 16}, {"l2": 0.0, "width": 32}]
    assert len(spec.grid_points()) == 6


def test_metric_direction_and_value():
    assert _spec().direction == "minimize" and _spec().metric_value(0.25) == 0.25
    acc = _spec(metric="valid_accuracy")
    assert acc.direction == "maximize" and acc.metric_value(0.25) == 0.75


def test_a_spec_of_another_version_is_bad_input():
    attr = dataclasses.replace(_spec()).to_attr()
    attr["version"] = 99
    with pytest.raises(BadInput, match="version"):
        Spec.from_attr(attr)
