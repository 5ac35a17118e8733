"""Weight initialisation schemes (NumPy, seeded): glorot, uniform01, uniform_pm1; biases start at zero."""

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


SCHEMES = {"glorot": glorot, "uniform01": uniform01, "uniform_pm1": uniform_pm1}


def initial_values(layout, scheme: str, rng: np.random.Generator, dtype="float32") -> list[np.ndarray]:
    """Initial arrays for a parameter `layout` (list of ParamSpec), weights by `scheme`, biases zero."""
    draw = SCHEMES[scheme]
    return [
        (draw(rng, p.shape, p.fan_in, p.fan_out) if p.is_weight else np.zeros(p.shape)).astype(dtype)
        for p in layout
    ]
