"""Opening a storage: checked before anything is created; WAL on SQLite; heartbeat wiring."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from storage import rdb, urls
from storage.contract.errors import BadInput


def test_missing_sqlite_file_is_bad_input_and_not_created(tmp_path):
    url = f"sqlite:///{tmp_path / 'nope.db'}"
    with pytest.raises(BadInput, match="no database at"):
        rdb.check(url)
    with pytest.raises(BadInput, match="no database at"):
        rdb.open_storage(url)
    assert list(tmp_path.iterdir()) == []


def test_create_in_a_missing_folder_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        rdb.check(f"sqlite:///{tmp_path / 'no' / 'such' / 'x.db'}", create=True)


def test_unreachable_postgres_is_bad_input_with_masked_password():
    url = urls.normalize("postgresql://user:hunter2@127.0.0.1:1/db")
    with pytest.raises(BadInput) as err:
        rdb.check(url)
    message = str(err.value)
    assert message.startswith("cannot reach storage postgresql+psycopg://user:***@127.0.0.1:1/db")
    assert "hunter2" not in message and "\n" not in message


def test_missing_postgres_database_is_bad_input(pg_url):
    with pytest.raises(BadInput, match="cannot reach storage"):
        rdb.check(pg_url.rsplit("/", 1)[0] + "/sweeper_no_such_database")


def test_empty_database_has_no_studies_and_reading_creates_nothing(db_url):
    with pytest.raises(BadInput, match="no studies in|no database at"):
        rdb.open_storage(db_url)
    assert rdb.has_studies(db_url) is False
    engine = sa.create_engine(db_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_open_creates_optuna_tables_then_reads_them(db_url):
    storage = rdb.open_storage(db_url, create=True, heartbeat=5, grace=11, max_retry=2)
    assert storage.heartbeat_interval == 5 and storage.grace_period == 11
    assert storage.get_heartbeat_stale_trial_callback()._max_retry == 2
    assert rdb.has_studies(db_url)
    assert rdb.open_storage(db_url).heartbeat_interval is None


def test_sqlite_runs_in_wal_mode(sqlite_url):
    storage = rdb.open_storage(sqlite_url, create=True)
    with storage.engine.connect() as conn:
        assert conn.exec_driver_sql("pragma journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("pragma synchronous").scalar() == 1  # NORMAL


def test_a_half_made_optuna_schema_is_completed_not_refused(db_url):
    """Another process creating the schema shows 'studies' before the other tables; CI once refused it."""
    from optuna.storages._rdb import models

    engine = sa.create_engine(db_url)
    try:
        models.StudyModel.__table__.create(engine)  # the first table Optuna creates, alone
    finally:
        engine.dispose()
    with pytest.raises(BadInput, match="no studies in"):  # a reader waits for the whole schema
        rdb.open_storage(db_url)
    storage = rdb.open_storage(db_url, create=True)
    assert rdb.has_studies(db_url)
    storage.engine.dispose()


RACE = """
import sys, time
from storage import rdb
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
storage = rdb.open_storage(sys.argv[1], create=True)
storage.engine.dispose()
"""


@pytest.mark.slow
def test_processes_creating_the_schema_at_once_all_succeed(db_url):
    """Workers, `sweeper run` and a `sweeper status` watching it may all open a fresh database at once."""
    import subprocess
    import sys
    import time

    start = str(time.time() + 4.0)  # every process is imported and waiting by then
    procs = [subprocess.Popen([sys.executable, "-c", RACE, db_url, start], stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, "\n".join(errors)
    engine = sa.create_engine(db_url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            versions = conn.execute(sa.text("select count(*) from version_info")).scalar()
    finally:
        engine.dispose()
    assert {"studies", "trials", "sweeper_epochs", "alembic_version"} <= tables
    assert versions == 1


def test_the_database_patience_is_read_when_used_not_at_import(monkeypatch):
    """A bad $SWEEPER_DB_PATIENCE no longer breaks `import storage.rdb`: the first call says what to fix."""
    import os
    import subprocess
    import sys

    from storage import retry
    from storage.contract.errors import BadInput

    env = {**os.environ, "SWEEPER_DB_PATIENCE": "soon"}
    done = subprocess.run([sys.executable, "-c", "import storage.rdb, storage.resilient; print('imported')"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "imported", done.stderr
    monkeypatch.setenv("SWEEPER_DB_PATIENCE", "soon")
    with pytest.raises(BadInput, match="SWEEPER_DB_PATIENCE='soon' is not a number of seconds"):
        retry.call(lambda: 1)
    monkeypatch.setenv("SWEEPER_DB_PATIENCE", "0")
    assert retry.call(lambda: 1) == 1
