"""A run's training state: what train() hands its checkpoints every few epochs, and goes on from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainingState:
    """Everything a run needs to go on after `epoch` as if it had never stopped, to the last bit.

    Read back from a file (workers.checkpoints.load), its fields are what the file held: check it
    (workers.checkpoints.mismatch) before train() resumes from it.
    """

    epoch: int  # the last epoch done
    net: dict  # the network's training_state(): "params", "shadows", "state" (lists of arrays), "rng"
    shuffle: dict  # the minibatch order's generator: its NumPy bit_generator.state
    best: float  # patience's best validation error so far (inf before the first)
    limit: int  # patience's epoch limit
    kept: list | None  # the evaluated weights of the best epoch (None: none kept yet)
    mode: str | None = None  # the compile mode it belongs to (workers.runtime.compile_mode)
