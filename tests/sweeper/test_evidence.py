"""[study] repeats, [[point]], [[reference]] and [[claim]]: parsed, and every mistake one line that says the fix."""

from __future__ import annotations

import copy

import pytest

from storage.contract.errors import BadInput
from sweeper import evidence, toml_spec

SRC = {"post": "tf-hyperparameters", "origin": "post"}  # required beside the posts' figures
BASE = {
    "study": {"name": "t", "dataset": "digits", "epochs": 2, "repeats": 2},
    "params": {"width": 16},
    "point": [{"name": "a", "l2": 0.0}, {"name": "b", "l2": 1e-4, "optimizer": "adam"}],
    "reference": [{"config": "a", "test_accuracy": 0.98}],
    "claim": [{**SRC, "text": "b beats a", "kind": "higher", "metric": "test_accuracy", "x": "b", "y": {"l2": 0.0}}],
}


def _with(**changes):
    data = copy.deepcopy(BASE)
    for path, value in changes.items():
        table, _, key = path.partition("__")
        if key.isdigit() or key == "":
            data[table] = value
        else:
            data[table][key] = value
    return data


def _in_steps(data: dict, steps: int) -> dict:
    data["study"].pop("epochs")
    data["study"]["steps"] = steps
    return data


def test_points_times_seeds_are_the_trials_seed_by_seed():
    spec = toml_spec.parse(copy.deepcopy(BASE))
    assert spec.n_trials == 4 and [c["label"] for c in spec.configs()] == ["a", "b"]
    # every point has every varied parameter: a's optimizer is the model's default
    assert spec.grid_points() == [{"l2": 0.0, "optimizer": "sgd", "seed": 0},
                                  {"l2": 1e-4, "optimizer": "adam", "seed": 0},
                                  {"l2": 0.0, "optimizer": "sgd", "seed": 1},
                                  {"l2": 1e-4, "optimizer": "adam", "seed": 1}]
    assert spec.claims[0]["y"] == "a" and spec.references[0]["config"] == "a"
    assert toml_spec.Spec.from_attr(spec.to_attr()) == spec


def test_a_product_grid_with_repeats():
    spec = toml_spec.parse({"study": {"name": "g", "epochs": 1, "repeats": 3, "seed": 5},
                        "params": {"l2": {"grid": [0.0, 1e-4]}}})
    assert spec.n_trials == 6 and [p["seed"] for p in spec.grid_points()] == [5, 5, 6, 6, 7, 7]


@pytest.mark.parametrize("data,message", [
    (_with(study__repeats=0), "repeats = 0 is invalid: use an integer from 1 to"),
    (_with(study__repeats=2, point=[], reference=[], claim=[]) | {"params": {"lr": {"float": [0.1, 1.0]}}},
     "repeats = 2 needs a grid study"),
    (_with(reference=[{"config": "c", "test_accuracy": 0.9}]), "no configuration named 'c'"),
    (_with(reference=[{"params": {"l2": 3e-4}, "test_accuracy": 0.9}]), "no configuration of the study has l2"),
    (_with(reference=[{"config": "a"}]), "give the post's valid_accuracy, test_accuracy or outcome"),
    (_with(reference=[{"config": "a", "test_accuracy": 98}]), "must be a share in [0, 1]"),
    (_with(claim=[{**SRC, "text": "t", "kind": "better", "metric": "test_accuracy", "x": "a", "y": "b"}]),
     "unknown kind 'better'"),
    (_with(claim=[{**SRC, "text": "t", "kind": "higher", "metric": "accuracy", "x": "a", "y": "b"}]), "unknown metric"),
    (_with(claim=[{**SRC, "text": "t", "kind": "higher", "metric": "test_accuracy", "x": "a", "y": "zz"}]),
     "[[claim]] 1 y: no configuration named 'zz'"),
    (_with(claim=[{**SRC, "text": "t", "kind": "higher", "metric": "test_accuracy", "x": "a"}]), "add y ="),
    (_with(claim=[{**SRC, "text": "t", "kind": "at_least", "metric": "test_accuracy", "x": "a"}]), "add the threshold"),
    (_with(claim=[{**SRC, "text": "t", "kind": "at_least", "metric": "valid_error", "x": "a", "value": 0.5,
                   "epoch": 9}]),
     "epoch = 9 is past the study's 2 epochs"),
    (_with(study__steps=100), "gives both epochs and steps"),
    (_with(params={"width": 16, "decay_steps": 0}), "decay_steps=0 is invalid: use an integer >= 1"),
    (_with(params={"width": 16, "decay_steps": -5}), "decay_steps=-5 is invalid"),
    (_with(params={"width": 16, "staircase": True}), "staircase=true needs decay_steps"),
    (_with(params={"width": 16, "l2_form": "double"}), "l2_form='double' is invalid: use one of sum, half"),
    (_with(params={"width": 16, "split": "keras"}), "use one of random, first, last, tensorflow, theano"),
    (_with(params={"width": 16, "loss": "positive_ce"}), "loss positive_ce is for two classes"),
    (_with(claim=[{"text": "t", "kind": "higher", "metric": "test_accuracy", "x": "a", "y": "b"}]),
     "[[claim]] 1: post is missing: name the post it comes from"),
    (_with(claim=[{"post": "tf-hyperparameters", "text": "t", "kind": "higher", "metric": "test_accuracy", "x": "a",
                   "y": "b"}]), "[[claim]] 1: origin = None: write origin = \"post\""),
    (_with(claim=[{**SRC, "post": "tf-hyperparams", "text": "t", "kind": "higher", "metric": "test_accuracy",
                   "x": "a", "y": "b"}]), "unknown post 'tf-hyperparams': did you mean 'tf-hyperparameters'"),
    (_with(claim=[{**SRC, "text": "t", "kind": "near", "metric": "test_accuracy", "x": "a", "value": 0.9}]),
     "tolerance is missing"),
    (_with(claim=[{**SRC, "text": "t", "kind": "higher", "metric": "test_accuracy", "x": "a", "y": "b",
                   "tolerance": 0.1}]), "tolerance is for 'near' claims"),
    (_with(claim=[{**SRC, "text": "t", "kind": "not_lower", "metric": "test_accuracy", "x": "a", "y": "b",
                   "margin": -1}]), "margin = -1 must be a positive number"),
    (_with(claim=[{**SRC, "text": "t", "kind": "at_most", "metric": "epochs_to", "x": "a", "value": 3}]),
     "epochs_to needs the error it counts to"),
    (_with(claim=[{**SRC, "text": "t", "untestable": "the post gives no figure", "kind": "higher"}]),
     "an untestable claim gets no verdict, so no kind"),
    (_in_steps(_with(claim=[{**SRC, "text": "t", "kind": "lower", "metric": "train_loss", "x": "a", "y": "b",
                             "step": 99}]), 50), "step = 99 is past the study's 50 steps"),
    (_with(condition=[{"setting": "s", "post": "p", "ours": "o", "match": False}]),
     "a condition that does not match says what it changes"),
    (_with(condition=[{"setting": "s", "post": "p", "ours": "o", "match": False, "changes": "figures"}]),
     "why is missing"),
    (_with(condition=[{"setting": "s", "post": "p", "ours": "o", "match": "yes"}]), "write match = true or"),
    (_with(point=[{"name": "a", "l2": 0.0}, {"name": "a", "l2": 1e-3}]), "name 'a' is used twice"),
    (_with(point=[{"l2": 0.0}, {"l2": 0.0}]), "repeats [[point]] 1"),
    (_with(point=[{"width": 8}]), "width is fixed in [params]"),
])
def test_bad_evidence_is_one_line_that_names_the_fix(data, message):
    with pytest.raises(BadInput) as info:
        toml_spec.parse(data)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_every_shipped_blog_study_is_a_valid_spec_with_claims():
    from pathlib import Path

    files = sorted((Path(__file__).parents[2] / "studies" / "blog").glob("*.toml"))
    assert files
    for path in files:
        spec = toml_spec.read(path)
        assert spec.repeats >= 2 and spec.claims and spec.section and spec.about, path.name
        assert spec.conditions, path.name
        figures = [r for r in spec.references if "valid_accuracy" in r or "test_accuracy" in r]
        assert spec.post_train_images or not figures, path.name  # the post's figures come with its data size
        for claim in spec.claims:  # each names its post and says whether the post concludes it
            assert claim["post"] in evidence.POSTS and claim["origin"] in evidence.ORIGINS, (path.name, claim["text"])
