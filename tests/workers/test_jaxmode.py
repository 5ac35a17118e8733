"""The JAX mode's donated buffers: which inputs, same results as PyTensor's own JAX mode, copies survive."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from workers.nn import layers, losses, updates
from workers.nn.jaxmode import jax_mode

RNG = np.random.default_rng(7)


def _adam_step(mode, dropout: bool, seed: int = 7):
    """A softmax layer's Adam step (with input dropout), compiled in `mode`: (function, params, state, rng)."""
    start = np.random.default_rng(seed).standard_normal((6, 5)).astype("float32")
    w = pytensor.shared(start, shape=(6, 5), name="W")
    b = pytensor.shared(np.zeros(5, "float32"), shape=(5,), name="b")
    x, y = pt.matrix("x", dtype="float32", shape=(None, 6)), pt.ivector("y")
    rng = pytensor.shared(np.random.default_rng(3), name="rng") if dropout else None
    h, next_rng = layers.dropout(x, np.float32(0.25), rng) if dropout else (x, None)
    loss = losses.cross_entropy(layers.dense(h, w, b), y)
    step = updates.build("adam", loss, [w, b], {"lr": np.float32(0.01), "beta1": np.float32(0.9),
                                                 "beta2": np.float32(0.999), "eps": np.float32(1e-8)})
    state = updates.state_of(step, [w, b])
    if dropout:
        step[rng] = next_rng
    return pytensor.function([x, y], loss, updates=step, mode=mode), [w, b], state, rng


def test_updated_shared_variables_are_donated_except_random_generators():
    f, params, state, rng = _adam_step(jax_mode(), dropout=True)
    inputs = f.maker.fgraph.inputs
    donated = {inputs[i].name for i in f.maker.linker.donated()}
    assert donated == {p.name for p in params} | {s.name for s in state}
    assert rng.name not in donated and "x" not in donated and "y" not in donated


@pytest.mark.parametrize("dropout", [False, True])
def test_donating_gives_the_results_of_pytensors_jax_mode(dropout):
    x = RNG.random((8, 6), dtype=np.float32)
    y = RNG.integers(0, 5, 8).astype("int32")
    runs = []
    for mode in ("JAX", jax_mode()):
        f, params, state, _ = _adam_step(mode, dropout)
        losses_ = [float(f(x, y)) for _ in range(4)]
        runs.append((losses_, [p.get_value() for p in params + state]))
    (loss_a, values_a), (loss_b, values_b) = runs
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-6)
    for a, b in zip(values_a, values_b):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_a_copy_taken_with_get_value_survives_later_steps_and_numpy_values_are_not_overwritten():
    f, (w, _), _, _ = _adam_step(jax_mode(), dropout=False)
    start = RNG.standard_normal((6, 5)).astype("float32")
    kept = start.copy()
    w.set_value(start, borrow=True)
    x, y = RNG.random((4, 6), dtype=np.float32), np.zeros(4, "int32")
    f(x, y)
    snapshot = w.get_value()  # a copy (borrow=False)
    borrowed = w.get_value(borrow=True)
    f(x, y)
    np.testing.assert_array_equal(start, kept)  # a NumPy value handed in is copied, never written over
    assert np.isfinite(np.asarray(snapshot)).all()
    assert not np.allclose(np.asarray(snapshot), np.asarray(w.get_value()))
    with pytest.raises(RuntimeError, match="deleted"):
        np.asarray(borrowed)  # the documented price: a borrowed value does not outlive the next step
