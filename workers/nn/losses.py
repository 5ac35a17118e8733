"""Training losses on class scores: cross-entropy (from logits) and squared error of the softmax."""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt


def one_hot(y, n_classes: int):
    """(B,) int labels -> (B, n_classes) 0/1 matrix; the class range is a constant (JAX's arange of a
    symbolic batch size overflows its int8 constants for batches > 127)."""
    return pt.eq(y[:, None], np.arange(n_classes, dtype="int32")[None, :])


def cross_entropy(logits, y):
    """Mean negative log-likelihood. logits: (B, K) with static K, y: (B,) int -> scalar."""
    logp = pt.special.log_softmax(logits, axis=1)
    return -pt.mean(pt.sum(pt.switch(one_hot(y, logits.type.shape[1]), logp, 0), axis=1))


def mse(logits, y):
    """Mean over the batch of the summed squared error between softmax(logits) and one-hot y (the forum question's loss)."""
    p = pt.special.softmax(logits, axis=1)
    return pt.mean(pt.sum((p - one_hot(y, logits.type.shape[1]).astype(logits.dtype)) ** 2, axis=1))


LOSSES = {"cross_entropy": cross_entropy, "mse": mse}


def error_rate(logits, y):
    """Share of wrong argmax predictions."""
    return pt.mean(pt.neq(pt.argmax(logits, axis=1), y))
