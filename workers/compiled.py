"""Compiled train/predict functions, built once per architecture per process; each run only resets state."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pytensor
import pytensor.tensor as pt

from storage.contract.errors import BadInput, first_line
from storage.contract.params import is_user_model
from workers import netcache, runtime
from workers.entries import MODEL_FIX, model_of
from workers.nn import jaxmode, losses, penalties, updates
from workers.nn.init import initial_values
from workers.nn.model import Dropout

# Graph-shaping parameters are each model's (nn/model.py: Model.shaped_by); all others are symbolic inputs.
# Symbolic parameters that still change the graph: a drop rate of 0 or more, a moving average or none.
SWITCHES = ("dropout", "input_dropout", "ema")
HYPER = ("lr", "l1", "l2", "momentum", "rho", "beta1", "beta2", "eps", "dropout", "input_dropout", "ema")
EVAL_CHUNK = 1000  # predictions run on fixed-size chunks so JAX compiles one shape
compiles = 0  # how many networks this process has built, compiled or loaded (tests check compile-once)
_cache: dict[tuple, "Network"] = {}


@dataclass
class Network:
    """One compiled architecture: shared parameters, optimizer state, and the compiled functions."""

    image_shape: tuple
    layout: list
    params: list
    shadows: list | None
    state: list
    rng: object
    train_step: object = field(repr=False)
    predict: object = field(repr=False)

    def reset(self, init: str, seed: int, dropout_seed: int | None = None) -> None:
        """Fresh weights from `seed`, zeroed optimizer state, the dropout generator reseeded from
        `dropout_seed` (`seed` when None)."""
        values = initial_values(self.layout, init, np.random.default_rng(seed), pytensor.config.floatX)
        for p, v in zip(self.params, values):
            p.set_value(v)
        for s, v in zip(self.shadows or [], values):
            s.set_value(v.copy())
        for s in self.state:
            s.set_value(np.zeros_like(s.get_value()))
        if self.rng is not None:
            masks = np.random.default_rng([seed if dropout_seed is None else dropout_seed, 1])
            _reseed(self.train_step, self.rng, masks)

    def step(self, x: np.ndarray, y: np.ndarray, hyper: np.ndarray) -> tuple:
        """One minibatch update with hyperparameters `hyper` (float32, ordered as HYPER); returns
        (loss, error) as backend arrays (not synchronised)."""
        return self.train_step(x, y, hyper)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (N, K) for images x (N, H, W), in fixed-size chunks."""
        out = []
        for i in range(0, len(x), EVAL_CHUNK):
            chunk = x[i:i + EVAL_CHUNK]
            n = len(chunk)
            if n < EVAL_CHUNK:
                chunk = np.concatenate([chunk, np.zeros((EVAL_CHUNK - n, *x.shape[1:]), x.dtype)])
            out.append(np.asarray(self.predict(chunk))[:n])
        return np.concatenate(out)

    def warm_up(self, batch: int, hyper: np.ndarray) -> None:
        """Run one step on `batch` blank images and one prediction, so that the backend has traced
        (and compiled) both functions for these shapes; `reset` then discards what the step did."""
        x = np.zeros((batch, *self.image_shape), pytensor.config.floatX)
        np.asarray(self.step(x, np.zeros(batch, np.int32), hyper)[0])
        self.probabilities(x[:1])

    def snapshot(self) -> list[np.ndarray]:
        """Copies of the weights used for evaluation (for early stopping's best epoch)."""
        return [v.get_value().copy() for v in (self.shadows or self.params)]

    def restore(self, values: list[np.ndarray]) -> None:
        """Put a snapshot back into the evaluation weights."""
        for v, value in zip(self.shadows or self.params, values):
            v.set_value(value)

    def training_state(self) -> dict:
        """Everything a step reads and changes: weights, moving averages, optimizer state, and the
        dropout generator as the compiled function holds it (`load_training_state` puts it back)."""
        def values(shared) -> list[np.ndarray]:
            return [v.get_value().copy() for v in shared or []]

        return dict(params=values(self.params), shadows=values(self.shadows), state=values(self.state),
                    rng=_generator_state(self.train_step) if self.rng is not None else None)

    def load_training_state(self, saved: dict) -> None:
        """Put back what `training_state` read: the next step continues as the saved one would have."""
        for group, values in (("params", self.params), ("shadows", self.shadows or []), ("state", self.state)):
            for v, value in zip(values, saved[group]):
                v.set_value(np.asarray(value, dtype=v.get_value().dtype))
        if self.rng is not None:
            _set_generator_state(self.train_step, saved["rng"])


def shaped_by(model: str) -> set[str]:
    """The parameters whose values can change `model`'s compiled graph (all others are inputs)."""
    return {*model_of(model).shaped_by, *SWITCHES}


def network(model: str, config: dict, image_shape: tuple, n_classes: int) -> Network:
    """The compiled Network for this architecture, compiling it on first use in this process."""
    key = (runtime.compile_mode(), model, tuple(image_shape), n_classes,
           *(config[k] for k in model_of(model).shaped_by),
           _drops(config), config["ema"] > 0)
    if key not in _cache:
        _cache[key] = _build(key, model, config, image_shape, n_classes)
    return _cache[key]


def _build(key: tuple, model: str, config: dict, image_shape: tuple, n_classes: int) -> Network:
    """Load the network from the disk cache (workers/netcache.py), else compile it and keep it there.
    Not kept: networks with dropout (their generator does not unpickle), other backends, and users' own
    models (their code may change under the same name)."""
    global compiles
    keep = runtime.compile_mode() == "JAX" and not _drops(config) and not is_user_model(model)
    net = netcache.load(key) if keep else None
    if net is None and is_user_model(model):
        net = _checked(model, config, image_shape, n_classes)
    elif net is None:
        net = _compile(model, config, image_shape, n_classes)
        if keep:
            netcache.save(key, net)
    compiles += 1
    return net


def _checked(model: str, config: dict, image_shape: tuple, n_classes: int) -> Network:
    """A user model's network, compiled and run once on blank images: BadInput, one line, when its
    code fails or its predictions are not (N, n_classes)."""
    try:
        net = _compile(model, config, image_shape, n_classes)
        out = np.asarray(net.predict(np.zeros((EVAL_CHUNK, *image_shape), pytensor.config.floatX)))
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's graph failed: its own words, on one line
        raise BadInput(f"model {model}: building or running its network failed: {type(exc).__name__}: "
                       f"{first_line(exc)}: {MODEL_FIX}") from None
    if out.shape != (EVAL_CHUNK, n_classes):
        raise BadInput(f"model {model}: its forward pass gives predictions of shape {out.shape[1:]} per batch, "
                       f"not ({n_classes},) for {n_classes} classes: {MODEL_FIX}")
    return net


def _compile(model: str, config: dict, image_shape: tuple, n_classes: int) -> Network:
    floatx = pytensor.config.floatX
    net_model = model_of(model)
    shape = {k: config[k] for k in net_model.shaped_by}  # all the model may read: what the cache key holds
    layout = _layout(model, net_model.layout(shape, tuple(image_shape), n_classes))
    params = [pytensor.shared(np.zeros(s.shape, floatx), name=s.name, shape=s.shape) for s in layout]
    weights = [p for p, s in zip(params, layout) if s.is_weight]
    x = pt.tensor("x", dtype=floatx, shape=(None, *image_shape))
    y = pt.ivector("y")
    # one vector of hyperparameters: a single input to convert per call instead of eleven scalars
    hyper_vector = pt.vector("hyper", dtype=floatx, shape=(len(HYPER),))
    hyper = {name: hyper_vector[i] for i, name in enumerate(HYPER)}

    use_dropout = _drops(config)
    rng = pytensor.shared(np.random.default_rng(0), name="dropout_rng") if use_dropout else None
    dropout = Dropout(hyper["dropout"], hyper["input_dropout"], rng) if use_dropout else Dropout()
    logits = _logits(model, net_model.forward(params, x, shape, dropout), n_classes)
    rng_updates = dropout.updates
    rng = rng if rng_updates else None  # a model that never drops: no generator to save or reseed
    loss = losses.loss(config, logits, y)
    cost = penalties.regularize(loss, weights, hyper["l1"], hyper["l2"])
    step_updates = updates.build(config["optimizer"], cost, params, hyper)
    state = updates.state_of(step_updates, params)
    if rng_updates:
        step_updates[rng] = rng_updates[-1]

    shadows = None
    if config["ema"] > 0:
        shadows, ema_state = _moving_average(step_updates, params, hyper["ema"])
        state.append(ema_state)

    mode = _mode()
    logged = cost if config["logged_loss"] == "objective" else loss
    train_step = pytensor.function([x, y, hyper_vector], [logged, losses.error_rate(logits, y)],
                                   updates=step_updates, mode=mode, on_unused_input="ignore")
    eval_logits = _logits(model, net_model.forward(shadows or params, x, shape, Dropout()), n_classes)
    predict = pytensor.function([x], pt.special.softmax(eval_logits, axis=1), mode=mode)
    return Network(tuple(image_shape), layout, params, shadows, state, rng, train_step, predict)


def _layout(model: str, layout) -> list:
    """`layout` as the contract wants it (a non-empty list of ParamSpec with distinct names), else BadInput."""
    from workers.nn.model import ParamSpec

    layout = list(layout) if isinstance(layout, (list, tuple)) else layout
    if not isinstance(layout, list) or not layout or not all(isinstance(p, ParamSpec) for p in layout):
        raise BadInput(f"model {model}: its layout gave {type(layout).__name__}, not a non-empty list of "
                       f"ParamSpec: {MODEL_FIX}")
    names = [p.name for p in layout]
    if len(set(names)) != len(names):
        raise BadInput(f"model {model}: its layout names a parameter twice: give each its own name")
    return layout


def _logits(model: str, logits, n_classes: int):
    """The forward pass's output if it can be logits (B, n_classes) of a float type, else BadInput."""
    ndim, dtype = getattr(logits, "ndim", None), str(getattr(logits, "dtype", ""))
    fix = f"return logits of shape (batch, {n_classes}), {MODEL_FIX}"
    if ndim != 2 or not dtype.startswith("float"):
        what = f"a {ndim}-d {dtype} tensor" if ndim is not None else type(logits).__name__
        raise BadInput(f"model {model}: its forward pass gave {what}, not float logits: {fix}")
    if logits.type.shape[1] not in (None, n_classes):
        raise BadInput(f"model {model}: its forward pass gives {logits.type.shape[1]} outputs for {n_classes} "
                       f"classes: {fix}")
    return logits


def _drops(config: dict) -> bool:
    """Whether the network drops units (hidden or input): its graph then has a random generator."""
    return config["dropout"] > 0 or config["input_dropout"] > 0


def _mode():
    """The PyTensor mode of the configured backend; JAX compiles with our options (see nn/jaxmode.py)."""
    name = runtime.compile_mode()
    return jaxmode.jax_mode() if name == "JAX" else name


def _moving_average(step_updates, params, decay):
    """Add shadow-weight updates with TensorFlow's warm-up: d_t = min(decay, (1 + t) / (10 + t))."""
    floatx = pytensor.config.floatX
    t = pytensor.shared(np.asarray(0.0, floatx), name="ema_t")
    d = pt.minimum(decay, (1 + t) / (10 + t))
    shadows = [pytensor.shared(p.get_value(), name=f"{p.name}_ema", shape=p.type.shape) for p in params]
    for s, p in zip(shadows, params):
        step_updates[s] = d * s + (1 - d) * step_updates[p]
    step_updates[t] = t + 1
    return shadows, t


def _generator_state(fn) -> dict:
    """The dropout generator's state inside compiled `fn`: a NumPy bit generator's state (Python/C, NUMBA),
    or the key the JAX backend advances (its dict's "jax_state"; the other entries never change)."""
    for container in fn.input_storage:
        value = container.storage[0]
        if isinstance(value, np.random.Generator):
            return dict(kind="numpy", state=copy.deepcopy(value.bit_generator.state))
        if isinstance(value, dict) and "jax_state" in value:
            return dict(kind="jax", jax_state=np.asarray(value["jax_state"]).copy())
    raise RuntimeError("the compiled step holds no random generator")


def _set_generator_state(fn, saved: dict) -> None:
    """Put back a state `_generator_state` read (in a function compiled the same way)."""
    for container in fn.input_storage:
        value = container.storage[0]
        if isinstance(value, np.random.Generator) and saved["kind"] == "numpy":
            value.bit_generator.state = copy.deepcopy(saved["state"])
            return
        if isinstance(value, dict) and "jax_state" in value and saved["kind"] == "jax":
            import jax.numpy as jnp

            container.storage[0] = {**value, "jax_state": jnp.asarray(saved["jax_state"], dtype=jnp.uint32)}
            return
    raise RuntimeError(f"the compiled step holds no {saved['kind']} random generator")


def _reseed(fn, rng_var, generator: np.random.Generator) -> None:
    """Reseed a compiled function's random generator, including the private copy the JAX backend keeps."""
    rng_var.set_value(generator)
    for container in fn.input_storage:
        value = container.storage[0]
        if isinstance(value, np.random.Generator):
            container.storage[0] = copy.deepcopy(generator)
        elif isinstance(value, dict) and "jax_state" in value:
            from pytensor.link.jax.dispatch import jax_typify

            container.storage[0] = jax_typify(generator)
