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
        checkpoints.save(state, tmp_path / f"{state.epoch}.npz")
        saved[state.epoch] = tmp_path / f"{state.epoch}.npz"

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


def test_a_studys_checkpoints_are_named_written_found_for_a_retry_and_removed(digits, tmp_path, caplog):
    from workers.checkpoints import Checkpoints, fresh

    params, states, waited = dict(width=16, batch_size=50), [], []
    train("mlp", params, digits, epochs=3, every=1, on_checkpoint=states.append)
    saved = Checkpoints(tmp_path, "s1", every=1)
    saved.saver(4, before=lambda: waited.append(4))(states[1])  # trial 4 stopped after epoch 2
    saved.path(5).mkdir(parents=True)  # trial 5 left a folder where its file goes
    assert waited == [4] and saved.path(4) == tmp_path / "checkpoints" / "s1-4.npz"
    left = saved.left([3, 4, 5])  # trial 6 retries 5, which retried 4, which retried 3 (none left)
    assert left == [(5, saved.path(5)), (4, saved.path(4))]
    found = list(saved.usable(6, left, lambda: fresh("mlp", params, digits), epochs=3))
    assert [(number, state.epoch) for number, _, state in found] == [(4, 2)]
    assert "trial 6: checkpoint" in caplog.text and "s1-5.npz is not a file" in caplog.text
    saved.remove(6, 4, 5)
    assert not saved.path(4).exists() and saved.path(5).is_dir()  # a folder is left to be removed by hand
    assert "not removed" not in caplog.text  # and is no failure to remove a file


def test_a_checkpoint_that_cannot_be_written_is_one_line_and_no_more_are_tried(digits, tmp_path, caplog):
    from workers.checkpoints import Checkpoints

    states = []
    train("mlp", dict(width=16, batch_size=50), digits, epochs=3, every=1, on_checkpoint=states.append)
    (tmp_path / "a-file").write_text("not a folder")
    save = Checkpoints(tmp_path / "a-file", "s1", every=1).saver(1, before=lambda: None)
    save(states[0])
    save(states[1])
    assert caplog.text.count("trial 1: no more checkpoints") == 1
