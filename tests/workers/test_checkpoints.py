"""Checkpoints: a run resumed from its saved state (on disk and back) ends as the uninterrupted run, to the bit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from workers import checkpoints
from workers.data import load
from workers.train import train


@pytest.fixture(scope="module")
def digits():
    return load("digits")


@pytest.mark.parametrize("params", [
    dict(width=32, batch_size=50, dropout=0.3, input_dropout=0.1, optimizer="adam", lr=0.01),  # generators
    dict(width=32, batch_size=50, optimizer="momentum", ema=0.9, schedule="exponential", decay=0.8),  # averages
    dict(width=16, batch_size=50, patience=2, ema=0.0, optimizer="adadelta", lr=1.0),  # patience's kept epoch
], ids=["dropout-adam", "ema-momentum", "patience-adadelta"])
def test_a_resumed_run_ends_as_the_uninterrupted_one(params, digits, tmp_path):
    saved, records = {}, []

    def keep(state):
        checkpoints.save(state, tmp_path / f"{state['epoch']}.npz")
        saved[state["epoch"]] = tmp_path / f"{state['epoch']}.npz"

    whole = train("mlp", params, digits, epochs=7, seed=3, on_epoch=records.append, every=3, on_checkpoint=keep)
    assert sorted(saved) == ([3, 6] if whole.epochs_run == 7 else [e for e in (3, 6) if e < whole.epochs_run])
    for epoch, path in saved.items():
        train("mlp", dict(params, lr=0.5), digits, epochs=2, seed=11)  # the shared network trained elsewhere
        later = []
        resumed = train("mlp", params, digits, epochs=7, seed=3, on_epoch=later.append,
                        resume=checkpoints.load(path))
        assert [replace(r, seconds=0) for r in later] == [replace(r, seconds=0) for r in records if r.epoch > epoch]
        assert (resumed.valid_error, resumed.test_error, resumed.epochs_run, resumed.stopped_early) == \
            (whole.valid_error, whole.test_error, whole.epochs_run, whole.stopped_early)
        for a, b in zip(resumed.weights.arrays, whole.weights.arrays):
            np.testing.assert_array_equal(a, b)
