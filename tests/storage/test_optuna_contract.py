"""Optuna's own storage test suite (optuna.testing's StorageTestCase) against sweeper's storage, as
storage.rdb.open_storage builds it (lean queries, retries), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

pytest.importorskip("optuna.testing.pytest_storages", reason="this Optuna ships no optuna.testing")
from optuna.testing.pytest_storages import StorageTestCase  # noqa: E402

from storage import rdb  # noqa: E402


class TestSweeperStorage(StorageTestCase):
    """Every test of Optuna's StorageTestCase, once per backend."""

    @pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
    def storage(self, request, tmp_path):
        url = f"sqlite:///{tmp_path / 'optuna.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
        storage = rdb.open_storage(url, create=True)
        yield storage
        storage.engine.dispose()


def test_every_database_call_is_wrapped_with_retries():
    from storage import resilient
    from storage.lean import LeanRDBStorage

    for name in resilient._CALLS:
        wrapped = getattr(resilient.ResilientRDBStorage, name)
        assert wrapped is not getattr(LeanRDBStorage, name) and wrapped.__qualname__ == name, name


def test_a_wrapped_method_that_optuna_no_longer_has_fails_loudly():
    from storage import resilient

    class Storage(resilient.ResilientRDBStorage):
        pass

    with pytest.raises(ImportError, match="has no get_trial_by_magic: storage/resilient.py retries them"):
        resilient.install(Storage, ("get_trial", "get_trial_by_magic"))
    assert "get_trial" not in vars(Storage)  # nothing half wrapped
