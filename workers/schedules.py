"""Learning-rate schedules over epochs or optimizer steps (the rate is a symbolic input, so no recompilation)."""

from __future__ import annotations

import math


def learning_rate(config: dict, epoch: int, epochs: int, step: int = 0) -> float:
    """The learning rate of 0-based `epoch` out of `epochs` (0-based optimizer `step`) under config's schedule.

    constant: lr. linear: lr -> lr_end over `lr_horizon` epochs (the run's when 0), held at lr_end after
    (the tutorial write-up). exponential: lr * decay**p, inverse_time: lr / (1 + decay * p), where p is
    the epoch, or with `decay_steps` the step / decay_steps (TensorFlow's exponential_decay; floored
    with `staircase`).
    """
    lr, schedule = config["lr"], config["schedule"]
    if schedule == "constant":
        return lr
    if schedule == "linear":
        horizon = config.get("lr_horizon") or max(1, epochs - 1)
        return lr + (config["lr_end"] - lr) * min(1.0, epoch / horizon)
    p = epoch
    if config.get("decay_steps"):
        p = step / config["decay_steps"]
        if config.get("staircase"):
            p = math.floor(p)
    if schedule == "exponential":
        return lr * config["decay"] ** p
    if schedule == "inverse_time":
        return lr / (1 + config["decay"] * p)
    raise ValueError(f"unknown schedule {schedule!r}")


def per_step(config: dict) -> bool:
    """Whether the rate changes within an epoch (a decay counted in steps)."""
    return bool(config.get("decay_steps")) and config["schedule"] in ("exponential", "inverse_time")
