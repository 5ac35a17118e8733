"""The model contract: what a network gives sweeper (a parameter layout, a forward pass) and what it gets.

sweeper trains any network that keeps this contract: the built-in MLP and LeNet-5
(workers/nn/models.py) and a user's own, named in a study as ``model = "package.module:function"``
(the function takes no argument and returns a `Model`; see docs/models.md). sweeper owns everything
around the forward pass: the loss, the penalties, the update rule, the moving average, the compiled
step, checkpoints, kept weights; the model owns its parameters' shapes and the graph from images
to logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from storage.contract.params import Param

# The training parameters that change every model's compiled graph (the others are symbolic inputs).
GRAPH = ("activation", "leaky_slope", "loss", "mse_reduction", "logged_loss", "optimizer")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter tensor: name, shape, fans for initialisation, and whether it is a weight (penalised)."""

    name: str
    shape: tuple
    fan_in: int
    fan_out: int
    is_weight: bool


def dense_params(name: str, n_in: int, n_out: int) -> list[ParamSpec]:
    """The weight (n_in, n_out) and bias (n_out,) of a dense layer `name`: `name`_W, `name`_b."""
    return [ParamSpec(f"{name}_W", (n_in, n_out), n_in, n_out, True),
            ParamSpec(f"{name}_b", (n_out,), n_in, n_out, False)]


class Dropout:
    """The dropout switch a forward pass gets: on in the training graph, where `hidden` and `input`
    drop units at the study's (symbolic) rates `dropout` and `input_dropout`; off in the evaluation
    graph and when both rates are 0, where they return their input unchanged."""

    def __init__(self, hidden=None, input=None, rng=None):  # noqa: A002 - the rate's name in the study
        self._rates = {"hidden": hidden, "input": input}
        self._rng = rng
        self.updates = []  # the random generator's successive states; the last one updates it

    @property
    def on(self) -> bool:
        """Whether this graph drops units (the training graph of a study with a rate above 0)."""
        return self._rng is not None

    def hidden(self, h):
        """`h` with hidden units dropped at rate `dropout` (inverted dropout), or `h` when off."""
        return self._drop(h, "hidden")

    def input(self, x):
        """`x` with input values dropped at rate `input_dropout`, or `x` when off."""
        return self._drop(x, "input")

    def _drop(self, h, which: str):
        if self._rng is None:
            return h
        from workers.nn.layers import dropout

        h, self._rng = dropout(h, self._rates[which], self._rng)
        self.updates.append(self._rng)
        return h


@dataclass(frozen=True)
class Model:
    """A network sweeper can sweep.

    Parameters
    ----------
    layout : callable
        ``layout(config, image_shape, n_classes) -> list[ParamSpec]``: the parameter tensors, in the
        order `forward` takes them. `config` holds the values that shape the graph (`shaped_by`: the
        model's own `params` and GRAPH's training parameters), `image_shape` ``(H, W)`` (``(1, D)`` for
        rows of D features), `n_classes` the number of labels. Weights (``is_weight``) get the L1/L2
        penalties; fans set the initialisation (``init``).
    forward : callable
        ``forward(params, x, config, dropout) -> logits``: `params` the symbolic tensors of `layout`,
        `x` the images ``(B, H, W)`` (float32), `dropout` a `Dropout` to call where units may be
        dropped. Returns the logits ``(B, n_classes)``; sweeper adds the softmax and the loss.
    params : tuple of Param
        The model's own hyperparameters (storage.contract.params.Param, each with a default): a
        study may fix or search them like the built-in ones. Each value compiles a graph of its own.
    name : str
        A readable name, which ``python -m workers check`` shows (studies and reports name the entry).
    """

    layout: Callable
    forward: Callable
    params: tuple = ()
    name: str = ""
    graph: tuple = field(default=(), repr=False)  # a built-in model: every parameter that shapes its graph

    @property
    def own(self) -> dict[str, Param]:
        """Its own parameters by name."""
        return {p.name: p for p in self.params}

    @property
    def shaped_by(self) -> tuple[str, ...]:
        """The configuration entries its compiled graph depends on (all others are symbolic inputs)."""
        return self.graph or (*GRAPH, *self.own)
