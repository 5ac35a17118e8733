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


def test_every_rdbstorage_method_that_opens_a_session_is_retried():
    """Read from Optuna's own source, not from resilient's list: each method of RDBStorage that opens a
    database session (its `_create_scoped_session(`) is defined again by ResilientRDBStorage."""
    import inspect

    from optuna.storages import RDBStorage

    from storage.resilient import ResilientRDBStorage

    talking = {name for name, fn in vars(RDBStorage).items()
               if inspect.isfunction(fn) and not name.startswith("__")
               and "_create_scoped_session(" in inspect.getsource(fn)}
    assert len(talking) >= 20, talking  # the marker still finds Optuna's calls
    assert sorted(name for name in talking if name not in vars(ResilientRDBStorage)) == []


def test_a_wrapped_method_that_optuna_no_longer_has_fails_loudly():
    from storage import resilient

    with pytest.raises(ImportError, match="has no get_trial_by_magic: storage/resilient.py retries them"):
        @resilient.retried("get_trial", "get_trial_by_magic")
        class Storage(resilient.ResilientRDBStorage):
            pass
