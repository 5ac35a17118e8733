"""Weight penalties: L1 and squared L2 over weight matrices only, never biases."""

from __future__ import annotations

import pytensor.tensor as pt


def l1(weights) -> pt.TensorVariable:
    """Sum of absolute values of all `weights` (a list of weight tensors, biases excluded by the caller)."""
    return sum(pt.sum(pt.abs(w)) for w in weights)


def l2(weights) -> pt.TensorVariable:
    """Sum of squares of all `weights` (the Theano tutorial's L2_sqr)."""
    return sum(pt.sum(w**2) for w in weights)


def regularize(cost, weights, l1_lambda, l2_lambda):
    """The tutorial's named cost: cost + l1 * L1 + l2 * L2_sqr."""
    return cost + l1_lambda * l1(weights) + l2_lambda * l2(weights)
