"""Load a study by name with its stored spec; both sides use this (the CLI and the workers)."""

from __future__ import annotations


from storage import rdb, specs, urls
from storage.errors import BadInput, did_you_mean


def load(name: str, url: str, *, sampler=None, pruner=None, **storage_options):
    """(study, spec, storage) for study `name` at `url`; BadInput naming the known studies if missing.

    `storage_options` go to storage.rdb.open_storage (heartbeat, grace, max_retry).
    """
    import optuna

    storage = rdb.open_storage(url, **storage_options)
    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        known = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        hint = did_you_mean(name, known, cutoff=0.5, otherwise=f"known: {', '.join(known)}" if known else
                            "it has none: create one with sweeper create SPEC.toml")
        raise BadInput(f"no study '{name}' in {urls.mask(url)}: {hint}") from None
    return study, specs.load(study), storage
