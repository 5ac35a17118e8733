"""Update rules as Lasagne-style functions: (loss or grads, params, hyperparameters) -> OrderedDict{shared: expr}.

Hyperparameters may be symbolic scalars, so one compiled function serves every learning rate,
momentum or decay. State (velocities, accumulators, Adam's step) lives in shared variables that
`state_of(updates, params)` lists, so a new run can zero them without recompiling.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt


def get_or_compute_grads(loss_or_grads, params):
    """Gradients of a scalar loss w.r.t. `params`, or `loss_or_grads` itself when it is a list."""
    if isinstance(loss_or_grads, list | tuple):
        return list(loss_or_grads)
    return pytensor.grad(loss_or_grads, params)


def _zeros_like(param, name: str):
    value = param.get_value(borrow=True)
    return pytensor.shared(np.zeros(value.shape, dtype=value.dtype), shape=value.shape,
                           name=f"{param.name}_{name}")


def sgd(loss_or_grads, params, learning_rate):
    """Plain SGD: p <- p - lr * g."""
    grads = get_or_compute_grads(loss_or_grads, params)
    return OrderedDict((p, p - learning_rate * g) for p, g in zip(params, grads))


def apply_momentum(updates, params, momentum=0.9):
    """Classical momentum on top of `updates`: v <- m v + (u - p); p <- p + v."""
    updates = OrderedDict(updates)
    for p in params:
        velocity = _zeros_like(p, "velocity")
        x = momentum * velocity + updates[p]
        updates[velocity] = x - p
        updates[p] = x
    return updates


def apply_nesterov_momentum(updates, params, momentum=0.9):
    """Nesterov momentum on top of `updates`: v <- m v + (u - p); p <- u + m v (Lasagne's form)."""
    updates = OrderedDict(updates)
    for p in params:
        velocity = _zeros_like(p, "velocity")
        x = momentum * velocity + updates[p] - p
        updates[velocity] = x
        updates[p] = momentum * x + updates[p]
    return updates


def momentum(loss_or_grads, params, learning_rate, momentum=0.9):
    """SGD with classical momentum."""
    return apply_momentum(sgd(loss_or_grads, params, learning_rate), params, momentum)


def nesterov_momentum(loss_or_grads, params, learning_rate, momentum=0.9):
    """SGD with Nesterov momentum."""
    return apply_nesterov_momentum(sgd(loss_or_grads, params, learning_rate), params, momentum)


def adagrad(loss_or_grads, params, learning_rate, epsilon=1e-6):
    """AdaGrad: a <- a + g^2; p <- p - lr g / sqrt(a + eps)."""
    updates = OrderedDict()
    for p, g in zip(params, get_or_compute_grads(loss_or_grads, params)):
        accu = _zeros_like(p, "accu")
        accu_new = accu + g**2
        updates[accu] = accu_new
        updates[p] = p - learning_rate * g / pt.sqrt(accu_new + epsilon)
    return updates


def rmsprop(loss_or_grads, params, learning_rate, rho=0.9, epsilon=1e-6):
    """RMSProp: a <- rho a + (1 - rho) g^2; p <- p - lr g / sqrt(a + eps)."""
    updates = OrderedDict()
    for p, g in zip(params, get_or_compute_grads(loss_or_grads, params)):
        accu = _zeros_like(p, "accu")
        accu_new = rho * accu + (1 - rho) * g**2
        updates[accu] = accu_new
        updates[p] = p - learning_rate * g / pt.sqrt(accu_new + epsilon)
    return updates


def adadelta(loss_or_grads, params, learning_rate=1.0, rho=0.95, epsilon=1e-6):
    """AdaDelta (Zeiler 2012), scaled by `learning_rate` as in Lasagne."""
    updates = OrderedDict()
    for p, g in zip(params, get_or_compute_grads(loss_or_grads, params)):
        accu = _zeros_like(p, "accu")
        delta_accu = _zeros_like(p, "delta_accu")
        accu_new = rho * accu + (1 - rho) * g**2
        step = g * pt.sqrt(delta_accu + epsilon) / pt.sqrt(accu_new + epsilon)
        updates[accu] = accu_new
        updates[p] = p - learning_rate * step
        updates[delta_accu] = rho * delta_accu + (1 - rho) * step**2
    return updates


def adam(loss_or_grads, params, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """Adam (Kingma & Ba 2014, Algorithm 1): p <- p - lr m_hat / (sqrt(v_hat) + eps), as torch.optim.Adam."""
    updates = OrderedDict()
    t_prev = pytensor.shared(np.asarray(0.0, dtype=params[0].dtype), name="adam_t")
    t = t_prev + 1
    for p, g in zip(params, get_or_compute_grads(loss_or_grads, params)):
        m_prev = _zeros_like(p, "m")
        v_prev = _zeros_like(p, "v")
        m_t = beta1 * m_prev + (1 - beta1) * g
        v_t = beta2 * v_prev + (1 - beta2) * g**2
        updates[m_prev] = m_t
        updates[v_prev] = v_t
        updates[p] = p - learning_rate * (m_t / (1 - beta1**t)) / (pt.sqrt(v_t / (1 - beta2**t)) + epsilon)
    updates[t_prev] = t
    return updates


def state_of(updates, params) -> list:
    """The shared state variables of an update dictionary (everything updated that is not a parameter)."""
    params = set(params)
    return [v for v in updates if v not in params]


def build(name: str, loss_or_grads, params, hyper: dict):
    """The update rule `name` with its symbolic hyperparameters from `hyper` (lr, momentum, rho, beta1, beta2, eps)."""
    lr = hyper["lr"]
    rules = {
        "sgd": lambda: sgd(loss_or_grads, params, lr),
        "momentum": lambda: momentum(loss_or_grads, params, lr, hyper["momentum"]),
        "nesterov": lambda: nesterov_momentum(loss_or_grads, params, lr, hyper["momentum"]),
        "adagrad": lambda: adagrad(loss_or_grads, params, lr, hyper["eps"]),
        "rmsprop": lambda: rmsprop(loss_or_grads, params, lr, hyper["rho"], hyper["eps"]),
        "adadelta": lambda: adadelta(loss_or_grads, params, lr, hyper["rho"], hyper["eps"]),
        "adam": lambda: adam(loss_or_grads, params, lr, hyper["beta1"], hyper["beta2"], hyper["eps"]),
    }
    return rules[name]()
