"""The training loop, Optuna-free: epochs, shuffled minibatches, schedule, patience, NaN detection.

`train(model, params, data, epochs=, seed=)` trains one network and returns its Result; `on_epoch`
sees one EpochRecord per epoch (and may raise to stop, e.g. a pruner). The compiled functions are
cached per architecture, so many runs in one process compile once. The process calls
workers.runtime.configure() first, before this module (and PyTensor) is imported.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from dataclasses import dataclass, field, fields
from typing import Callable

import numpy as np

from storage.contract.errors import BadInput
from storage.contract.spec import DEFAULT_DRAWS
from workers import compiled, metrics, runtime, weights
from workers.compiled import HYPER
from workers.entries import resolved
from workers.schedules import learning_rate, per_step
from workers.state import TrainingState

PATIENCE_INCREASE = 2  # the Theano tutorial's patience_increase
NEAR_ZERO = 1e-4  # a weight this small counts as zero (L1's many zero weights): see Result.near_zero


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch did. Errors are shares in [0, 1]; train figures average the epoch's minibatches."""

    epoch: int
    train_loss: float
    train_error: float
    valid_error: float
    lr: float
    seconds: float


@dataclass(frozen=True)
class Result:
    """The end of a run: the kept epoch's validation error, test figures, and how the run went."""

    valid_error: float
    test_error: float
    epochs_run: int
    stopped_early: bool
    seconds: float
    report: dict
    confident: dict
    steps_run: int = 0  # optimizer steps (minibatch updates) in all
    steps_per_epoch: int = 0  # minibatch updates of a whole epoch
    train_images: int = 0  # the training set's size
    valid_images: int = 0  # the validation set's size
    test_images: int = 0  # the test set's size
    near_zero: float = 0.0  # share of the evaluated weights (not biases) with |w| < NEAR_ZERO
    train_error_clean: float = float("nan")  # the kept network's error on the whole training set (no dropout)
    test_correct: object = field(default=None, repr=False, compare=False)  # bool per test image: right or not
    weights: object = field(default=None, repr=False, compare=False)  # workers.weights.Weights evaluated

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (the figures, not the weights or the test flags: the fields out of repr)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.repr}


class Diverged(Exception):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int):
        super().__init__(f"diverged at epoch {epoch}")
        self.epoch = epoch


def train(model: str, params: dict, data, *, epochs: int | None = None, steps: int | None = None,
          seed: int = 0, on_epoch: Callable[[EpochRecord], None] | None = None, every: int = 0,
          on_checkpoint: Callable[[TrainingState], None] | None = None, resume: TrainingState | None = None,
          draws=DEFAULT_DRAWS, fixed_seed: int = 0) -> Result:
    """Train `model` with parameter overrides `params` on `data` (a workers.data.Dataset).

    Parameters
    ----------
    model, params : str, dict
        The model's name and its parameter overrides (storage.contract.params.resolve).
    data : workers.data.Dataset
        x_train (N, H, W) with y_train (N,), and the validation and test sets alike.
    epochs, steps : int, exactly one of them
        The length: `epochs` passes over the training set, or `steps` minibatch updates (as many epochs
        as they take, the last one cut short after the `steps`-th update).
    seed, draws, fixed_seed : int, tuple of str, int
        `draws`: the parts of the run `seed` draws (of "init", "order", "dropout"); the others come
        from `fixed_seed` (which images validate is the data set's: workers.data.load).
    on_epoch : callable(EpochRecord), optional
        Sees each epoch's record; it may raise to stop the run (a pruner).
    every, on_checkpoint : int, callable(TrainingState), optional
        `on_checkpoint` is given the whole training state after every `every`-th epoch but the last.
    resume : TrainingState, optional
        A state `on_checkpoint` was given: the run goes on from it (its next epoch first), as the run
        that saved it would have, to the last bit.

    Returns
    -------
    Result
        The kept epoch's validation error, the test figures, the evaluated weights.

    Raises
    ------
    storage.contract.errors.BadInput
        For bad parameters.
    Diverged
        When the training loss is not finite.
    """
    config = resolved(model, params)
    if config["loss"] == "positive_ce" and data.n_classes != 2:
        raise BadInput(f"loss positive_ce is for two classes; {data.name} has {data.n_classes}: use cross_entropy")
    n = len(data.x_train)
    batch = min(config["batch_size"], n)
    per_epoch = (n - batch) // batch + 1  # whole minibatches; the remainder of a shuffle is left out
    epochs, steps = length(epochs, steps, per_epoch)
    net = compiled.network(model, config, data.image_shape, data.n_classes)
    def drawn(part: str) -> int:
        return seed if part in draws else fixed_seed

    net.reset(config["init"], drawn("init"), drawn("dropout"))
    shuffle = np.random.default_rng(drawn("order"))
    stepwise = per_step(config)
    start = time.perf_counter()
    best, limit, kept, stopped_early = math.inf, config["patience"], None, False
    first = 1
    if resume is not None and resume.epoch < epochs:
        net.load_training_state(resume.net)
        shuffle.bit_generator.state = resume.shuffle
        best, limit, kept, first = resume.best, resume.limit, resume.kept, resume.epoch + 1
    epoch = first - 1
    for epoch in range(first, epochs + 1):
        t0 = time.perf_counter()
        done = (epoch - 1) * per_epoch
        lr = learning_rate(config, epoch - 1, epochs, done)
        hyper = _hyper(config, lr)
        order = shuffle.permutation(n)
        starts = range(0, batch * min(per_epoch, steps - done), batch)
        hypers = ((_hyper(config, learning_rate(config, epoch - 1, epochs, done + k)) for k in range(len(starts)))
                  if stepwise else itertools.repeat(hyper))  # a decay counted in steps: the rate of each step
        # gather minibatch by minibatch: a shuffled copy of the whole set costs page faults every epoch
        outs = [net.step(data.x_train[idx], data.y_train[idx], h)
                for idx, h in zip((order[i:i + batch] for i in starts), hypers)]
        loss, err = np.asarray([[np.asarray(o) for o in out] for out in outs], dtype=np.float64).mean(axis=0)
        if not np.isfinite(loss):
            raise Diverged(epoch)
        valid_error = metrics.error(net.probabilities(data.x_valid), data.y_valid)
        record = EpochRecord(epoch, float(loss), float(err), valid_error, float(lr), time.perf_counter() - t0)
        if on_epoch is not None:
            on_epoch(record)
        if config["patience"]:
            if valid_error < best:
                if valid_error < best * config["improvement_threshold"]:
                    limit = max(limit, epoch * PATIENCE_INCREASE)
                best, kept = valid_error, net.snapshot()
            if epoch >= limit and epoch < epochs:
                stopped_early = True
                break
        if on_checkpoint is not None and every and epoch % every == 0 and epoch < epochs:
            on_checkpoint(TrainingState(epoch, net.training_state(), shuffle.bit_generator.state, best=best,
                                        limit=limit, kept=kept, mode=runtime.compile_mode()))
    if kept is not None:
        net.restore(kept)
    else:
        best = valid_error
    probs = net.probabilities(data.x_test)
    test_error = metrics.error(probs, data.y_test)
    test_correct = np.argmax(probs, axis=1) == data.y_test
    train_error_clean = metrics.error(net.probabilities(data.x_train), data.y_train)
    figures = dict(dataset=data.name, valid_error=best, test_error=test_error, epochs_run=epoch, seed=seed)
    return Result(valid_error=best, test_error=test_error, epochs_run=epoch,
                  stopped_early=stopped_early, seconds=time.perf_counter() - start,
                  report=metrics.report(probs, data.y_test), confident=metrics.confident_precision(probs, data.y_test),
                  steps_run=min(epoch * per_epoch, steps), steps_per_epoch=per_epoch, train_images=n,
                  valid_images=len(data.y_valid), test_images=len(data.y_test),
                  near_zero=_near_zero(net), train_error_clean=train_error_clean, test_correct=test_correct,
                  weights=weights.of(net, model, config, data.n_classes, figures))


def _near_zero(net) -> float:
    """The share of the network's evaluated weights (biases left out) whose magnitude is below NEAR_ZERO."""
    weights = [v for v, spec in zip(net.snapshot(), net.layout) if spec.is_weight]
    return float(sum(int((np.abs(w) < NEAR_ZERO).sum()) for w in weights) / sum(w.size for w in weights))


def length(epochs: int | None, steps: int | None, per_epoch: int) -> tuple[int, int]:
    """(epochs, steps) of a run given in epochs or in steps (exactly one), with `per_epoch` steps an epoch."""
    if (epochs is None) == (steps is None):
        raise BadInput("give the training length in epochs or in steps, not both: remove one")
    if epochs is not None:
        if int(epochs) < 1:
            raise BadInput(f"epochs={epochs} is invalid: use 1 or more")
        return int(epochs), int(epochs) * per_epoch
    if int(steps) < 1:
        raise BadInput(f"steps={steps} is invalid: use 1 or more")
    return -(-int(steps) // per_epoch), int(steps)


def prepare(model: str, params: dict, data) -> None:
    """Compile `model`'s network for `params` on `data` and run it once, so that a later train()
    of the same architecture (its first epoch included) runs at full speed from the start."""
    config = resolved(model, params)
    net = compiled.network(model, config, data.image_shape, data.n_classes)
    net.warm_up(min(config["batch_size"], len(data.x_train)), _hyper(config, config["lr"]))


def _hyper(config: dict, lr: float) -> np.ndarray:
    """The compiled step's hyperparameter vector (ordered as HYPER) with learning rate `lr`."""
    return np.array([lr if k == "lr" else config[k] * _scale(config, k) for k in HYPER], dtype=np.float32)


def _scale(config: dict, name: str) -> float:
    """What the compiled cost multiplies a hyperparameter by: l2_form "half" is TensorFlow's
    l2 * sum(w^2) / 2, the graph's l2 * sum(w^2) at half the lambda (the same cost and gradient)."""
    return 0.5 if name == "l2" and config["l2_form"] == "half" else 1.0

