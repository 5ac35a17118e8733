"""A study and its spec in the storage: store the spec in the study, load a study by name with it (both
sides), tell whether it is still the study a worker started on."""

from __future__ import annotations

import functools
import json

import sqlalchemy as sa

from storage import rdb, retry, urls
from storage.contract.errors import BadInput, did_you_mean
from storage.contract.spec import Spec

ATTR = "sweeper_spec"  # the study user attr that holds the spec
UID = "sweeper_uid"  # the study system attr that names it uniquely (files kept outside the database)

# Optuna's own tables, only the columns read here.
_studies = sa.table("studies", sa.column("study_id"))
_attrs = sa.table("study_system_attributes", sa.column("study_id"), sa.column("key"), sa.column("value_json"))


class StudyGone(BaseException):
    """The study was deleted, or replaced by a new one of its name, while a worker ran it. Not an
    Exception: Optuna does not catch it, so the trial is not told (its id may be the new study's)."""


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


@functools.cache
def same(study_id: int, key: str) -> sa.Select:
    """A SELECT of one count: 1 while study `study_id` is still the one whose `uid` was `key`, 0 once it
    was deleted or another study took its id (a study made before keys: while it is there without one).
    Built once: a worker asks before each epoch on SQLite."""
    keyed = sa.exists().where(_attrs.c.study_id == study_id, _attrs.c.key == UID)
    mine = ~keyed if key == f"id{study_id}" else keyed.where(_attrs.c.value_json == json.dumps(key))
    return sa.select(sa.func.count()).select_from(_studies).where(_studies.c.study_id == study_id, mine)


def gone(engine: sa.Engine, study_id: int, key: str) -> bool:
    """Whether study `study_id` was deleted or replaced since its `uid` was `key` (see `same`); tried
    again on transient errors (storage.retry)."""
    def read() -> bool:
        with engine.connect() as conn:
            return conn.execute(same(study_id, key)).scalar_one() == 0

    return retry.call(read, _what="studies.gone")
