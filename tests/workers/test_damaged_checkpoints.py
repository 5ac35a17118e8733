"""A retry that finds a readable but damaged checkpoint: a real worker process, a real SQLite file, a
real checkpoint and epoch rows of the trial it retries, then damaged on disk.

Whatever the damage, the checkpoint is passed over with one log line and the retry trains from epoch
1 to the end: it completes, each of its epochs has one row, nothing is left RUNNING. And no false
alarm: a sound checkpoint matches its trial.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import optuna
import pytest

from tests.workers.test_worker import create, epoch_rows, worker

PARAMS = dict(width=32, schedule="constant", batch_size=64, dropout=0.1)  # the spec's of `create` below


@pytest.fixture(scope="module")
def saved():
    """A real run of the trial's parameters: its state at epoch 2 and its epoch records 1 and 2."""
    from workers.data import load
    from workers.train import train

    states, records = {}, []
    train("mlp", PARAMS, load("digits"), epochs=4, every=2, on_epoch=records.append,
          on_checkpoint=lambda state: states.setdefault(state.epoch, state))
    return states[2], [r for r in records if r.epoch <= 2]


def _damage(kind: str, state):
    """`state` (a workers.state.TrainingState) with one kind of damage (a fresh copy)."""
    net = {g: [np.array(a) for a in state.net[g]] for g in ("params", "shadows", "state")}
    net["rng"] = state.net["rng"]
    damaged = replace(state, net=net)
    if kind == "wrong shapes":
        net["params"][0] = np.zeros(net["params"][0].shape[::-1], net["params"][0].dtype)
    elif kind == "epoch of the wrong type":
        damaged = replace(damaged, epoch="2")
    elif kind == "shuffle state of the wrong type":
        damaged = replace(damaged, shuffle=[1, 2])
    elif kind == "NaN weights":
        net["params"][2][0, 0] = np.nan
    return damaged


@pytest.mark.parametrize("params", [
    dict(width=32, batch_size=50, dropout=0.3, input_dropout=0.1, optimizer="adam", lr=0.01),  # generators
    dict(width=32, batch_size=50, optimizer="momentum", ema=0.9, schedule="exponential", decay=0.8),  # averages
    dict(width=16, batch_size=50, patience=3, ema=0.0, optimizer="adadelta", lr=1.0),  # patience's kept epoch
], ids=["dropout-adam", "ema-momentum", "patience-adadelta"])
def test_a_sound_checkpoint_matches_its_trial_and_no_other(params, tmp_path):
    """No false alarm: a state as train() saves it, read back, matches a fresh network of its parameters."""
    from storage.contract.params import resolve
    from workers import checkpoints, compiled
    from workers.data import load
    from workers.train import train

    data, states = load("digits"), []
    train("mlp", params, data, epochs=4, every=2, on_checkpoint=states.append)
    checkpoints.save(states[0], tmp_path / "2.npz")
    state = checkpoints.load(tmp_path / "2.npz")
    like = compiled.network("mlp", resolve("mlp", params), data.image_shape, data.n_classes).training_state()
    assert checkpoints.mismatch(state, like, 4) is None
    assert checkpoints.mismatch(state, like, 2) == "it is at epoch 2, not before this trial's last (2)"
    wider = compiled.network("mlp", resolve("mlp", dict(params, width=24)), data.image_shape, data.n_classes)
    assert checkpoints.mismatch(state, wider.training_state(), 4).startswith("params/0 has shape")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["wrong shapes", "epoch of the wrong type", "shuffle state of the wrong type",
                                  "NaN weights", "a directory"])
def test_a_damaged_checkpoint_is_passed_over_and_the_retry_completes_from_epoch_1(kind, saved, sqlite_url, tmp_path):
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    from storage import epochs, studies
    from storage.contract.errors import optuna_experimental
    from workers import checkpoints, runtime

    handle = create(sqlite_url, epochs=4, extra="n_trials = 1\ncheckpoint_every = 2", params="dropout = 0.1")
    trial = handle.study.ask()  # trial 0 ran two epochs, wrote its checkpoint, and its worker died
    state, records = saved
    for r in records:
        epochs.write(handle.storage.engine, study_id=handle.study_id, trial_id=trial._trial_id, trial=0,
                     epoch=r.epoch, **{k: getattr(r, k) for k in epochs.COLUMNS})
    handle.study.tell(trial, state=optuna.trial.TrialState.FAIL)
    with optuna_experimental():
        RetryHeartbeatStaleTrialCallback(max_retry=3)(handle.study, handle.study.trials[0])
    folder = tmp_path / "sweeper.db-artifacts" / "checkpoints"  # beside the SQLite file of sqlite_url
    path = folder / f"{studies.uid(handle.storage, handle.study_id)}-0.npz"
    if kind == "a directory":
        path.mkdir(parents=True)
    else:
        checkpoints.save(replace(_damage(kind, state), mode=runtime.compile_mode()), path)

    done = worker(sqlite_url)

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    about = [line for line in done.stderr.splitlines() if path.name in line]
    assert len(about) == 1 and "trial 1: checkpoint" in about[0], done.stderr
    trials = optuna.load_study(study_name="w", storage=sqlite_url).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"], [t.user_attrs for t in trials]
    assert trials[1].user_attrs["outcome"]["epochs_run"] == 4
    rows = epoch_rows(sqlite_url)
    assert rows[rows["trial"] == 1]["epoch"].tolist() == [1, 2, 3, 4]
    if kind != "a directory":
        assert list(folder.iterdir()) == []  # removed once the trial ended
