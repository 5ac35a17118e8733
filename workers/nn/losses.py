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


def mse(logits, y, reduction: str = "sum"):
    """Mean over the batch of the squared error between softmax(logits) and one-hot y, summed over the
    outputs (`reduction` "sum") or averaged over them ("mean": the forum question's T.mean(T.sqr(...)))."""
    p = pt.special.softmax(logits, axis=1)
    per_output = (p - one_hot(y, logits.type.shape[1]).astype(logits.dtype)) ** 2
    return pt.mean(pt.sum(per_output, axis=1)) if reduction == "sum" else pt.mean(per_output)


CLIP = 1e-10  # TensorFlow's clip_by_value(p, 1e-10, 1.0) before the log


def positive_ce(logits, y):
    """The toy post's loss on two classes: -mean(y * log(clip(p1, 1e-10, 1))), p1 the probability of class 1
    and y the 0/1 label. Only class-1 examples count, so predicting class 1 everywhere drives it to 0."""
    if logits.type.shape[1] != 2:
        raise ValueError("positive_ce needs two classes")
    p1 = pt.special.softmax(logits, axis=1)[:, 1]
    return -pt.mean(y.astype(logits.dtype) * pt.log(pt.clip(p1, CLIP, 1.0)))


LOSSES = {"cross_entropy": cross_entropy, "mse": mse, "positive_ce": positive_ce}


def loss(config: dict, logits, y):
    """The training loss `config` names, on class scores `logits` (B, K) and labels `y` (B,)."""
    if config["loss"] == "mse":
        return mse(logits, y, config["mse_reduction"])
    return LOSSES[config["loss"]](logits, y)


def error_rate(logits, y):
    """Share of wrong argmax predictions."""
    return pt.mean(pt.neq(pt.argmax(logits, axis=1), y))
