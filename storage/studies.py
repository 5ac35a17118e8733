"""A study and its spec in the storage: store the spec in the study, load a study by name with it (both sides)."""

from __future__ import annotations

from storage import rdb, urls
from storage.contract.errors import BadInput, did_you_mean
from storage.contract.spec import Spec

ATTR = "sweeper_spec"  # the study user attr that holds the spec
UID = "sweeper_uid"  # the study system attr that names it uniquely (files kept outside the database)


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
    return study, spec_of(study), storage


def save_spec(study, spec: Spec) -> None:
    """Store `spec` in `study` (an optuna.Study) as its user attr `sweeper_spec`."""
    study.set_user_attr(ATTR, spec.to_attr())


def spec_of(study) -> Spec:
    """The spec stored in `study`; BadInput if it has none (a study not created by sweeper)."""
    attr = study.user_attrs.get(ATTR)
    if attr is None:
        raise BadInput(f"study '{study.study_name}' has no sweeper spec (made by another tool?): "
                       "create a study with sweeper create SPEC.toml")
    return Spec.from_attr(attr)


def set_uid(storage, study_id: int) -> str:
    """Give a new study its unique key (a random hex string), once, when it is created."""
    import uuid

    key = uuid.uuid4().hex[:16]
    storage.set_study_system_attr(study_id, UID, key)
    return key


def uid(storage, study_id: int) -> str:
    """The study's unique key: unlike its id, never the same in another database sharing a folder
    or in a study created after a deleted one (SQLite reuses ids). A study made before keys: its id."""
    return storage.get_study_system_attrs(study_id).get(UID) or f"id{study_id}"
