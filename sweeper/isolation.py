"""Nuisance parameters tuned per arm: a study's tuning studies, its re-run at each arm's best, their link.

A grid study with a `[tune]` table compares its configurations (the arms) at the post's fixed settings.
Each arm then gets a tuning study of its own (TPE on validation error over the `[tune]` parameters,
`budget` trials, the post's setting first), and a second grid study, `NAME.tuned`, re-runs every arm
at its best setting with the seeds and judges the same claims there, so that the report can set the
comparison at one fixed setting beside the comparison of each arm at its best (the tuning playbook's
isolation). The studies are plain sweeper studies built from the spec's TOML tables.
"""

from __future__ import annotations

import copy

from storage.contract.errors import BadInput

TUNE_SEED = 10_000  # the tuning studies train on [study] seed + this: no seed the study's own runs use
# the tuned study's user attr: {"fixed": name, "tuning": [names], "best": [...], "post": [...]}: per configuration
# its best setting and the post's (a dict of the tuned parameters each; "post" was one dict before 2026-12-06)
LINK = "sweeper_isolation"
TUNED_SUFFIX = ".tuned"


def tuned(spec) -> list[str]:
    """The parameters the study's [tune] table searches (its keys but `budget`)."""
    return [k for k in spec.tune if k != "budget"]


def tuning_name(name: str, arm: int) -> str:
    """The name of configuration `arm`'s (1-based) tuning study of study `name`."""
    return f"{name}.tune{arm}"


def tuning_tables(data: dict, spec) -> list[dict]:
    """The TOML tables of the study's tuning studies, one per configuration: its fixed settings and the
    configuration's own, the `[tune]` parameters searched by TPE on validation error for `budget` trials
    with one seed that none of the study's runs uses (so that the re-run at the best setting is not the
    run the setting was chosen on), the post's value of each for that configuration (where it lies in the
    range) first."""
    tune, budget = {k: spec.tune[k] for k in tuned(spec)}, spec.tune["budget"]
    out = []
    for arm, config in enumerate(spec.configs(), 1):
        params = {k: v for k, v in {**data.get("params", {}), **config["params"]}.items() if k not in tune}
        first = {k: v for k, v in post_setting(data, config, tune).items() if _inside(v, tune[k])}
        study = {k: v for k, v in data["study"].items()
                 if k in ("model", "dataset", "epochs", "steps", "seed", "seed_draws", "section")}
        study.update(name=tuning_name(spec.name, arm), n_trials=budget, metric="valid_error",
                     seed=spec.seed + TUNE_SEED,
                     sampler={"name": "tpe", "n_startup_trials": max(1, budget // 2)},
                     title=f"{spec.heading}: {', '.join(tune)} tuned for {config['label']}")
        out.append({"study": study, "params": {**params, **copy.deepcopy(tune)},
                    **({"enqueue": [first]} if first else {})})
    return out


def post_setting(data: dict, config: dict, keys) -> dict:
    """The post's value of each of `keys` for one configuration: its own where it sets one (a [[point]]),
    else the study's [params] value (None where neither sets it)."""
    return {k: config["params"].get(k, data.get("params", {}).get(k)) for k in keys}


def post_settings(link: dict, n_arms: int) -> list[dict]:
    """The post's setting of each configuration from a tuned study's LINK attr (one dict for all before
    2026-12-06, one per configuration since)."""
    post = link["post"]
    return [dict(post) for _ in range(n_arms)] if isinstance(post, dict) else [dict(p) for p in post]


def best_setting(trials, keys) -> dict:
    """The values of `keys` (the tuned parameters) of a tuning study's best complete trial (lowest
    validation error, the earlier trial on a tie); BadInput when none completed."""
    done = trials[trials["state"] == "COMPLETE"].sort_values(["valid_error", "trial"])
    if done.empty:
        raise BadInput("a tuning study has no complete trial (every setting diverged?): narrow its [tune] range")
    return {k: _plain(done.iloc[0][k]) for k in keys}


def tuned_table(data: dict, spec, best: list[dict]) -> dict:
    """The TOML tables of `NAME.tuned`: the same grid with each configuration at its best setting (`best`,
    in the order of spec.configs()), the same seeds and claims, the claims judged there marked as ours
    (origin "derived": the post compared at one setting), and a condition that says what changed."""
    table = copy.deepcopy({k: v for k, v in data.items() if k not in ("tune", "reference")})
    study = table["study"]
    study["name"] = spec.name + TUNED_SUFFIX
    study.pop("compare", None)
    names = ", ".join(tuned(spec))
    study["title"] = f"{spec.heading}, each at its tuned {names}"
    params = table.setdefault("params", {})
    for k in [*spec.varied, *best[0]]:  # the grid's axes become points; the tuned values are each point's own
        params.pop(k, None)
    table["point"] = [{"name": c["label"], **c["params"], **setting} for c, setting in zip(spec.configs(), best)]
    for claim in table.get("claim", []):
        if "post" in claim:  # the post's own claims become ours here: it made them at one setting
            claim["origin"] = "derived"
        claim["text"] = "At each arm's tuned setting: " + claim["text"]
    table.setdefault("condition", []).append({
        "setting": names, "post": "one setting for every configuration",
        "ours": f"tuned for each configuration on validation ({spec.tune['budget']} trials each)",
        "match": False, "changes": "verdicts",
        "why": "the comparison the post made at one setting, made again with each configuration at its best"})
    return table


def _inside(value, dist: dict) -> bool:
    """Whether `value` is a number inside a [tune] range ({float = [low, high]} or {int = [...]})."""
    bounds = dist.get("float", dist.get("int"))
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bounds is not None \
        and bounds[0] <= value <= bounds[1]


def _plain(value):
    """A numpy scalar as the Python number TOML and JSON take."""
    return value.item() if hasattr(value, "item") else value
