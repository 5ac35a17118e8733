"""A study's spec: what to train and how to search, and its JSON form (the study stores it: storage.studies)."""

from __future__ import annotations

import itertools
import json
from dataclasses import MISSING, dataclass, field, fields, replace

from storage.contract.errors import BadInput

VERSION = 4  # 2: enqueue, keep, checkpoint_every; 3: steps, conditions, post_train_images; 4: model_params
READS = (1, 2, 3, 4)
# The objective's metric and the direction it is optimised in. The test set is never a metric:
# choosing hyperparameters on it would leak it into the selection (it is recorded per trial instead).
METRICS = {"valid_error": "minimize", "valid_accuracy": "maximize"}
SEED = "seed"  # the searched "parameter" that carries a replicate's training seed (`[study] repeats`)
# What a training seed can draw: the initial weights, the minibatch order, the dropout masks, and which
# images of the training file validate. Parts a study does not let it draw come from `[study] seed`.
DRAWS = ("init", "order", "dropout", "split")
DEFAULT_DRAWS = ("init", "order", "dropout")
# The fields that describe a study without changing its trials (a stored study takes their new values).
DESCRIPTIVE = ("references", "claims", "conditions", "title", "about", "section", "post_train_images",
               "post_length", "keep", "checkpoint_every", "compare", "tune")


@dataclass(frozen=True)
class Spec:
    """A validated study spec: fixed training parameters, a search space, budget, sampler, pruner."""

    name: str
    model: str
    dataset: str
    n_trials: int
    epochs: int | None  # the length in passes over the training set, or None when given in steps
    metric: str = "valid_error"
    seed: int = 0
    sampler: dict = field(default_factory=lambda: {"name": "tpe", "seed": 0})
    pruner: dict = field(default_factory=lambda: {"name": "none"})
    heartbeat: int = 30
    grace: int = 60
    max_retry: int = 3
    fixed: dict = field(default_factory=dict)
    space: dict = field(default_factory=dict)  # parameter name -> optuna BaseDistribution
    repeats: int = 1  # training seeds per configuration: seed, seed + 1, ... (the `seed` axis of a grid)
    points: list = field(default_factory=list)  # explicit configurations ([[point]]): {"label", "params"}
    enqueue: list = field(default_factory=list)  # configurations run first ([[enqueue]]): searched params
    references: list = field(default_factory=list)  # the posts' figures ([[reference]], sweeper/evidence.py)
    claims: list = field(default_factory=list)  # the posts' claims in a checkable form ([[claim]])
    title: str = ""  # one line for reports
    about: str = ""  # the setup in a paragraph, for reports
    section: str = ""  # the topic it reproduces (sweeper reproduce)
    steps: int | None = None  # the length in optimizer steps (minibatch updates), instead of epochs
    conditions: list = field(default_factory=list)  # the post's settings beside ours ([[condition]])
    post_train_images: int | None = None  # how many training images the post had (the report compares ours)
    post_length: str | None = None  # the post's length, in words, when this run was cut shorter (sweeper reproduce)
    keep: str = "best"  # whose weights are kept as artifacts: best (each trial best when it finished), all, none
    checkpoint_every: int = 5  # a running trial saves its training state every this many epochs (0: never)
    seed_draws: list = field(default_factory=lambda: list(DEFAULT_DRAWS))  # what a replicate's seed varies (DRAWS)
    compare: list = field(default_factory=list)  # the scientific parameters the configurations differ in
    tune: dict = field(default_factory=dict)  # [tune]: nuisance parameters searched per configuration, and budget
    model_params: dict = field(default_factory=dict)  # a user model's own parameters (params.param_to_json)

    def __post_init__(self):
        from storage.contract.params import declare, is_user_model, params_from_json

        if is_user_model(self.model):  # what the worker imported when the study was made, known here too
            declare(self.model, params_from_json(self.model_params))

    @property
    def direction(self) -> str:
        """minimize or maximize, from the metric."""
        return METRICS[self.metric]

    @property
    def length(self) -> str:
        """The training length in words: "20 epochs", "30,000 steps"."""
        return length_words(self.epochs, self.steps)

    @property
    def heading(self) -> str:
        """The study in a heading or a plot's title: its title, else its name."""
        return self.title or self.name

    @property
    def is_grid(self) -> bool:
        """Whether the study walks a grid (every point is enqueued when the study is created)."""
        return self.sampler["name"] == "grid"

    def grid_space(self) -> dict[str, list]:
        """The grid's axes: parameter -> values (the choices of each categorical distribution)."""
        return {name: list(dist.choices) for name, dist in self.space.items()}

    def grid_points(self) -> list[dict]:
        """Every trial of the grid: each configuration with each seed, seed by seed (so that a
        partial run has every configuration once before any twice)."""
        seeds = self.grid_space().get(SEED)
        configs = [c["params"] for c in self.configs()]
        if seeds is None:
            return configs
        return [{**config, SEED: s} for s in seeds for config in configs]

    def configs(self) -> list[dict]:
        """The grid's configurations without the seed, each {"label": str, "params": {name: value}}:
        the [[point]] entries, or the product of the axes in the order written."""
        if self.points:
            return [dict(label=p["label"], params=dict(p["params"])) for p in self.points]
        axes = {k: v for k, v in self.grid_space().items() if k != SEED}
        out = []
        for values in itertools.product(*axes.values()):
            params = dict(zip(axes, values, strict=True))
            out.append(dict(label=label(params), params=params))
        return out

    @property
    def varied(self) -> list[str]:
        """The searched parameters that tell configurations apart (the seed is not one)."""
        return [k for k in self.space if k != SEED]

    def metric_value(self, valid_error: float) -> float:
        """The objective's value for a validation error."""
        return valid_error if self.metric == "valid_error" else 1.0 - valid_error

    def to_attr(self) -> dict:
        """A JSON-ready dict; distributions through optuna.distributions.distribution_to_json."""
        from optuna.distributions import distribution_to_json

        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "space"}
        out["space"] = {k: json.loads(distribution_to_json(v)) for k, v in self.space.items()}
        out["version"] = VERSION
        return json.loads(json.dumps(out))

    @classmethod
    def from_attr(cls, attr: dict) -> "Spec":
        """The inverse of `to_attr`."""
        from optuna.distributions import json_to_distribution

        attr = dict(attr)
        if attr.pop("version", None) not in READS:
            raise BadInput(f"study spec version is not one of {READS}: this sweeper is older or newer than "
                           "the one that created the study; use the same version")
        attr["space"] = {k: json_to_distribution(json.dumps(v)) for k, v in attr.get("space", {}).items()}
        attr.pop("full_epochs", None)  # versions 1-2: the posts' length, now written as the study's own
        return cls(**attr)

    @property
    def keeps_files(self) -> bool:
        """Whether its workers write files beside the database: kept weights or checkpoints."""
        return self.keep != "none" or self.checkpoint_every > 0

    def in_space(self, params: dict, where: str) -> dict:
        """`params` (searched parameters, some or all) checked against the study's space, converted to
        their types; BadInput naming the first one that is not searched or lies outside its range."""
        from storage.contract.params import check

        if self.is_grid:
            raise BadInput(f"{where}: study '{self.name}' is a grid: it runs its own points; queue configurations "
                           "in a study with a sampler")
        out = {}
        for key, value in params.items():
            if key not in self.space:
                fixed = f"fixed at {short(self.fixed[key])}" if key in self.fixed else "not a parameter"
                raise BadInput(f"{where}: {key} is {fixed} in study '{self.name}': give searched parameters "
                               f"only ({', '.join(self.space)})")
            dist, value = self.space[key], check(key, value, self.model)
            if not _inside(dist, value):
                raise BadInput(f"{where}: {key} = {short(value)} lies outside the study's space ({_range(dist)})")
            out[key] = value
        return out

    def same_as(self, other: "Spec") -> bool:
        """Whether two specs are the same in every field (the study name aside)."""
        return replace(self, name="").to_attr() == replace(other, name="").to_attr()

    def search_attr(self) -> dict:
        """`to_attr` of what decides the trials: without the name and the DESCRIPTIVE fields, points
        without their names."""
        points = [p["params"] for p in self.points]
        return replace(self, name="", points=points, **{name: default(name) for name in DESCRIPTIVE}).to_attr()

    def same_search(self, other: "Spec") -> bool:
        """Whether two specs train the same trials (they may differ in name and description)."""
        return self.search_attr() == other.search_attr()


def _inside(dist, value) -> bool:
    """Whether an Optuna distribution can give `value` (its choices; its range and step)."""
    if hasattr(dist, "choices"):
        return value in dist.choices
    if not dist.low <= value <= dist.high:
        return False
    return dist.step is None or abs((value - dist.low) / dist.step - round((value - dist.low) / dist.step)) < 1e-9


def _range(dist) -> str:
    """A distribution in words: "0.01 to 0.5, log", "one of sgd, adam"."""
    if hasattr(dist, "choices"):
        return "one of " + ", ".join(map(short, dist.choices))
    return f"{short(dist.low)} to {short(dist.high)}" + (", log" if dist.log else "")


def length_words(epochs, steps) -> str:
    """A training length in words: "30,000 steps" when given in steps, else "20 epochs"."""
    return f"{steps:,} steps" if steps is not None else f"{epochs:,} epochs"


def label(params: dict) -> str:
    """A configuration's name from its parameters: "l2=0.0001, l1=0" ("baseline" when none vary)."""
    return ", ".join(f"{k}={short(v)}" for k, v in params.items()) or "baseline"


def short(value) -> str:
    """A parameter value for people: floats with 4 significant digits."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:.4g}" if isinstance(value, float) else str(value)



def default(name: str):
    """Spec's default for field `name`, written once in the class above (a fresh list or dict)."""
    found = {f.name: f for f in fields(Spec)}[name]
    return found.default_factory() if found.default is MISSING else found.default
