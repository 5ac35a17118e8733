"""Samplers and pruners by name: check a spec's `sampler`/`pruner` settings and build the Optuna objects."""

from __future__ import annotations

import inspect

from storage.contract.errors import BadInput, did_you_mean, optuna_experimental

SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "grid": "GridSampler", "cmaes": "CmaEsSampler",
            "qmc": "QMCSampler"}
PRUNERS = {"none": "NopPruner", "median": "MedianPruner", "hyperband": "HyperbandPruner",
           "successive_halving": "SuccessiveHalvingPruner"}
SEEDS = 2**32
# Samplers whose workers must share one seed: QMC draws point k of one sequence by trial count.
SHARED_SEED = ("qmc", "grid")
# The options' types and ranges: a wrong type or a degenerate value failed every worker, a huge one
# exhausted its memory. Options not listed (new in a later Optuna) are checked by the rehearsal only.
INTS = {"seed": (0, 2**32 - 1), "n_startup_trials": (0, 100_000), "n_ei_candidates": (1, 10_000),
        "popsize": (1, 10_000), "inc_popsize": (1, 100), "n_warmup_steps": (0, 1_000_000),
        "interval_steps": (1, 1_000_000), "n_min_trials": (1, 100_000), "min_resource": (1, 1_000_000),
        "max_resource": (1, 1_000_000), "reduction_factor": (2, 100), "bootstrap_count": (0, 1_000),
        "min_early_stopping_rate": (0, 100)}
FLOATS = {"prior_weight": (0.0, 1e6), "sigma0": (0.0, 1e6)}  # both bounds open below
BOOLS = ("consider_prior", "consider_magic_clip", "consider_endpoints", "multivariate", "group",
         "warn_independent_sampling", "constant_liar", "consider_pruned_trials", "use_separable_cma",
         "with_margin", "lr_adapt", "scramble", "warn_asynchronous_seeding")
WORDS = {"qmc_type": ("sobol", "halton"), "restart_strategy": ("ipop", "bipop"),
         "min_resource": ("auto",), "max_resource": ("auto",)}
REHEARSAL_TRIALS = 3
# Options that hold Python objects (callables, samplers, trials): not expressible in TOML.
_NOT_OPTIONS = {"self", "search_space", "gamma", "weights", "constraints_func", "independent_sampler",
                "source_trials", "x0", "args", "kwargs"}


def normalize(kind: str, value, *, seed: int, epochs: int | None) -> dict:
    """`sampler = "tpe"` or `{name = "tpe", seed = 1, ...}` -> {"name": ..., options...}; BadInput if wrong.

    The sampler's seed defaults to the study's `seed`; TPE is multivariate unless told otherwise;
    Hyperband's max_resource defaults to `epochs`.
    """
    table = {"name": value} if isinstance(value, str) else value
    names = SAMPLERS if kind == "sampler" else PRUNERS
    if not isinstance(table, dict) or not isinstance(table.get("name"), str):
        raise BadInput(f"[study] {kind} = {value!r} is invalid: write a name ({', '.join(names)}) "
                       f"or a table like {{name = \"{next(iter(names))}\", ...}}")
    table = dict(table)
    name = table["name"]
    if name not in names:
        raise BadInput(f"unknown {kind} '{name}': {_hint(name, names)}")
    allowed = [p for p in inspect.signature(_class(kind, name).__init__).parameters if p not in _NOT_OPTIONS]
    for key, value in table.items():
        if key == "name":
            continue
        if key not in allowed:
            raise BadInput(f"unknown option '{key}' of {kind} {name}: "
                           + (_hint(key, allowed) if allowed else "it takes no options"))
        _check_option(f"[study] {kind} {name}: {key}", key, value)
    if kind == "sampler" and "seed" in allowed:
        table.setdefault("seed", seed)
    if kind == "sampler" and name == "tpe":
        # One joint draw per trial: models interactions (lr x l2) and reads the trials once, not per parameter.
        table.setdefault("multivariate", True)
    if kind == "pruner" and name == "hyperband":
        table.setdefault("max_resource", epochs or "auto")  # a length in steps: Optuna's estimate
    try:  # build once now, so that a bad option value fails at create time
        build(kind, table, search_space={"x": [0]})
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - Optuna's own message says what is wrong
        raise BadInput(f"[study] {kind} {name}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
    return table


def _check_option(where: str, key: str, value) -> None:
    """BadInput unless `value` has the option's type and lies in its range (INTS, FLOATS, BOOLS, WORDS)."""
    if isinstance(value, str) and key in WORDS:
        if value not in WORDS[key]:
            raise BadInput(f"{where} = {value!r} is invalid: use " + " or ".join(map(repr, WORDS[key]))
                           + (" or an integer" if key in INTS else ""))
    elif key in INTS:
        low, high = INTS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise BadInput(f"{where} = {value!r} is invalid: use an integer from {low} to {high}")
    elif key in FLOATS:
        low, high = FLOATS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value <= high:
            raise BadInput(f"{where} = {value!r} is invalid: use a number > {low:g} and <= {high:g}")
    elif key in BOOLS and not isinstance(value, bool):
        raise BadInput(f"{where} = {value!r} is invalid: use true or false")


def rehearse(sampler: dict, pruner: dict, space: dict, epochs: int | None, grid: dict | None = None) -> None:
    """Run the sampler and pruner as a worker would, on a few in-memory trials of `space` reported at
    each epoch; BadInput with Optuna's own message when they fail (a value no check above catches)."""
    import optuna

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        study = optuna.create_study(sampler=build("sampler", sampler, search_space=grid),
                                    pruner=build("pruner", pruner))

        def objective(trial) -> float:  # as workers.objective: sample, report each epoch, prune when told
            params = suggest(trial, space)
            value = 0.5 + 0.01 * trial.number
            for epoch in range(1, min(epochs or 5, 5) + 1):
                trial.report(value - 0.001 * epoch, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()
            return value + 0.0 * len(params)

        study.optimize(objective, n_trials=REHEARSAL_TRIALS)
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - Optuna's own message says what is wrong
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise BadInput(f"[study] sampler {sampler['name']} with pruner {pruner['name']} fails on a rehearsal "
                       f"({type(exc).__name__}: {text}): check their options") from None
    finally:
        optuna.logging.set_verbosity(previous)


def build(kind: str, table: dict, *, search_space: dict | None = None, seed_offset: int = 0):
    """The Optuna sampler or pruner for a normalised table; `seed_offset` decorrelates parallel workers."""
    options = {k: v for k, v in table.items() if k != "name"}
    if kind == "sampler":
        if table["name"] == "grid":
            options["search_space"] = search_space or {}
        if options.get("seed") is not None and table["name"] not in SHARED_SEED:
            options["seed"] = (options["seed"] + seed_offset) % SEEDS  # numpy's seeds stay below 2**32
    with optuna_experimental():
        return _class(kind, table["name"])(**options)


def _class(kind: str, name: str):
    import optuna

    module = optuna.samplers if kind == "sampler" else optuna.pruners
    return getattr(module, (SAMPLERS if kind == "sampler" else PRUNERS)[name])


def _hint(name: str, known) -> str:
    return did_you_mean(name, known)


def suggest(trial, space: dict) -> dict:
    """Sample every searched parameter from its stored distribution (fixed for enqueued trials)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    params = {}
    for name, dist in space.items():
        if isinstance(dist, FloatDistribution):
            params[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
        elif isinstance(dist, IntDistribution):
            params[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
        elif isinstance(dist, CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, dist.choices)
        else:
            raise TypeError(f"unsupported distribution for {name}: {dist!r}")
    return params
