"""Kept weights: the .npz a run leaves, read back by plain NumPy and by sweeper, judged as the run judged them."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from storage.contract.errors import BadInput
from workers import weights
from workers.data import load
from workers.train import train


@pytest.fixture(scope="module")
def digits():
    return load("digits")


@pytest.mark.parametrize("params", [dict(width=32, batch_size=50), dict(width=16, ema=0.0, dropout=0.2)],
                         ids=["moving-average", "dropout"])
def test_a_saved_run_evaluates_to_its_own_test_figures(params, digits, tmp_path):
    result = train("mlp", params, digits, epochs=3, seed=4)
    path = weights.save(result.weights, tmp_path / "w.npz")
    with np.load(path) as plain:  # NumPy alone reads it: layers by name, the description as JSON
        assert plain.files[:4] == ["dense0_W", "dense0_b", "dense1_W", "dense1_b"]
        meta = json.loads(str(plain["sweeper.json"]))
        assert plain["dense0_W"].shape == (64, params["width"]) and meta["image_shape"] == [8, 8]
    assert meta["params"]["width"] == params["width"] and meta["figures"]["test_error"] == result.test_error
    train("mlp", dict(params, lr=0.5), digits, epochs=1, seed=9)  # the compiled network is shared: overwrite it
    figures = weights.evaluate(weights.load(path), digits)
    assert figures["test_error"] == result.test_error  # to the last digit
    assert figures["report"] == result.report and figures["confident"] == result.confident


def test_the_evaluated_weights_are_the_kept_epoch_not_the_last(digits, tmp_path):
    """With patience, the best epoch's weights are restored before the test set: they are what is saved."""
    result = train("mlp", dict(width=16, ema=0.0, patience=2, lr=2.0), digits, epochs=6, seed=1)
    figures = weights.evaluate(weights.load(weights.save(result.weights, tmp_path / "w.npz")), digits)
    assert figures["test_error"] == result.test_error


def _npz(path, **arrays) -> None:
    with open(path, "wb") as out:
        np.savez(out, **arrays)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("not a zip"), "is not a sweeper weights file"),
    (lambda p: _npz(p, a=np.zeros(3)), "is not a sweeper weights file"),
    (lambda p: _npz(p, **{"sweeper.json": np.asarray(json.dumps({"format": "other"}))}), "not a sweeper weights"),
    (lambda p: p.write_bytes(zipfile.ZipFile.__doc__.encode()[:10]), "is not a sweeper weights file"),
    (lambda p: None, "no file"),
])
def test_a_file_that_is_not_ours_is_one_line(make, message, tmp_path):
    path = tmp_path / "w.npz"
    make(path)
    with pytest.raises(BadInput) as err:
        weights.load(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_damaged_file_and_another_input_shape_are_one_line(digits, tmp_path):
    result = train("mlp", dict(width=16), digits, epochs=1)
    path = weights.save(result.weights, tmp_path / "w.npz")
    with np.load(path) as plain:
        arrays = {k: plain[k] for k in plain.files}
    _npz(tmp_path / "cut.npz", **{**arrays, "dense0_W": arrays["dense0_W"][:3]})
    with pytest.raises(BadInput, match="layer dense0_W has shape \\[3, 16\\], not \\[64, 16\\]"):
        weights.load(tmp_path / "cut.npz")
    with pytest.raises(BadInput, match="the network takes 8x8 images of 10 classes; .* has 1x2 images of 2"):
        weights.evaluate(weights.load(path), load("xor"))
    with pytest.raises(BadInput, match="folder .* does not exist"):
        weights.save(result.weights, tmp_path / "no" / "w.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.npz", "w.npz"]  # nothing half written
