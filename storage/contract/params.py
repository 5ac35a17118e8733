"""The training parameters: names, defaults and checks, the contract both sides share."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from storage.contract.errors import BadInput, did_you_mean

MODELS = ("mlp", "lenet")
# A user's own network: `package.module:function`, importable on the worker (workers/nn/model.py: the contract).
USER_MODEL = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
# The built-in networks' own parameters: a user's model has its own instead (and may use these names for them).
ARCHITECTURAL = ("width", "depth", "width2", "conv1_maps", "conv2_maps")
ACTIVATIONS = ("tanh", "relu", "leaky_relu", "sigmoid", "elu", "selu", "softplus", "relu6", "linear")
INITS = ("glorot", "uniform01", "uniform_pm1", "truncated_normal")
LOSSES = ("cross_entropy", "mse", "positive_ce")
REDUCTIONS = ("sum", "mean")
LOGGED_LOSSES = ("data", "objective")
L2_FORMS = ("sum", "half")
SPLITS = ("random", "first", "last", "tensorflow", "theano")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam")
SCHEDULES = ("constant", "linear", "exponential", "inverse_time")


@dataclass(frozen=True)
class Param:
    """One training parameter: its type, bounds or choices, and what it means."""

    name: str
    kind: type
    doc: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    models: tuple = MODELS
    default: object = None  # a user model's own parameter: its value unless the study sets it

    def describe(self) -> str:
        """The allowed values in words, for error messages."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        kind = "an integer" if self.kind is int else "a number"
        parts = []
        if self.low is not None:
            parts.append(("> " if self.low_open else ">= ") + _fmt(self.low))
        if self.high is not None:
            parts.append(("< " if self.high_open else "<= ") + _fmt(self.high))
        return kind + (" " + " and ".join(parts) if parts else "")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


PARAMS: dict[str, Param] = {p.name: p for p in [
    Param("width", int, "hidden units per layer (LeNet: the fully connected layer)", low=1, high=100_000),
    Param("depth", int, "MLP hidden layers (0 = logistic regression)", low=0, high=32, models=("mlp",)),
    Param("width2", int, "MLP hidden units of the second and later hidden layers (default: as width)", low=1,
          high=100_000, models=("mlp",)),
    Param("conv1_maps", int, "LeNet feature maps of the first convolution", low=1, high=1024, models=("lenet",)),
    Param("conv2_maps", int, "LeNet feature maps of the second convolution", low=1, high=1024, models=("lenet",)),
    Param("activation", str, "hidden activation", choices=ACTIVATIONS),
    Param("init", str, "weight initialisation", choices=INITS),
    Param("loss", str, "training loss on the softmax output (positive_ce: -mean(y log clip(p1, 1e-10, 1)), "
          "two classes)", choices=LOSSES),
    Param("logged_loss", str, "the training loss recorded per epoch: the data loss alone, or the objective "
          "(with the penalties, as TensorFlow's programs print it)", choices=LOGGED_LOSSES),
    Param("mse_reduction", str, "the squared error over the outputs: summed, or averaged over them",
          choices=REDUCTIONS),
    Param("dropout", float, "drop rate of hidden layers (0 = off)", low=0, high=1, high_open=True),
    Param("input_dropout", float, "drop rate of the input (0 = off)", low=0, high=1, high_open=True),
    Param("l1", float, "L1 penalty on weights (not biases)", low=0),
    Param("l2", float, "L2 penalty (sum of squares) on weights (not biases)", low=0),
    Param("l2_form", str, "sum: l2 * sum(w^2) (Theano's tutorial); half: l2 * sum(w^2) / 2 (TensorFlow)",
          choices=L2_FORMS),
    Param("optimizer", str, "update rule", choices=OPTIMIZERS),
    Param("lr", float, "initial learning rate", low=0, low_open=True),
    Param("momentum", float, "momentum coefficient (momentum, nesterov)", low=0, high=1, high_open=True),
    Param("rho", float, "decay of squared-gradient averages (rmsprop, adadelta)", low=0, high=1, low_open=True,
          high_open=True),
    Param("beta1", float, "Adam first-moment decay", low=0, high=1, high_open=True),
    Param("beta2", float, "Adam second-moment decay", low=0, high=1, high_open=True),
    Param("eps", float, "numerical stabiliser of adaptive rules", low=0, low_open=True),
    Param("schedule", str, "learning-rate schedule over epochs", choices=SCHEDULES),
    Param("lr_end", float, "final learning rate of the linear schedule", low=0, low_open=True),
    Param("decay", float, "per-epoch factor (exponential: lr*decay**epoch) or rate (inverse_time: lr/(1+decay*epoch))",
          low=0),
    Param("decay_steps", int, "count the decay in optimizer steps: lr*decay**(step/decay_steps) (default: per epoch)",
          low=1, high=10**9),
    Param("staircase", bool, "with decay_steps: decay in whole periods, floor(step/decay_steps)"),
    Param("lr_horizon", int, "epochs over which the linear schedule goes from lr to lr_end (default: the run's)",
          low=1, high=10**6),
    Param("batch_size", int, "minibatch size", low=1, high=1_000_000),
    Param("ema", float, "moving-average decay of weights used for evaluation (0 = off)", low=0, high=1, high_open=True),
    Param("patience", int, "early stopping patience in epochs, Theano-tutorial style (0 = off)", low=0),
    Param("improvement_threshold", float, "relative validation improvement that extends patience",
          low=0, high=1, low_open=True),
    Param("valid_size", float, "validation share of the training data (< 1) or number of images (>= 1)",
          low=0, low_open=True),
    Param("split", str, "random: valid_size held out at random; first, last: the first or last valid_size images "
          "validate; tensorflow: the first 5,000; theano: the last 10,000", choices=SPLITS),
    Param("leaky_slope", float, "leaky_relu's slope below zero (TensorFlow's default is 0.2)", low=0, high=1),
]}

OPTIONAL = ("lr_end", "width2", "decay_steps", "lr_horizon")  # None: derived (lr / 10, width, per epoch, the run)
VALID_SIZE = 0.2  # the validation share of the training file, unless a study sets valid_size

# The hyperparameter post's baseline MLP (moving average of weights included); its LeNet trained with Adam.
_COMMON = dict(activation="relu", init="glorot", loss="cross_entropy", dropout=0.0, input_dropout=0.0,
               l1=0.0, l2=1e-4, momentum=0.9, rho=0.9, beta1=0.9, beta2=0.999, eps=1e-8,
               lr_end=None, batch_size=100, ema=0.99, patience=0, improvement_threshold=0.995, valid_size=VALID_SIZE,
               width2=None, mse_reduction="sum", l2_form="sum", decay_steps=None, staircase=False, lr_horizon=None,
               split="random", leaky_slope=0.01, logged_loss="data")
DEFAULTS: dict[str, dict] = {
    "mlp": dict(_COMMON, width=500, depth=1, optimizer="sgd", lr=0.8, schedule="exponential", decay=0.99),
    "lenet": dict(_COMMON, width=500, conv1_maps=20, conv2_maps=50, optimizer="adam", lr=1e-3,
                  schedule="constant", decay=0.99),
}
# Optimizer-specific defaults, used unless the user sets the parameter.
OPTIMIZER_DEFAULTS = {"adadelta": dict(rho=0.95, eps=1e-6), "rmsprop": dict(eps=1e-6), "adagrad": dict(eps=1e-6)}


def unknown(name: str, known=None, model: str | None = None) -> BadInput:
    """The error for an unknown parameter name, with the nearest valid one suggested (a built-in
    network's parameter given to a user's `model`: said so)."""
    if model is not None and is_user_model(model) and name in PARAMS:
        return BadInput(f"parameter '{name}' belongs to the built-in {', '.join(PARAMS[name].models)}, not to "
                        f"{model}: remove it, or declare it among the model's own parameters")
    known = list(known if known is not None else PARAMS)
    hint = did_you_mean(name, known, otherwise="valid names: " + ", ".join(known))
    return BadInput(f"unknown parameter '{name}': {hint}")


def check(name: str, value, model: str | None = None):
    """Return `value` converted to the parameter's type, or raise BadInput naming the allowed values."""
    params = PARAMS if model is None else known(model)
    if name not in params:
        raise unknown(name, params, model)
    p = params[name]
    if model is not None and not is_user_model(model) and model not in p.models:
        raise BadInput(f"parameter '{name}' applies to {', '.join(p.models)} only, not {model}: remove it")
    if value is None and name in OPTIONAL:
        return None
    bad = BadInput(f"parameter {name}={value!r} is invalid: use {p.describe()}")
    if p.choices:
        if not isinstance(value, str) or value not in p.choices:
            raise bad
        return value
    if p.kind is bool:
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):  # --param staircase=true
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise bad
        return value
    if isinstance(value, bool):
        raise bad
    if isinstance(value, str):
        value = value.strip()
        try:
            value = int(value) if p.kind is int else float(value)
        except ValueError:
            raise bad from None
    if p.kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise bad
    elif not isinstance(value, (int, float)):
        raise bad
    value = p.kind(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise bad
    if p.low is not None and (value < p.low or (p.low_open and value == p.low)):
        raise bad
    if p.high is not None and (value > p.high or (p.high_open and value == p.high)):
        raise bad
    return value


def check_model(model: str) -> str:
    """Return the model name or raise BadInput listing the models."""
    if model not in MODELS and not is_user_model(model):
        raise BadInput(f"unknown model {model!r}: use one of {', '.join(MODELS)}, or your own network as "
                       "package.module:function (importable on the workers)")
    return model


def is_user_model(model) -> bool:
    """Whether `model` names a user's own network (package.module:function) rather than a built-in one."""
    return isinstance(model, str) and USER_MODEL.fullmatch(model) is not None


KINDS = {"int": int, "float": float, "str": str, "bool": bool}  # the types a parameter may have
_declared: dict[str, dict[str, Param]] = {}  # a user model -> its own parameters, as declared in this process


def declare(model: str, own: dict[str, Param]) -> None:
    """Make a user model's own parameters known in this process: the worker declares what it imported,
    the control side what the study's spec recorded (Spec.model_params). BadInput when one of them
    reuses a training parameter's name, has no default, or has a default outside its own range."""
    for name, p in own.items():
        if not isinstance(p, Param) or p.kind not in KINDS.values():
            raise BadInput(f"model {model}: its parameter {name!r} is not a Param of int, float, str or bool: "
                           "declare it as storage.contract.params.Param(name, int, doc, low=..., default=...)")
        if name in PARAMS and name not in ARCHITECTURAL:
            raise BadInput(f"model {model}: its parameter '{name}' is one of sweeper's training parameters: "
                           "rename it (sweeper passes the training parameters itself)")
        if p.default is None:
            raise BadInput(f"model {model}: its parameter '{name}' has no default: give it one")
    _declared[model] = dict(own)
    for name, p in own.items():
        check(name, p.default, model)


def known(model: str) -> dict[str, Param]:
    """The parameters a study of `model` may set: a built-in model's, or the training parameters
    and a user model's own (declared first: `declare`)."""
    if not is_user_model(model):
        return PARAMS
    if model not in _declared:
        raise BadInput(f"model {model}: its parameters are not known in this process: load it on a worker "
                       f"(python -m workers check {model}) to check that it imports")
    return {**{k: p for k, p in PARAMS.items() if k not in ARCHITECTURAL}, **_declared[model]}


def param_to_json(p: Param) -> dict:
    """A Param as JSON (a user model's own parameters are stored with the study)."""
    return {**asdict(p), "kind": p.kind.__name__, "choices": list(p.choices), "models": list(p.models)}


def param_from_json(d: dict) -> Param:
    """The inverse of `param_to_json`."""
    return Param(**{**d, "kind": KINDS[d["kind"]], "choices": tuple(d["choices"]), "models": tuple(d["models"])})


def params_from_json(own: dict) -> dict[str, Param]:
    """A model's own parameters as `param_to_json` wrote them, by name."""
    return {name: param_from_json(d) for name, d in own.items()}


def resolve(model: str, overrides: dict | None = None) -> dict:
    """The full configuration of `model`: defaults, then optimizer defaults, then checked overrides."""
    check_model(model)
    overrides = {k: check(k, v, model) for k, v in (overrides or {}).items()}
    config = dict(DEFAULTS[model]) if model in DEFAULTS else _user_defaults(model)
    optimizer = overrides.get("optimizer", config["optimizer"])
    config.update(OPTIMIZER_DEFAULTS.get(optimizer, {}))
    config.update(overrides)
    if config["lr_end"] is None:
        config["lr_end"] = config["lr"] / 10
    if config["staircase"] and not config["decay_steps"]:
        raise BadInput("parameter staircase=true needs decay_steps (the steps of one decay period): add it")
    if config["schedule"] == "exponential" and not 0 < config["decay"] <= 1:
        raise BadInput(f"parameter decay={config['decay']!r} is invalid for the exponential schedule: "
                       "use a factor in (0, 1]")
    return config


def _user_defaults(model: str) -> dict:
    """A user model's configuration before the study's values: the training defaults, its own parameters'."""
    own = known(model)
    training = {k: v for k, v in DEFAULTS["mlp"].items() if k in own}
    return {**training, "lr": 0.1, "schedule": "constant", **{k: _declared[model][k].default for k in _declared[model]}}


def training_bytes(model: str, config: dict) -> int | None:
    """A rough upper bound of the memory one worker needs to train `model` with the resolved `config`
    on 28x28 images and 10 classes: float32 weights six times over (weights, gradients, two optimizer
    states, the moving average, the kept best epoch) and a minibatch's activations four times over; None
    for a user's own model, whose size sweeper cannot know."""
    if model not in MODELS:
        return None
    w, batch = config["width"], config["batch_size"]
    if model == "mlp":
        depth = config["depth"]
        sizes = [784] + ([w] + [config.get("width2") or w] * (depth - 1) if depth else []) + [10]
        weights = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
        activations = batch * sum(sizes)
    else:
        c1, c2 = config["conv1_maps"], config["conv2_maps"]
        weights = c1 * 25 + c1 + c2 * c1 * 25 + c2 + c2 * 16 * w + w + w * 10 + 10
        activations = batch * (784 + c1 * 24 * 24 + c1 * 12 * 12 + c2 * 8 * 8 + c2 * 16 + w + 10)
    return 4 * (6 * weights + 4 * activations)
