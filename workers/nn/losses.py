"""Training losses on class scores: cross-entropy (from logits) and squared error of the softmax."""

from __future__ import annotations

import pytensor.tensor as pt


def cross_entropy(logits, y):
    """Mean negative log-likelihood. logits: (B, K), y: (B,) int -> scalar."""
    logp = pt.special.log_softmax(logits, axis=1)
    return -pt.mean(logp[pt.arange(y.shape[0]), y])


def mse(logits, y):
    """Mean over the batch of the summed squared error between softmax(logits) and one-hot y (section B)."""
    p = pt.special.softmax(logits, axis=1)
    onehot = pt.eq(y[:, None], pt.arange(logits.shape[1])[None, :]).astype(logits.dtype)
    return pt.mean(pt.sum((p - onehot) ** 2, axis=1))


LOSSES = {"cross_entropy": cross_entropy, "mse": mse}


def error_rate(logits, y):
    """Share of wrong argmax predictions."""
    return pt.mean(pt.neq(pt.argmax(logits, axis=1), y))
