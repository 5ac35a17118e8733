"""The training core end to end: reproducibility, compile-once, divergence, early stopping, schedules, penalties."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from storage.contract.errors import BadInput
from storage.contract.params import resolve
from tests.conftest import ROOT
from workers import compiled
from workers.data import load
from workers.schedules import learning_rate
from workers.train import Diverged, EpochRecord, train

SMALL = dict(width=32, batch_size=50)


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def _run(data, params, epochs=3, seed=0, model="mlp"):
    records = []
    result = train(model, params, data, epochs=epochs, seed=seed, on_epoch=records.append)
    return records, result


def test_same_seed_bit_identical_with_dropout(digits):
    params = dict(SMALL, dropout=0.3, input_dropout=0.1)
    a_records, a = _run(digits, params)
    _run(digits, params, seed=5)  # another run in between must not leak state
    b_records, b = _run(digits, params)
    strip = [(r.train_loss, r.train_error, r.valid_error, r.lr) for r in a_records]
    assert strip == [(r.train_loss, r.train_error, r.valid_error, r.lr) for r in b_records]
    assert (a.test_error, a.valid_error) == (b.test_error, b.valid_error)


def test_dropout_masks_depend_on_seed(digits):
    params = dict(SMALL, dropout=0.5)
    a, _ = _run(digits, params, epochs=1, seed=1)
    b, _ = _run(digits, params, epochs=1, seed=2)
    assert a[0].train_loss != b[0].train_loss


def test_a_seed_draws_only_the_parts_it_is_given(digits):
    params = dict(SMALL, dropout=0.5)

    def figures(seed, draws):
        records, result = _run(digits, params, epochs=2, seed=seed) if draws is None else \
            (lambda r: (None, r))(train("mlp", params, digits, epochs=2, seed=seed, draws=draws, fixed_seed=7))
        return result.valid_error, result.test_error, result.report["accuracy"]

    assert figures(1, ()) == figures(2, ()) == figures(7, None)  # nothing drawn: every seed runs as seed 7
    for part in ("init", "order", "dropout"):  # each part alone makes two seeds differ
        assert figures(1, (part,)) != figures(2, (part,)), part
    assert figures(3, ("init", "order", "dropout")) == figures(3, None)  # the default draws all three


def test_compile_once_per_architecture(digits):
    _run(digits, dict(SMALL, lr=0.1), epochs=1)
    before = compiled.compiles
    for params in (dict(lr=0.5, l1=1e-4, l2=0.0, momentum=0.5), dict(lr=0.01, l2=1e-3, decay=0.9),
                   dict(lr=0.2, schedule="linear", lr_end=0.01, init="uniform_pm1")):
        records, result = _run(digits, dict(SMALL, **params), epochs=1)
        assert math.isfinite(result.test_error)
    assert compiled.compiles == before, "changing symbolic hyperparameters must not recompile"
    _run(digits, dict(SMALL, width=33), epochs=1)
    assert compiled.compiles == before + 1, "a new width is a new architecture"


def test_learning_rate_reaches_the_compiled_function(digits):
    """lr = 0 would leave the weights as initialised: same loss every epoch (a symbolic lr that is ignored fails)."""
    frozen, _ = _run(digits, dict(SMALL, lr=1e-30, schedule="constant", l2=0.0, ema=0.0), epochs=2)
    assert frozen[0].train_loss == pytest.approx(frozen[1].train_loss, rel=1e-6)
    moving, _ = _run(digits, dict(SMALL, lr=0.5, schedule="constant", l2=0.0, ema=0.0), epochs=2)
    assert moving[1].train_loss < moving[0].train_loss * 0.8


def test_divergence_is_reported_with_epoch(digits):
    seen = []
    with pytest.raises(Diverged, match=r"^diverged at epoch \d+$") as caught:
        train("mlp", dict(SMALL, lr=1e4, schedule="constant"), digits, epochs=10, on_epoch=seen.append)
    assert caught.value.epoch == len(seen) + 1 <= 10
    assert all(math.isfinite(r.train_loss) for r in seen)


@pytest.mark.slow
def test_every_optimizer_and_activation_trains(digits):
    for optimizer, lr in [("sgd", 0.3), ("momentum", 0.05), ("nesterov", 0.05), ("adagrad", 0.05),
                          ("rmsprop", 0.003), ("adadelta", 1.0), ("adam", 0.003)]:
        records, result = _run(digits, dict(SMALL, optimizer=optimizer, lr=lr, schedule="constant"), epochs=4)
        assert records[-1].valid_error < 0.2, (optimizer, records[-1])
    for activation in ("tanh", "leaky_relu", "sigmoid", "elu", "softplus"):
        records, _ = _run(digits, dict(SMALL, activation=activation, optimizer="adam", lr=0.01,
                                       schedule="constant"), epochs=4)
        assert records[-1].valid_error < 0.3, (activation, records[-1])


def test_early_stopping_theano_patience(digits):
    records, result = _run(digits, dict(SMALL, patience=2, improvement_threshold=0.995, lr=1e-30,
                                        schedule="constant", ema=0.0), epochs=20)
    # nothing improves after epoch 1, so patience (2 epochs) ends the run at epoch 2
    assert result.epochs_run == 2 and result.stopped_early and len(records) == 2
    records, result = _run(digits, dict(SMALL, patience=2, lr=0.3), epochs=6)
    assert result.valid_error == min(r.valid_error for r in records)


def test_l2_shrinks_weights_not_biases(digits):
    """A huge L2 with no data gradient to speak of drives weights, never biases, to zero."""
    net_params = dict(SMALL, lr=0.05, l2=5.0, schedule="constant", ema=0.0, init="uniform_pm1", depth=1)
    _run(digits, net_params, epochs=2)
    net = compiled.network("mlp", resolve("mlp", net_params), digits.image_shape, digits.n_classes)
    weights = [p.get_value() for p, s in zip(net.params, net.layout) if s.is_weight]
    biases = [p.get_value() for p, s in zip(net.params, net.layout) if not s.is_weight]
    assert max(np.abs(w).max() for w in weights) < 1e-3
    assert max(np.abs(b).max() for b in biases) > 1e-3


def test_penalties_are_the_l1_and_squared_l2_of_the_tensors_given():
    """The formulas against NumPy; that only weights are given (never biases) is
    test_l2_shrinks_weights_not_biases's job, on a trained network."""
    import pytensor

    from workers.nn import penalties

    rng = np.random.default_rng(3)
    arrays = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(3, 2)).astype(np.float32)]
    shared = [pytensor.shared(a) for a in arrays]
    l1, l2 = sum(np.abs(a).sum() for a in arrays), sum((a.astype(np.float64) ** 2).sum() for a in arrays)
    assert float(penalties.l1(shared).eval()) == pytest.approx(l1, rel=1e-6)
    assert float(penalties.l2(shared).eval()) == pytest.approx(l2, rel=1e-6)
    assert float(penalties.regularize(0.5, shared, 0.1, 0.01).eval()) == pytest.approx(0.5 + 0.1 * l1 + 0.01 * l2,
                                                                                        rel=1e-6)


def test_schedules():
    base = resolve("mlp", {"lr": 1.0, "decay": 0.5, "lr_end": 0.1})
    assert [learning_rate(dict(base, schedule="constant"), e, 4) for e in range(4)] == [1.0] * 4
    assert learning_rate(dict(base, schedule="linear"), 3, 4) == pytest.approx(0.1)
    assert learning_rate(dict(base, schedule="linear"), 0, 4) == pytest.approx(1.0)
    assert learning_rate(dict(base, schedule="exponential"), 2, 4) == pytest.approx(0.25)
    assert learning_rate(dict(base, schedule="inverse_time"), 2, 4) == pytest.approx(0.5)


def test_bad_parameters_are_bad_input(digits):
    for params, message in [({"lrr": 1}, "did you mean 'lr'"), ({"dropout": 1.0}, "dropout"),
                            ({"optimizer": "sgdd"}, "one of sgd"), ({"width": 0}, "width"),
                            ({"schedule": "exponential", "decay": 2.0}, "decay")]:
        with pytest.raises(BadInput, match=message):
            train("mlp", params, digits, epochs=1)
    with pytest.raises(BadInput, match="epochs"):
        train("mlp", {}, digits, epochs=0)


def test_result_figures(digits):
    records, result = _run(digits, dict(SMALL, lr=0.3), epochs=3)
    assert all(isinstance(r, EpochRecord) for r in records) and [r.epoch for r in records] == [1, 2, 3]
    assert result.report["accuracy"] == pytest.approx(1 - result.test_error)
    assert result.test_correct.shape == digits.y_test.shape and result.test_correct.dtype == bool
    assert result.test_correct.mean() == pytest.approx(1 - result.test_error)
    assert 0 < result.confident["n"] <= len(digits.y_test)
    assert 0.5 < result.confident["precision"] <= 1.0


def test_lenet_on_small_images_pads(digits):
    records, result = _run(digits, dict(width=16, conv1_maps=4, conv2_maps=8, batch_size=50, lr=0.01), epochs=4,
                           model="lenet")
    assert records[-1].valid_error < 0.5


def test_batches_above_127_on_both_losses(digits):
    """JAX's arange of a symbolic batch size overflowed its int8 constants for batches > 127."""
    for loss in ("cross_entropy", "mse"):
        records, _ = _run(digits, dict(SMALL, batch_size=512, loss=loss), epochs=1)
        assert math.isfinite(records[0].train_loss)


def _library_run(code: str, tmp_path) -> subprocess.CompletedProcess:
    """`code` in a fresh Python process, without this process's PyTensor flags and backend."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTENSOR_FLAGS", "SWEEPER_BACKEND")}
    env["SWEEPER_COMPILEDIR"] = str(tmp_path)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)


@pytest.mark.slow
def test_library_use_configures_explicitly_even_after_importing_jax(tmp_path):
    """`import jax`, then runtime.configure(), then the training core: float32 (JAX keeps its settings)."""
    done = _library_run("import jax, json\n"
                        "from workers import runtime\n"
                        "runtime.configure()\n"
                        "from workers.data import load\n"
                        "from workers.train import train\n"
                        "import pytensor\n"
                        "r = train('mlp', {'width': 20}, load('digits'), epochs=2, seed=0)\n"
                        "print(json.dumps([pytensor.config.floatX, r.valid_error]))\n", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    floatx, valid_error = json.loads(done.stdout.strip().splitlines()[-1])
    assert floatx == "float32" and valid_error < 0.2


@pytest.mark.slow
def test_importing_configures_nothing_and_training_unconfigured_says_the_fix(tmp_path):
    done = _library_run("import sys\n"
                        "from workers.data import load\n"
                        "from workers.train import train\n"
                        "import pytensor\n"
                        "assert pytensor.config.floatX == 'float64', 'an import configured PyTensor'\n"
                        "train('mlp', {'width': 20}, load('digits'), epochs=1)\n", tmp_path)
    assert done.returncode == 1
    assert "RuntimeError: workers.runtime.configure() was not called" in done.stderr, done.stderr[-2000:]


def test_prepare_leaves_no_trace_in_the_next_run(digits):
    """The warm-up step of prepare() (worker start-up) changes nothing a later train() computes."""
    from workers.train import prepare

    params = dict(SMALL, width=29, optimizer="adam", lr=0.01, dropout=0.2)
    before, _ = _run(digits, params, epochs=2)
    prepare("mlp", params, digits)
    after, _ = _run(digits, params, epochs=2)
    assert [(r.train_loss, r.valid_error) for r in before] == [(r.train_loss, r.valid_error) for r in after]
