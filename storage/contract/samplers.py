"""Samplers and pruners by name: check a spec's `sampler`/`pruner` settings and build the Optuna objects."""

from __future__ import annotations

import inspect

from storage.contract.errors import BadInput, did_you_mean, optuna_experimental

SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "grid": "GridSampler", "cmaes": "CmaEsSampler",
            "qmc": "QMCSampler"}
PRUNERS = {"none": "NopPruner", "median": "MedianPruner", "hyperband": "HyperbandPruner",
           "successive_halving": "SuccessiveHalvingPruner"}
# Samplers whose workers must share one seed: QMC draws point k of one sequence by trial count.
SHARED_SEED = ("qmc", "grid")
# Options that hold Python objects (callables, samplers, trials): not expressible in TOML.
_NOT_OPTIONS = {"self", "search_space", "gamma", "weights", "constraints_func", "independent_sampler",
                "source_trials", "x0", "args", "kwargs"}


def normalize(kind: str, value, *, seed: int, epochs: int) -> dict:
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
    for key in table:
        if key != "name" and key not in allowed:
            raise BadInput(f"unknown option '{key}' of {kind} {name}: "
                           + (_hint(key, allowed) if allowed else "it takes no options"))
    if kind == "sampler" and "seed" in allowed:
        table.setdefault("seed", seed)
    if kind == "sampler" and name == "tpe":
        # One joint draw per trial: models interactions (lr x l2) and reads the trials once, not per parameter.
        table.setdefault("multivariate", True)
    if kind == "pruner" and name == "hyperband":
        table.setdefault("max_resource", epochs)
    try:  # build once now, so that a bad option value fails at create time
        build(kind, table, search_space={"x": [0]})
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - Optuna's own message says what is wrong
        raise BadInput(f"[study] {kind} {name}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
    return table


def build(kind: str, table: dict, *, search_space: dict | None = None, seed_offset: int = 0):
    """The Optuna sampler or pruner for a normalised table; `seed_offset` decorrelates parallel workers."""
    options = {k: v for k, v in table.items() if k != "name"}
    if kind == "sampler":
        if table["name"] == "grid":
            options["search_space"] = search_space or {}
        if options.get("seed") is not None and table["name"] not in SHARED_SEED:
            options["seed"] = options["seed"] + seed_offset
    with optuna_experimental():
        return _class(kind, table["name"])(**options)


def _class(kind: str, name: str):
    import optuna

    module = optuna.samplers if kind == "sampler" else optuna.pruners
    return getattr(module, (SAMPLERS if kind == "sampler" else PRUNERS)[name])


def _hint(name: str, known) -> str:
    return did_you_mean(name, known)
