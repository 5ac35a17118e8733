"""Layers as plain functions of symbolic tensors: activations, dense, dropout, zero padding."""

from __future__ import annotations

import pytensor.tensor as pt


def leaky_relu(x, alpha: float = 0.01):
    """max(x, alpha x)."""
    return pt.maximum(x, alpha * x)


def elu(x, alpha: float = 1.0):
    """x for x > 0, alpha (exp(x) - 1) otherwise."""
    return pt.switch(x > 0, x, alpha * pt.expm1(pt.minimum(x, 0)))


def selu(x):
    """SELU: lambda * elu(x, alpha) with Klambauer et al.'s constants."""
    return 1.0507009873554805 * elu(x, 1.6732632423543772)


ACTIVATIONS = {
    "tanh": pt.tanh,
    "linear": lambda x: x,
    "relu6": lambda x: pt.clip(x, 0, 6),
    "selu": selu,
    "relu": lambda x: pt.maximum(x, 0),
    "leaky_relu": leaky_relu,
    "sigmoid": pt.sigmoid,
    "elu": elu,
    "softplus": pt.softplus,
}


def activation(name: str, leaky_slope: float = 0.01):
    """The activation function `name`, leaky_relu with its slope below zero."""
    if name == "leaky_relu":
        return lambda x: leaky_relu(x, leaky_slope)
    return ACTIVATIONS[name]


def dense(x, w, b):
    """Affine map. x: (B, n_in), w: (n_in, n_out), b: (n_out,) -> (B, n_out)."""
    return pt.dot(x, w) + b


def dropout(x, rate, rng):
    """Inverted dropout: zero each unit with probability `rate` (symbolic), scale survivors by 1 / (1 - rate).

    `rng` is a shared random generator variable; returns (output, next_rng) so the caller can
    add the generator's update. `uniform >= rate` instead of binomial: it runs on every backend.
    """
    next_rng, u = pt.random.uniform(size=x.shape, rng=rng, dtype=x.dtype).owner.outputs
    keep = 1 - rate
    return pt.switch(u >= rate, x / keep, pt.zeros_like(x)), next_rng


def pad_to(x, size: int):
    """Zero-pad images x (B, H, W) with static H, W symmetrically to at least size x size."""
    h, w = x.type.shape[1:3]
    ph, pw = max(0, size - h), max(0, size - w)
    if not (ph or pw):
        return x
    out = pt.zeros((x.shape[0], h + ph, w + pw), dtype=x.dtype)
    return pt.set_subtensor(out[:, ph // 2: ph // 2 + h, pw // 2: pw // 2 + w], x)
