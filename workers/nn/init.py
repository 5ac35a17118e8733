"""Weight initialisation (NumPy, seeded): glorot, uniform01, uniform_pm1, truncated_normal; biases start at zero."""

from __future__ import annotations

import numpy as np


def glorot(rng: np.random.Generator, shape, fan_in: int, fan_out: int) -> np.ndarray:
    """Glorot/Xavier uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out))."""
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=shape)


def uniform01(rng: np.random.Generator, shape, fan_in: int, fan_out: int) -> np.ndarray:
    """U[0, 1): the initialisation of the forum question's MLP that does not learn."""
    return rng.uniform(0.0, 1.0, size=shape)


def uniform_pm1(rng: np.random.Generator, shape, fan_in: int, fan_out: int) -> np.ndarray:
    """U[-1, 1): learns, slowly (the same forum question)."""
    return rng.uniform(-1.0, 1.0, size=shape)


TRUNCATED_STD = 0.1  # the TensorFlow book's truncated_normal_initializer(stddev=0.1)


def truncated_normal(rng: np.random.Generator, shape, fan_in: int, fan_out: int) -> np.ndarray:
    """N(0, 0.1^2) with every draw beyond two standard deviations drawn again (TensorFlow's truncated_normal)."""
    out = rng.normal(0.0, TRUNCATED_STD, size=shape)
    while (far := np.abs(out) > 2 * TRUNCATED_STD).any():
        out[far] = rng.normal(0.0, TRUNCATED_STD, size=int(far.sum()))
    return out


SCHEMES = {"glorot": glorot, "uniform01": uniform01, "uniform_pm1": uniform_pm1, "truncated_normal": truncated_normal}


def initial_values(layout, scheme: str, rng: np.random.Generator, dtype="float32") -> list[np.ndarray]:
    """Initial arrays for a parameter `layout` (list of ParamSpec), weights by `scheme`, biases zero."""
    draw = SCHEMES[scheme]
    return [
        (draw(rng, p.shape, p.fan_in, p.fan_out) if p.is_weight else np.zeros(p.shape)).astype(dtype)
        for p in layout
    ]
