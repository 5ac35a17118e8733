"""Every update rule against an independent NumPy computation of the published formula (and torch where it agrees)."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from workers import runtime
from workers.nn import updates

STEPS = 6
H = dict(lr=0.05, momentum=0.8, rho=0.9, beta1=0.9, beta2=0.999, eps=1e-6)


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=(4, 3)).astype(np.float32)
    c = rng.normal(size=(4, 3)).astype(np.float32)
    d = rng.uniform(0.5, 2.0, size=(4, 3)).astype(np.float32)
    return w0, c, d  # loss = sum(c w) + 0.5 sum(d w^2), gradient c + d w


def _pytensor_run(rule: str) -> np.ndarray:
    w0, c, d = _problem()
    w = pytensor.shared(w0.copy(), name="w")
    hyper = {k: pt.scalar(k, dtype="float32") for k in H}
    loss = pt.sum(c * w) + 0.5 * pt.sum(d * w**2)
    ups = updates.build(rule, loss, [w], hyper)
    step = pytensor.function(list(hyper.values()), loss, updates=ups, mode=runtime.compile_mode(),
                             on_unused_input="ignore")
    for _ in range(STEPS):
        step(*(np.float32(v) for v in H.values()))
    return w.get_value()


def _numpy_run(rule: str) -> np.ndarray:
    w0, c, d = _problem()
    w = w0.astype(np.float64)
    lr, mom, rho, b1, b2, eps = (H[k] for k in ("lr", "momentum", "rho", "beta1", "beta2", "eps"))
    a = np.zeros_like(w)  # velocity / first accumulator / m
    b = np.zeros_like(w)  # second accumulator / v
    for t in range(1, STEPS + 1):
        g = c + d * w
        if rule == "sgd":
            w = w - lr * g
        elif rule == "momentum":  # Sutskever et al. 2013: v = mu v - lr g; w = w + v
            a = mom * a - lr * g
            w = w + a
        elif rule == "nesterov":  # Bengio et al. 2012 reformulation: w += mu^2 v_prev - (1 + mu) lr g
            v_prev = a
            a = mom * a - lr * g
            w = w - mom * v_prev + (1 + mom) * a
        elif rule == "adagrad":  # Duchi et al. 2011
            a = a + g**2
            w = w - lr * g / np.sqrt(a + eps)
        elif rule == "rmsprop":  # Tieleman & Hinton 2012
            a = rho * a + (1 - rho) * g**2
            w = w - lr * g / np.sqrt(a + eps)
        elif rule == "adadelta":  # Zeiler 2012, Algorithm 1, scaled by lr
            a = rho * a + (1 - rho) * g**2
            dx = np.sqrt(b + eps) / np.sqrt(a + eps) * g
            b = rho * b + (1 - rho) * dx**2
            w = w - lr * dx
        elif rule == "adam":  # Kingma & Ba 2014, Algorithm 1
            a = b1 * a + (1 - b1) * g
            b = b2 * b + (1 - b2) * g**2
            w = w - lr * (a / (1 - b1**t)) / (np.sqrt(b / (1 - b2**t)) + eps)
    return w


@pytest.mark.parametrize("rule", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam"])
def test_rule_matches_numpy(rule):
    np.testing.assert_allclose(_pytensor_run(rule), _numpy_run(rule), rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("rule", ["sgd", "momentum", "nesterov", "adadelta", "adam"])
def test_rule_matches_torch(rule):
    torch = pytest.importorskip("torch", reason="torch not installed: the NumPy reference still checks this rule")
    w0, c, d = _problem()
    w = torch.tensor(w0.astype(np.float64), requires_grad=True)
    make = {
        "sgd": lambda p: torch.optim.SGD(p, lr=H["lr"]),
        "momentum": lambda p: torch.optim.SGD(p, lr=H["lr"], momentum=H["momentum"]),
        "nesterov": lambda p: torch.optim.SGD(p, lr=H["lr"], momentum=H["momentum"], nesterov=True),
        "adadelta": lambda p: torch.optim.Adadelta(p, lr=H["lr"], rho=H["rho"], eps=H["eps"]),
        "adam": lambda p: torch.optim.Adam(p, lr=H["lr"], betas=(H["beta1"], H["beta2"]), eps=H["eps"]),
    }[rule]
    opt = make([w])
    ct, dt = torch.tensor(c, dtype=torch.float64), torch.tensor(d, dtype=torch.float64)
    for _ in range(STEPS):
        opt.zero_grad()
        (torch.sum(ct * w) + 0.5 * torch.sum(dt * w**2)).backward()
        opt.step()
    np.testing.assert_allclose(_pytensor_run(rule), w.detach().numpy(), rtol=2e-4, atol=2e-5)


def test_state_lists_every_accumulator():
    w = pytensor.shared(np.zeros((2, 2), np.float32), name="w")
    loss = pt.sum(w**2)
    hyper = {k: pt.scalar(k) for k in H}
    assert len(updates.state_of(updates.build("sgd", loss, [w], hyper), [w])) == 0
    assert len(updates.state_of(updates.build("momentum", loss, [w], hyper), [w])) == 1
    assert len(updates.state_of(updates.build("adadelta", loss, [w], hyper), [w])) == 2
    assert len(updates.state_of(updates.build("adam", loss, [w], hyper), [w])) == 3  # m, v, t
