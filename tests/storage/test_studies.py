"""A study stores its spec and is loaded by name with it; a study without one is refused."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution

from storage import studies
from storage.contract.errors import BadInput
from tests.storage.contract.test_spec import _spec


def test_round_trip_through_a_study(db_url):
    from storage import rdb

    study = optuna.create_study(storage=rdb.open_storage(db_url, create=True), study_name="s")
    spec = _spec()
    studies.save_spec(study, spec)
    again = studies.spec_of(optuna.load_study(study_name="s", storage=rdb.open_storage(db_url)))
    assert again == spec
    assert again.space["lr"] == FloatDistribution(1e-3, 1.0, log=True)


def test_a_study_without_spec_is_bad_input():
    study = optuna.create_study(study_name="foreign")
    with pytest.raises(BadInput, match="has no sweeper spec"):
        studies.spec_of(study)


def test_load_by_name_returns_the_stored_spec_and_names_the_known_studies(sqlite_url):
    from storage import rdb

    study = optuna.create_study(storage=rdb.open_storage(sqlite_url, create=True), study_name="known")
    studies.save_spec(study, _spec(name="known"))
    _, spec, storage = studies.load("known", sqlite_url)
    storage.engine.dispose()
    assert spec == _spec(name="known")
    with pytest.raises(BadInput, match="did you mean 'known'"):
        studies.load("knwon", sqlite_url)
