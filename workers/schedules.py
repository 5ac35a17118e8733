"""Learning-rate schedules over epochs (the rate is a symbolic input, so no recompilation)."""

from __future__ import annotations


def learning_rate(config: dict, epoch: int, epochs: int) -> float:
    """The learning rate of 0-based `epoch` out of `epochs` under config's schedule.

    constant: lr; linear: lr -> lr_end over the epochs (the tutorial write-up); exponential:
    lr * decay**epoch (one decay per epoch); inverse_time: lr / (1 + decay * epoch).
    """
    lr, schedule = config["lr"], config["schedule"]
    if schedule == "constant":
        return lr
    if schedule == "linear":
        return lr + (config["lr_end"] - lr) * (epoch / max(1, epochs - 1))
    if schedule == "exponential":
        return lr * config["decay"] ** epoch
    if schedule == "inverse_time":
        return lr / (1 + config["decay"] * epoch)
    raise ValueError(f"unknown schedule {schedule!r}")
