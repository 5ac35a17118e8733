"""The posts' conditions as training parameters, each against an independent computation in NumPy:
a decay counted in steps (TensorFlow's formula), both L2 forms and squared-error reductions, the toy
post's loss, the posts' train/validation splits, a length in steps."""

from __future__ import annotations

import numpy as np
import pytest

from storage.contract.errors import BadInput
from storage.contract.params import resolve
from workers import compiled
from workers.data import load, split_indices
from workers.nn.init import initial_values
from workers.nn.models import mlp_layout
from workers.schedules import learning_rate
from workers.train import train


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def _tf_exponential_decay(lr, step, decay_steps, decay, staircase):
    """TensorFlow's exponential_decay written out: lr * decay ** (global_step / decay_steps)."""
    p = np.asarray(step, dtype=np.float64) / decay_steps
    return lr * decay ** (np.floor(p) if staircase else p)


@pytest.mark.parametrize("staircase", [False, True])
def test_a_decay_counted_in_steps_is_tensorflows_exponential_decay(staircase):
    config = resolve("mlp", dict(lr=0.8, schedule="exponential", decay=0.99, decay_steps=550, staircase=staircase))
    steps = np.arange(0, 30_001, 97)
    ours = [learning_rate(config, epoch=int(s // 190), epochs=158, step=int(s)) for s in steps]
    np.testing.assert_allclose(ours, _tf_exponential_decay(0.8, steps, 550, 0.99, staircase), rtol=1e-12)
    # the post's end of run: about 0.46 after 30,000 steps (the per-epoch decay of 158 short epochs: 0.16)
    assert learning_rate(config, 157, 158, 30_000) == pytest.approx(0.8 * 0.99 ** (54 if staircase else 30_000 / 550))
    per_epoch = resolve("mlp", dict(lr=0.8, schedule="exponential", decay=0.99))
    assert learning_rate(per_epoch, 157, 158, 30_000) == pytest.approx(0.8 * 0.99 ** 157)


def test_the_linear_schedule_runs_over_its_stated_horizon():
    config = resolve("mlp", dict(lr=1e-3, lr_end=1e-4, schedule="linear", lr_horizon=100))
    # the tutorial's numpy.arange(start, end, (end - start) / n_epochs), then held at the end
    tutorial = np.arange(1e-3, 1e-4, (1e-4 - 1e-3) / 100)
    np.testing.assert_allclose([learning_rate(config, e, 20) for e in range(20)], tutorial[:20], rtol=1e-9)
    assert learning_rate(config, 150, 200) == pytest.approx(1e-4)


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("l2_form,factor", [("sum", 2.0), ("half", 1.0)])
def test_sgd_with_a_stepwise_decay_and_either_l2_form_is_numpys(digits, l2_form, factor):
    """Logistic regression trained 7 steps by the compiled step against the same SGD in float64 NumPy:
    the rate of each step from TensorFlow's formula, the gradient of lambda * sum(w^2) (factor 2) or of
    lambda * sum(w^2) / 2 (factor 1)."""
    params = dict(depth=0, batch_size=50, optimizer="sgd", lr=0.5, schedule="exponential", decay=0.5,
                  decay_steps=2, staircase=True, l2=0.01, l2_form=l2_form, ema=0.0)
    result = train("mlp", params, digits, steps=7, seed=3)
    assert (result.steps_run, result.epochs_run, result.steps_per_epoch) == (7, 1, len(digits.x_train) // 50)
    net = compiled.network("mlp", resolve("mlp", params), digits.image_shape, digits.n_classes)
    w_ours, b_ours = (p.get_value() for p in net.params)

    layout = mlp_layout(64, 0, 0, 10)
    w, b = (a.astype(np.float64) for a in initial_values(layout, "glorot", np.random.default_rng(3)))
    x = digits.x_train.reshape(len(digits.x_train), -1).astype(np.float64)
    order = np.random.default_rng(3).permutation(len(x))
    for step in range(7):
        idx = order[step * 50:(step + 1) * 50]
        p = _softmax(x[idx] @ w + b)
        p[np.arange(50), digits.y_train[idx]] -= 1.0
        lr = _tf_exponential_decay(0.5, step, 2, 0.5, True)
        grad_w = x[idx].T @ p / 50 + factor * 0.01 * w
        w, b = w - lr * grad_w, b - lr * p.mean(axis=0)
    np.testing.assert_allclose(w_ours, w, atol=2e-5)
    np.testing.assert_allclose(b_ours, b, atol=2e-5)


def _loss_function(config: dict, n_classes: int):
    import pytensor
    import pytensor.tensor as pt

    from workers.nn import losses

    logits, y = pt.matrix("logits", dtype="float64", shape=(None, n_classes)), pt.ivector("y")
    return pytensor.function([logits, y], losses.loss(config, logits, y))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_both_squared_error_reductions_are_numpys(reduction):
    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(6, 10)), rng.integers(0, 10, 6).astype(np.int32)
    squared = (_softmax(logits) - np.eye(10)[y]) ** 2
    expected = squared.sum(axis=1).mean() if reduction == "sum" else squared.mean()  # T.mean(T.sqr(...))
    config = dict(loss="mse", mse_reduction=reduction)
    assert float(_loss_function(config, 10)(logits, y)) == pytest.approx(expected, rel=1e-12)


def test_the_toy_posts_loss_is_its_clipped_one_sided_cross_entropy():
    rng = np.random.default_rng(1)
    logits, y = rng.normal(size=(8, 2)) * 30, rng.integers(0, 2, 8).astype(np.int32)
    p1 = _softmax(logits)[:, 1]
    expected = -np.mean(y * np.log(np.clip(p1, 1e-10, 1.0)))  # -reduce_mean(y_ * log(clip_by_value(y, 1e-10, 1)))
    f = _loss_function(dict(loss="positive_ce"), 2)
    assert float(f(logits, y)) == pytest.approx(expected, rel=1e-12)
    # its signature in the post: class 1 predicted everywhere gives a loss of zero and an MSE of the 0-share
    always_one = np.tile([-50.0, 50.0], (8, 1))
    assert abs(float(f(always_one, y))) < 1e-12
    assert np.mean((_softmax(always_one)[:, 1] - y) ** 2) == pytest.approx(np.mean(y == 0))


def test_the_toy_loss_refuses_ten_classes(digits):
    with pytest.raises(BadInput, match="positive_ce is for two classes"):
        train("mlp", dict(loss="positive_ce", width=8), digits, epochs=1)


@pytest.mark.parametrize("n,split,valid,train", [
    (60_000, "tensorflow", 5_000, 55_000), (60_000, "theano", 10_000, 50_000),
    (24_000, "tensorflow", 5_000, 19_000), (24_000, "theano", 10_000, 14_000),
])
def test_the_posts_splits_keep_their_validation_size(n, split, valid, train):
    v, t = split_indices(n, 0.2, split)
    assert (len(v), len(t)) == (valid, train)
    assert np.array_equal(np.sort(np.concatenate([v, t])), np.arange(n))
    # TensorFlow validates on the first images of the file, Theano's pickle on the last
    assert (v[0], v[-1]) == ((0, valid - 1) if split == "tensorflow" else (n - valid, n - 1))


@pytest.mark.parametrize("split,size,valid", [("tensorflow", 0.2, 120), ("theano", 0.2, 240), ("first", 10_000, 240),
                                             ("last", 5_000, 120), ("first", 0.25, 360)])
def test_a_file_too_small_for_the_posts_split_keeps_its_share(split, size, valid):
    """The bundled digits (1,438 training images) cannot hold 5,000 or 10,000 validation images: they get
    the share MNIST's 60,000 would (a twelfth, a sixth); a share stays a share."""
    v, t = split_indices(1438, size, split)
    assert (len(v), len(t)) == (valid, 1438 - valid)
    assert v[0] == (0 if split in ("tensorflow", "first") else 1438 - valid)


def test_the_posts_split_of_the_real_mnist_files(mnist_dir):
    from workers.data import mnist

    data = load(f"idx:{mnist_dir}", split="tensorflow")
    assert (len(data.x_train), len(data.x_valid), len(data.x_test)) == (19_000, 5_000, 10_000)
    x, _, _, _ = mnist.read(mnist_dir)
    assert np.array_equal(data.x_valid, x[:5_000].astype(np.float32) / 255)


def test_a_length_in_steps_ends_after_that_many_updates(digits):
    seen = []
    result = train("mlp", dict(width=8, batch_size=100), digits, steps=25, on_epoch=seen.append)
    per_epoch = len(digits.x_train) // 100
    assert (result.steps_run, result.epochs_run, result.steps_per_epoch) == (25, 3, per_epoch)
    assert [r.epoch for r in seen] == [1, 2, 3]
    with pytest.raises(BadInput, match="in epochs or in steps, not both"):
        train("mlp", dict(width=8), digits, epochs=2, steps=25)


def test_a_second_hidden_layer_of_its_own_width():
    shapes = [p.shape for p in mlp_layout(2, 3, 2, 2, width2=2)]
    assert shapes == [(2, 3), (3,), (3, 2), (2,), (2, 2), (2,)]


def test_the_share_of_near_zero_weights_counts_weights_not_biases(digits):
    """L1 drives some weights to zero (their moving average, where its steps cancel out); the share is
    NumPy's count over the weights the network evaluates with, and without L1 next to none."""
    params = dict(width=16, batch_size=50, lr=0.5, schedule="constant", l1=3e-3, l2=0.0, ema=0.99)
    result = train("mlp", params, digits, epochs=5)
    net = compiled.network("mlp", resolve("mlp", params), digits.image_shape, digits.n_classes)
    weights = [p.get_value() for p, s in zip(net.shadows, net.layout) if s.is_weight]
    expected = sum((np.abs(w) < 1e-4).sum() for w in weights) / sum(w.size for w in weights)
    assert result.near_zero == pytest.approx(expected) and result.near_zero > 0.02
    assert train("mlp", dict(params, l1=0.0), digits, epochs=5).near_zero < 0.005


def test_truncated_normal_weights_lie_within_two_deviations():
    from workers.nn.init import truncated_normal

    w = truncated_normal(np.random.default_rng(0), (500, 784), 784, 500)
    assert np.abs(w).max() <= 0.2 and abs(w.std() - 0.088) < 0.002  # a normal cut at 2 sigma: 0.88 sigma
    assert np.array_equal(w, truncated_normal(np.random.default_rng(0), (500, 784), 784, 500))


def test_leaky_relus_slope_is_a_parameter():
    import pytensor.tensor as pt

    from workers.nn.layers import activation

    x = pt.vector("x", dtype="float64")
    f = activation("leaky_relu", 0.2)(x)
    assert np.allclose(f.eval({x: np.array([-1.0, 2.0])}), [-0.2, 2.0])


@pytest.mark.parametrize("split,valid", [("first", slice(0, 300)), ("last", slice(700, 1000))])
def test_first_and_last_splits_hold_out_valid_size_images(split, valid):
    v, t = split_indices(1000, 300, split)
    assert np.array_equal(v, np.arange(1000)[valid]) and len(t) == 700


def test_the_objective_logged_is_the_loss_plus_the_penalty(digits):
    """logged_loss = "objective": the recorded loss is the data loss plus l2 * sum(w^2) of the weights the
    step started from, as TensorFlow's programs print it; the update is the same either way."""
    params = dict(width=8, batch_size=50, lr=1e-30, schedule="constant", l2=0.5, ema=0.0)  # weights stay put
    data_rec, objective_rec = [], []
    train("mlp", params, digits, steps=1, seed=4, on_epoch=data_rec.append)
    train("mlp", dict(params, logged_loss="objective"), digits, steps=1, seed=4, on_epoch=objective_rec.append)
    layout = mlp_layout(64, 8, 1, 10)
    penalty = sum((w.astype(np.float64) ** 2).sum() for w, spec in
                  zip(initial_values(layout, "glorot", np.random.default_rng(4)), layout) if spec.is_weight)
    assert objective_rec[0].train_loss - data_rec[0].train_loss == pytest.approx(0.5 * penalty, rel=1e-5)


def test_the_clean_training_error_is_the_kept_networks_on_the_whole_training_set(digits):
    from workers import metrics

    params = dict(width=16, batch_size=50, dropout=0.5, ema=0.0, schedule="constant", lr=0.3)
    result = train("mlp", params, digits, epochs=3)
    net = compiled.network("mlp", resolve("mlp", params), digits.image_shape, digits.n_classes)
    assert result.train_error_clean == metrics.error(net.probabilities(digits.x_train), digits.y_train)
