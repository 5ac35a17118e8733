"""Read a study spec from TOML and validate every key and value before anything is created."""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import replace
from pathlib import Path

from storage import artifacts
from storage.contract import datasets, samplers
from storage.contract.errors import BadInput, did_you_mean
from storage.contract.params import (
    check,
    check_model,
    declare,
    is_user_model,
    known,
    param_to_json,
    resolve,
    training_bytes,
    unknown,
)
from storage.contract.spec import DRAWS, METRICS, SEED, Spec, default
from storage.contract.spec import label as label_of
from sweeper import evidence, usermodels

TABLES = ("study", "params", "point", "enqueue", "reference", "claim", "condition", "tune")
STUDY_KEYS = ("name", "model", "dataset", "metric", "direction", "n_trials", "epochs", "steps", "seed", "repeats",
              "sampler", "pruner", "heartbeat", "grace", "max_retry", "title", "about", "section",
              "post_train_images", "keep", "checkpoint_every", "seed_draws", "compare")
KINDS = ("float", "int", "choice", "grid")
DIST_KEYS = KINDS + ("log", "step")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
MAX_GRID = 10_000
MAX_TRIALS = 1_000_000
MAX_EPOCHS = 100_000
MAX_STEPS = 10**9
MAX_HEARTBEAT_S = 86_400  # a day: longer waits overflow the heartbeat thread's timer
MAX_REPEATS = 1000
SEED_LIMIT = 2**32  # numpy's seeds: a replicate's seed (seed + repeats - 1) must stay below it


def read(path: str | Path, name: str | None = None, dataset: str | None = None) -> Spec:
    """Parse and validate the TOML file at `path`; `name` overrides [study] name, `dataset` its data set.
    BadInput for anything but a regular file (a FIFO would wait for a writer, /dev/zero never end) and for
    one over 1 MiB."""
    import stat

    limit = 2**20  # a spec is a short file: the shipped ones are a few KiB
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens without a writer, then is refused
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise BadInput(f"cannot read spec {path}: not a regular file (a folder, device or pipe): "
                               "give a .toml file")
            raw = f.read(limit + 1)
        if len(raw) > limit:
            raise BadInput(f"spec {path} is larger than 1 MiB: a spec is a short TOML file; check the path")
        text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as read_text's newlines
    except OSError as exc:
        raise BadInput(f"cannot read spec {path}: {exc.strerror or exc}: check the path") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path}: invalid TOML: {str(exc).splitlines()[0]}: fix the syntax") from None
    try:
        if dataset is not None and isinstance(data.get("study"), dict):  # sweeper run --dataset
            data["study"]["dataset"] = dataset
        return parse(data, name=name)
    except BadInput as exc:
        raise BadInput(f"{path}: {exc}") from None


def parse(data: dict, name: str | None = None, *, post_length: str | None = None) -> Spec:
    """Validate a spec already read from TOML (a dict of tables) into a Spec.

    `post_length`: the study was cut from this length, the post's (sweeper reproduce --fraction), so a
    claim about a later epoch is kept (it is then inconclusive) instead of refused.
    """
    for key in data:
        if key not in TABLES:
            raise _unknown_key(key, TABLES, "top-level table")
    study = _table(data, "study")
    for key in study:
        if key not in STUDY_KEYS:
            raise _unknown_key(key, STUDY_KEYS, "key in [study]")
    name = _name(name if name is not None else study.get("name"))
    model = check_model(_str(study, "model", "mlp"))
    dataset = datasets.check(study.get("dataset", "digits"))
    metric = _metric(study)
    if "epochs" in study and "steps" in study:
        raise BadInput("[study] gives both epochs and steps: give the training length in one of them")
    if "steps" in study:
        epochs, steps = None, _int(study, "steps", None, low=1, high=MAX_STEPS, why="optimizer steps in all")
    else:
        epochs, steps = _int(study, "epochs", None, low=1, high=MAX_EPOCHS), None
    seed = _int(study, "seed", default("seed"), low=0, high=SEED_LIMIT - 1)
    heartbeat = _int(study, "heartbeat", default("heartbeat"), low=1, high=MAX_HEARTBEAT_S)
    grace = _int(study, "grace", 2 * heartbeat, low=heartbeat + 1, high=MAX_HEARTBEAT_S * 10,
                 why=f"a trial is stale only after missing a heartbeat ({heartbeat} s)")
    max_retry = _int(study, "max_retry", default("max_retry"), low=0, high=1000)
    repeats = _int(study, "repeats", default("repeats"), low=1, high=MAX_REPEATS,
                   why="training seeds per configuration")
    if seed + repeats > SEED_LIMIT:
        raise BadInput(f"[study] seed + repeats = {seed + repeats} exceeds 2**32: lower the seed")
    words = {key: _str(study, key, default(key)) for key in ("title", "about", "section")}
    draws = _draws(study.get("seed_draws", default("seed_draws")))
    keep = _str(study, "keep", default("keep"))
    if keep not in artifacts.KEEP:
        raise _unknown_key(keep, artifacts.KEEP, "[study] keep")
    post_images = study.get("post_train_images")
    if post_images is not None:
        post_images = _int(study, "post_train_images", None, low=1, high=10**9,
                           why="the training images of the post's run")

    params = _table(data, "params")
    point_tables = _tables(data, "point")
    users = None  # a user's model or data set, as a worker process finds them (sweeper/usermodels.py)
    if is_user_model(model) or datasets.is_users(dataset):
        users = usermodels.describe(model, dataset)
        if is_user_model(model):
            declare(model, users.params)
    grid_requested = bool(point_tables) or any(isinstance(v, dict) and "grid" in v for v in params.values())
    sampler = samplers.normalize("sampler", study.get("sampler", "grid" if grid_requested else "tpe"),
                                 seed=seed, epochs=epochs)
    pruner = samplers.normalize("pruner", study.get("pruner", "none"), seed=seed, epochs=epochs)
    is_grid = sampler["name"] == "grid"
    fixed, space = {}, {}
    for key, value in params.items():
        if key not in known(model):
            raise BadInput(f"[params] {unknown(key, known(model), model)}")
        if isinstance(value, dict):
            space[key] = _distribution(key, value, model, is_grid)
        elif isinstance(value, list):
            raise BadInput(f"[params] {key} = {value!r}: a list is not one value: write "
                           f"{key} = {{choice = {_toml(value)}}} to search among them")
        else:
            fixed[key] = _check(key, value, model)
    _check_combinations(model, fixed, space)
    _check_two_classes(dataset, users.n_classes if users else None, fixed, space, point_tables)
    if users is not None and users.own_validation:
        _check_own_validation(dataset, draws, params, point_tables)
    points = []
    if point_tables:
        if not is_grid:
            raise BadInput("[[point]] entries make a grid study: remove sampler from [study] or set it to \"grid\"")
        if space:
            raise BadInput(f"[params] {next(iter(space))} is searched, but the study lists its configurations as "
                           "[[point]] entries: give it a fixed value in [params] or in each [[point]]")
        points, space = _points(point_tables, model, fixed)
    if repeats > 1:
        if not is_grid:
            raise BadInput(f"[study] repeats = {repeats} needs a grid study for now (a sampler would not pair the "
                           "seeds of one configuration): list values with {grid = [...]} or [[point]] entries, "
                           "or remove repeats")
        from optuna.distributions import CategoricalDistribution

        space[SEED] = CategoricalDistribution([seed + i for i in range(repeats)])

    n_points = 1
    if is_grid:
        n_points = (len(points) if points else math.prod(len(d.choices) for k, d in space.items() if k != SEED))
        n_points *= repeats
        if n_points > MAX_GRID:
            raise BadInput(f"the grid has {n_points} points, more than {MAX_GRID}: use fewer values or a sampler")
    n_trials = _int(study, "n_trials", n_points if is_grid else None, low=1, high=MAX_TRIALS)
    if is_grid and n_trials > n_points:
        raise BadInput(f"[study] n_trials = {n_trials} exceeds the {n_points} grid points"
                       + (f" ({n_points // repeats} configurations x {repeats} seeds)" if repeats > 1 else "") + ": "
                       "remove n_trials (the grid size is the default) or add grid values")
    spec = Spec(name=name, model=model, dataset=dataset, n_trials=n_trials, epochs=epochs, metric=metric,
                seed=seed, sampler=sampler, pruner=pruner, heartbeat=heartbeat, grace=grace,
                max_retry=max_retry, fixed=fixed, space=space, repeats=repeats, points=points,
                steps=steps, post_train_images=post_images, keep=keep, seed_draws=draws, **words,
                model_params={k: param_to_json(p) for k, p in (users.params if users else {}).items()},
                checkpoint_every=_int(study, "checkpoint_every", default("checkpoint_every"), low=0, high=MAX_EPOCHS,
                                      why="epochs between a running trial's checkpoints (0: none)"))
    spec = replace(spec, enqueue=_enqueue(_tables(data, "enqueue"), spec))
    spec = replace(spec, compare=_compare(study.get("compare", []), spec))
    spec = replace(spec, tune=_tune(_table(data, "tune"), spec))
    samplers.rehearse(sampler, pruner, space, epochs, grid=spec.grid_space() if is_grid else None)
    _check_memory(spec)
    return evidence.attach(spec, _tables(data, "reference"), _tables(data, "claim"), _tables(data, "condition"),
                           post_length=post_length)


def _draws(value) -> list[str]:
    """[study] seed_draws: the parts of a run a replicate's seed draws, checked, in DRAWS' order."""
    fix = f"list some of {', '.join(DRAWS)}, e.g. seed_draws = {_toml(list(DRAWS))}"
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInput(f"[study] seed_draws = {value!r} is not a list of names: {fix}")
    for v in value:
        if v not in DRAWS:
            raise _unknown_key(v, DRAWS, "[study] seed_draws entry")
    if len(set(value)) != len(value):
        raise BadInput(f"[study] seed_draws = {_toml(value)} names a part twice: {fix}")
    return [d for d in DRAWS if d in value]


MAX_TUNE = 1000


def _compare(value, spec: Spec) -> list[str]:
    """[study] compare: the scientific parameters, each one that the study's configurations vary."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInput(f"[study] compare = {value!r} is not a list of parameter names: e.g. compare = [\"activation\"]")
    for name in value:
        if name not in spec.varied:
            raise BadInput(f"[study] compare names {name!r}, which the configurations do not vary: name one of "
                           f"{', '.join(spec.varied) or '(none: the study has one configuration)'}")
    return list(value)


def _tune(table: dict, spec: Spec) -> dict:
    """[tune]: the nuisance parameters searched for each configuration (ranges as in [params]) and `budget`,
    the trials of each search; checked, kept as written. A parameter the configurations also differ in may
    be tuned when [study] compare names the others (each configuration's own value is then its start)."""
    if not table:
        return {}
    if not spec.is_grid:
        raise BadInput("[tune] tunes each configuration of a grid: give the configurations as {grid = [...]} "
                       "values or [[point]] entries, or remove [tune]")
    if "budget" not in table:
        raise BadInput("[tune] has no budget: add budget = N, the trials of each configuration's search")
    budget = table["budget"]
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= MAX_TUNE:
        raise BadInput(f"[tune] budget = {budget!r} is invalid: use a whole number of trials per configuration "
                       f"from 1 to {MAX_TUNE}")
    out = {"budget": budget}
    for key, value in table.items():
        if key == "budget":
            continue
        if key not in known(spec.model):
            raise BadInput(f"[tune] {unknown(key, known(spec.model), spec.model)}")
        if not isinstance(value, dict) or "grid" in value or "choice" in value:
            raise BadInput(f"[tune] {key} = {value!r} is not a range: write {key} = {{{_example(key, spec.model)}}}")
        if key == SEED or key in (spec.compare or spec.varied):  # with compare, the others are nuisances
            raise BadInput(f"[tune] {key} is what the configurations differ in: tune another parameter"
                           + ("" if spec.compare else ", or name the compared ones in [study] compare"))
        _distribution(key, value, spec.model, False)
        out[key] = value
    if len(out) == 1:
        raise BadInput("[tune] names no parameter to tune: add one, e.g. lr = {float = [0.01, 1.0], log = true}")
    return out


def _enqueue(tables: list[dict], spec: Spec) -> list[dict]:
    """[[enqueue]] entries -> the configurations run first (values of searched parameters, checked)."""
    out = []
    for i, table in enumerate(tables, 1):
        if not table:
            raise BadInput(f"[[enqueue]] {i} is empty: give it values of searched parameters, e.g. lr = 0.1")
        params = spec.in_space(table, f"[[enqueue]] {i}")
        if params in out:
            raise BadInput(f"[[enqueue]] {i} repeats [[enqueue]] {out.index(params) + 1}: remove one")
        out.append(params)
    if len(out) > spec.n_trials:
        raise BadInput(f"{len(out)} [[enqueue]] entries exceed [study] n_trials = {spec.n_trials}: raise n_trials "
                       "or remove entries")
    return out


def _points(tables: list[dict], model: str, fixed: dict) -> tuple[list[dict], dict]:
    """[[point]] entries -> ([{"label", "params"}], the categorical space of what they vary).

    Every point gets a value for every parameter that any point sets (the fixed value or the
    model's default where it sets none), so that all trials of the study have the same parameters.
    """
    from optuna.distributions import CategoricalDistribution

    varied, given = [], []
    for i, table in enumerate(tables, 1):
        where = f"[[point]] {i}"
        label = table.get("name", None)
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise BadInput(f"{where}: name = {label!r} must be a non-empty string")
        values = {}
        for key, value in table.items():
            if key == "name":
                continue
            if key not in known(model):
                raise BadInput(f"{where}: {unknown(key, known(model), model)}")
            if key in fixed:
                raise BadInput(f"{where}: {key} is fixed in [params]: remove it from one of them")
            if isinstance(value, (dict, list)):
                raise BadInput(f"{where}: {key} = {value!r}: a point takes one value per parameter")
            values[key] = _check(key, value, model)
            if key not in varied:
                varied.append(key)
        given.append((label, values))
    points, seen = [], {}
    for i, (label, values) in enumerate(given, 1):
        try:
            config = resolve(model, {**fixed, **values})
        except BadInput as exc:
            raise BadInput(f"[[point]] {i}: {exc}") from None
        params = {k: values.get(k, config[k]) for k in varied}
        label = label or label_of(values)
        key = repr(sorted(params.items()))
        if key in seen:
            raise BadInput(f"[[point]] {i} repeats [[point]] {seen[key]} ({label_of(params)}): remove one")
        seen[key] = i
        if any(p["label"] == label for p in points):
            raise BadInput(f"[[point]] {i}: name {label!r} is used twice: give each point its own name")
        points.append(dict(label=label, params=params))
    space = {}
    for key in varied:
        choices = []
        for p in points:
            if p["params"][key] not in choices:
                choices.append(p["params"][key])
        space[key] = CategoricalDistribution(choices)
    return points, space


def _tables(data: dict, key: str) -> list[dict]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise BadInput(f"'{key}' must be a list of tables: write [[{key}]] above each entry")
    return value


def _distribution(name: str, table: dict, model: str, is_grid: bool):
    """One [params] table -> an Optuna distribution (a grid axis is a categorical one)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    where = f"[params] {name}"
    for key in table:
        if key not in DIST_KEYS:
            raise _unknown_key(key, DIST_KEYS, f"key in {where}")
    kinds = [k for k in KINDS if k in table]
    if len(kinds) != 1:
        raise BadInput(f"{where} needs exactly one of {', '.join(KINDS)} (has {', '.join(kinds) or 'none'}): "
                       f"e.g. {name} = {{{_example(name, model)}}}")
    kind = kinds[0]
    param = known(model)[name]
    if not is_user_model(model) and model not in param.models:
        raise BadInput(f"{where}: {name} applies to {', '.join(param.models)} only, not {model}: remove it")
    if kind in ("choice", "grid"):
        for key in ("log", "step"):
            if key in table:
                raise BadInput(f"{where}: '{key}' applies to float and int ranges, not to a {kind} list: remove it")
        values = table[kind]
        if not isinstance(values, list) or not values:
            raise BadInput(f"{where}: {kind} must be a non-empty list, "
                           f"e.g. {name} = {{{kind} = {_example_list(name, model)}}}")
        values = [_check(name, v, model) for v in values]
        if len(set(map(repr, values))) != len(values):
            raise BadInput(f"{where}: {kind} lists a value twice: remove the duplicate")
        if kind == "grid" and not is_grid:
            raise BadInput(f"{where}: grid values need sampler = \"grid\": set it in [study], or write "
                           f"{{choice = ...}} to let the sampler choose")
        return CategoricalDistribution(values)

    if param.choices:
        raise BadInput(f"{where}: {name} is one of {', '.join(param.choices)}, not a range: "
                       f"write {name} = {{choice = {_toml(list(param.choices[:2]))}}}")
    if kind == "int" and param.kind is not int:
        raise BadInput(f"{where}: {name} is a number, not an integer: write {name} = {{float = [LOW, HIGH]}}")
    if kind == "float" and param.kind is int:
        raise BadInput(f"{where}: {name} is an integer: write {name} = {{int = [LOW, HIGH]}}")
    bounds = table[kind]
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise BadInput(f"{where}: {kind} must be [LOW, HIGH], e.g. {name} = {{{_example(name, model)}}}")
    low, high = (_check(name, b, model) for b in bounds)
    if low > high:
        raise BadInput(f"{where}: impossible range [{low}, {high}] (low > high): swap the bounds")
    log = table.get("log", False)
    if not isinstance(log, bool):
        raise BadInput(f"{where}: log must be true or false, not {log!r}")
    if log and low <= 0:
        raise BadInput(f"{where}: a log scale needs low > 0, got {low}: raise the low bound or drop log")
    step = table.get("step")
    if step is not None:
        if log:
            raise BadInput(f"{where}: step and log cannot be combined: remove one")
        if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0 or \
                (kind == "int" and not float(step).is_integer()):
            raise BadInput(f"{where}: step must be a positive {'integer' if kind == 'int' else 'number'}, not {step!r}")
    if kind == "int":
        step = int(step or 1)
        if is_grid:
            return CategoricalDistribution(list(range(low, high + 1, step)))
        return IntDistribution(low, high, log=log, step=step)
    if is_grid:
        raise BadInput(f"{where}: the grid sampler needs listed values, not a float range: "
                       f"write {name} = {{grid = [...]}}")
    return FloatDistribution(float(low), float(high), log=log, step=None if step is None else float(step))


def _check_combinations(model: str, fixed: dict, space: dict) -> None:
    """Every value a distribution can reach at its ends, with the fixed values, must resolve."""
    resolve(model, fixed)
    for name, dist in space.items():
        ends = dist.choices if hasattr(dist, "choices") else (dist.low, dist.high)
        for value in ends:
            try:
                resolve(model, {**fixed, name: value})
            except BadInput as exc:
                raise BadInput(f"[params] {name} can be {value!r}, but {exc}") from None


def _check_two_classes(dataset: str, n_classes: int | None, fixed: dict, space: dict, points: list[dict]) -> None:
    """BadInput when the two-class loss could meet a data set of more classes (`n_classes`: a user's data
    set's, as a worker found it; None: a built-in one's)."""
    losses = {fixed.get("loss")} | set(getattr(space.get("loss"), "choices", ())) | {p.get("loss") for p in points}
    n_classes = n_classes or (2 if dataset == "xor" else 10)
    if "positive_ce" in losses and n_classes != 2:
        raise BadInput(f"loss positive_ce is for two classes and {dataset} has {n_classes}: use cross_entropy or "
                       "mse, or a data set of two classes")


def _check_own_validation(dataset: str, draws: list, params: dict, points: list[dict]) -> None:
    """BadInput when a study would split a data set that brings its own validation pair."""
    if "split" in draws:
        raise BadInput(f"[study] seed_draws has \"split\", but {dataset} brings its own validation set, so a seed "
                       "cannot draw one: remove \"split\"")
    for key in ("valid_size", "split"):
        if key in params or any(key in p for p in points):
            raise BadInput(f"[params] {key} is set, but {dataset} brings its own validation set and is not split: "
                           f"remove {key}")


def _check(name: str, value, model: str):
    try:
        return check(name, value, model)
    except BadInput as exc:
        raise BadInput(f"[params] {exc}") from None


def _metric(study: dict) -> str:
    metric = _str(study, "metric", default("metric"))
    if metric.startswith("test_"):
        raise BadInput(f"[study] metric = \"{metric}\" would choose hyperparameters on the test set: use "
                       f"valid_{metric[5:]} (the test error is recorded for every trial)")
    if metric not in METRICS:
        raise _unknown_key(metric, METRICS, "metric")
    direction = study.get("direction")
    if direction is not None and direction != METRICS[metric]:
        if direction not in ("minimize", "maximize"):
            raise BadInput(f"[study] direction = {direction!r} is invalid: use minimize or maximize")
        raise BadInput(f"[study] {metric} is to {METRICS[metric]}, not {direction}: "
                       f"remove direction or set it to {METRICS[metric]}")
    return metric


def _table(data: dict, key: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise BadInput(f"'{key}' must be a table: write [{key}] on its own line")
    return value


def _name(value) -> str:
    if value is None:
        raise BadInput("the study has no name: add name = \"...\" to [study] or pass --name")
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise BadInput(f"study name {value!r} is invalid: use letters, digits, '_', '.' and '-' (at most 128)")
    return value


def _str(study: dict, key: str, default: str) -> str:
    value = study.get(key, default)
    if not isinstance(value, str):
        raise BadInput(f"[study] {key} = {value!r} must be a string: write {key} = \"{default}\"")
    return value


def _int(study: dict, key: str, default, *, low: int, high: int, why: str = "") -> int:
    value = study.get(key, default)
    if value is None:
        raise BadInput(f"[study] {key} is missing: add e.g. {key} = 10")
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInput(f"[study] {key} = {value!r} is invalid: use an integer from {low} to {high}"
                       + (f" ({why})" if why else ""))
    return value


def _check_memory(spec: Spec) -> None:
    """BadInput when the largest network the spec allows would not fit in this machine's memory."""
    if is_user_model(spec.model):  # a user's own model: its size is its author's to know
        return
    largest = dict(spec.fixed)
    for key, dist in spec.space.items():
        values = getattr(dist, "choices", None) or [dist.high]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if numbers:
            largest[key] = max(numbers)
    config = resolve(spec.model, {k: v for k, v in largest.items() if k in known(spec.model)})
    need = training_bytes(spec.model, config)
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have:
        shape = ", ".join(f"{k} {config[k]}" for k in ("width", "depth", "conv1_maps", "conv2_maps", "batch_size")
                          if k in config and (k in spec.space or k in spec.fixed))
        raise BadInput(f"the largest network this study allows ({shape}) needs about {need / 2**30:.0f} GiB to "
                       f"train, more than this machine's {have / 2**30:.0f} GiB: lower its width or depth")


def _unknown_key(key: str, known, where: str) -> BadInput:
    return BadInput(f"unknown {where} '{key}': {did_you_mean(key, known)}")


def _toml(values: list) -> str:
    return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else repr(v) for v in values) + "]"


def _example(name: str, model: str) -> str:
    p = known(model)[name]
    if p.choices:
        return f"choice = {_toml(list(p.choices[:2]))}"
    return "int = [1, 10]" if p.kind is int else "float = [1e-4, 1e-1], log = true"


def _example_list(name: str, model: str) -> str:
    p = known(model)[name]
    return _toml(list(p.choices[:2])) if p.choices else ("[1, 2]" if p.kind is int else "[0.1, 0.2]")
