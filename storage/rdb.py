"""Open Optuna's RDBStorage on a URL: reachability checked first, SQLite WAL, heartbeat, retried calls."""

from __future__ import annotations

import contextlib
import os

import sqlalchemy as sa

from storage import epochs, locks, retry, urls
from storage.contract.errors import BadInput, first_line, optuna_experimental

SQLITE_BUSY_TIMEOUT_S = 60  # how long an SQLite writer waits for another process's write lock
SQLITE_PROBE_WAIT_S = 5  # how long opening an SQLite file waits for another process's lock before saying so
# Said once (by `sweeper run` and by a worker that finds others running) when workers share a file.
SQLITE_SHARED = ("several workers share one SQLite file: writes queue behind its lock; for more than a few "
                 "workers (or several machines) use PostgreSQL: --storage postgresql://USER@HOST/DB")
CONNECT_TIMEOUT_S = 10
# Per process: a worker uses at most 4 connections at once (its loop, Optuna's heartbeat thread,
# the background writer, the budget lock; 2 measured: sweeper/connections.py): 3 kept open, 6 at
# most. Many workers on one server need max_connections >= 4 x workers + a few, or PgBouncer
# (docs/cluster.md).
POOL = {"pool_size": 3, "max_overflow": 3, "pool_timeout": 60, "pool_recycle": 1800}
# Keepalives find a connection dropped by a firewall or NAT while a long epoch trains.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
# Commits do not wait for the WAL flush (a few ms each on this disk): a server *crash* may lose the
# last fraction of a second of commits, never corrupt them; a trial whose final state is lost that way
# is left RUNNING, goes stale and is retried. Clean restarts lose nothing. $SWEEPER_PG_SYNC_COMMIT=on
# restores full durability. PgBouncer must ignore this startup parameter (ignore_startup_parameters =
# options); behind it the server's own setting applies: ALTER DATABASE db SET synchronous_commit = off.
SESSION = "-c synchronous_commit={}"
# psycopg 3 prepares a statement on its 5th run on a connection; behind PgBouncer in transaction mode
# (before 1.21's max_prepared_statements; Debian 12 has 1.18) the next run may reach a server connection
# that lacks it ("prepared statement \"_pg3_0\" does not exist"). Off for every PostgreSQL connection:
# sweeper's reads took 3-5 ms a call either way, mostly Python, no difference beyond the noise
# (docs/cluster-pgbouncer.md).
PREPARE = {"prepare_threshold": None}
SYNC_COMMIT = ("off", "on", "local", "remote_write", "remote_apply")  # PostgreSQL's values
# The lock taken while a process creates the schema: without it two processes that create tables at
# once (`sweeper run` and a `sweeper status` watching it, two workers) collide in PostgreSQL's catalog
# ("duplicate key value violates unique constraint pg_type_typname_nsp_index").
SCHEMA_LOCK = "sweeper-schema"
# Optuna's own tables (and alembic's, which versions them): any other table but sweeper's epoch table
# belongs to another application.
OPTUNA_TABLES = {"studies", "study_directions", "study_system_attributes", "study_user_attributes",
                 "trial_heartbeats", "trial_intermediate_values", "trial_params", "trial_system_attributes",
                 "trial_user_attributes", "trial_values", "trials", "version_info", "alembic_version"}
STUDIES_COLUMNS = {"study_id", "study_name"}  # Optuna's table 'studies', as every schema version has it
SCHEMA_TRIES = 3  # a colliding first open (a database without either lock) is tried again
SCHEMA_LOCK_WAIT_S = 60


def engine_kwargs(url: str) -> dict:
    """SQLAlchemy engine options: bounded connect and lock waits.

    PostgreSQL: psycopg's prepared statements are off (PREPARE), for PgBouncer in transaction mode.
    No pool_pre_ping: it costs a round trip per storage call (a worker makes ~30 per trial), and
    every call is retried anyway (storage.resilient): a connection that died with a server restart
    fails once, SQLAlchemy drops the pool's stale connections, and the retry gets a fresh one.
    """
    backend = sa.engine.make_url(url).get_backend_name()
    if backend == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    if backend == "postgresql":
        sync = os.environ.get("SWEEPER_PG_SYNC_COMMIT", "").strip().lower() or "off"
        sync = {"true": "on", "yes": "on", "1": "on", "false": "off", "no": "off", "0": "off"}.get(sync, sync)
        if sync not in SYNC_COMMIT:
            raise BadInput(f"SWEEPER_PG_SYNC_COMMIT={sync!r} is not one of {', '.join(SYNC_COMMIT)}: set it to on "
                           "or off, or unset it")
        return {**POOL, "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S, **KEEPALIVES, **PREPARE,
                                         "options": SESSION.format(sync)}}
    return {"pool_pre_ping": True}


def check(url: str, *, create: bool = False) -> None:
    """Raise BadInput unless the database answers; `create=False` also needs Optuna's tables in it.

    Nothing is created here: a missing SQLite file is an error unless `create`, and then only its
    folder is checked (the file appears when the study is created).
    """
    _probe(url, create=create)


def _probe(url: str, *, create: bool, patient: bool = False) -> bool:
    """`check`, answering whether the whole schema (Optuna's tables and the epochs table) is there.
    `patient`: transient errors (a server restarting) are tried again (storage.retry) before failing."""
    urls.refuse_memory(url)
    path = urls.sqlite_path(url)
    shown = urls.mask(url)
    if path is not None:
        if create:
            folder = path.resolve().parent
            if not folder.is_dir():
                raise BadInput(f"cannot create {path}: folder {folder} does not exist: create it or {urls.FIX}")
            if not path.exists():
                return False
        elif not path.exists():
            raise BadInput(f"no database at {path}: create a study first (sweeper create SPEC.toml) or {urls.FIX}")
    engine = _engine(url, sqlite_wait_s=SQLITE_PROBE_WAIT_S)

    def inspect() -> tuple[bool, bool]:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
            inspector = sa.inspect(conn)
            names = set(inspector.get_table_names())
            has_tables = {"studies", "trials", "version_info"} <= names
            # A 'studies' table without the others is Optuna's half-made schema (another process creating
            # it right now) when its columns are Optuna's; anything else belongs to another application.
            if "studies" in names and not has_tables and _columns(inspector, "studies") != STUDIES_COLUMNS:
                raise BadInput(f"{shown} holds a table 'studies' that is not Optuna's: it belongs to another "
                               f"application; use a database of its own for sweeper ({urls.FIX})")
            foreign = sorted(names - OPTUNA_TABLES - {epochs.table.name})
            if create and foreign and os.environ.get("SWEEPER_SHARE_DATABASE") != "1":
                raise BadInput(f"{shown} holds tables of another application ({', '.join(foreign[:5])}"
                               f"{', ...' if len(foreign) > 5 else ''}): sweeper adds its own tables only to a "
                               "database of its own; use another, or set SWEEPER_SHARE_DATABASE=1 to share it")
            return has_tables, has_tables and epochs.table.name in names

    try:
        has_tables, complete = retry.call(inspect, _what="opening the storage") if patient else inspect()
    except sa.exc.SQLAlchemyError as exc:
        if path is not None and "database is locked" in str(exc):
            raise BadInput(f"the SQLite file {path} is locked by another process (no read for "
                           f"{SQLITE_PROBE_WAIT_S} s): let it finish or stop it, or {urls.FIX}") from None
        raise unreachable(url, exc) from None
    finally:
        engine.dispose()
    if not create and not has_tables:
        raise BadInput(f"no studies in {shown}: create one first (sweeper create SPEC.toml) or {urls.FIX}")
    return complete


def unreachable(url: str, exc: BaseException) -> BadInput:
    """The one-line error for a database that does not answer at `url` (password masked), with its fix."""
    if "unsupported startup parameter: options" in str(exc) or "unsupported options startup" in str(exc):
        return BadInput(f"cannot reach storage {urls.mask(url)}: a pooler (PgBouncer) refused the startup "
                        "parameter 'options': add 'ignore_startup_parameters = options' to pgbouncer.ini "
                        "(docs/cluster.md)")
    return BadInput(f"cannot reach storage {urls.mask(url)}: {first_line(exc)}: start the database or "
                    f"{urls.FIX}")


def _columns(inspector, table: str) -> set[str]:
    """The column names of `table`."""
    return {column["name"] for column in inspector.get_columns(table)}


def has_studies(url: str) -> bool:
    """Whether the database at `url` holds Optuna's tables (False for a missing SQLite file)."""
    try:
        check(url)
    except BadInput as exc:
        if str(exc).startswith(("no database at", "no studies in")):
            return False
        raise
    return True


def open_storage(url: str, *, create: bool = False, heartbeat: int | None = None, grace: int | None = None,
                 max_retry: int | None = None, patient: bool = False):
    """Optuna's RDBStorage on `url` (checked first, see `check`), its calls retried on transient errors.

    With `heartbeat` (seconds), running trials record a heartbeat; a trial silent for `grace`
    seconds (default 2 x heartbeat) is failed by the next worker and retried up to `max_retry`
    times as a new WAITING trial with the same parameters. `patient` (a worker, whose storage answered
    when it was started): a transient error while opening (a server restarting) is tried again for the
    usual patience instead of failing at once.
    """
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    from storage.resilient import ResilientRDBStorage

    complete = _probe(url, create=create, patient=patient)

    def build():
        with optuna_experimental():
            retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry) if heartbeat else None
            storage = ResilientRDBStorage(url, engine_kwargs=engine_kwargs(url), heartbeat_interval=heartbeat or None,
                                          grace_period=(grace or None) if heartbeat else None,
                                          heartbeat_stale_trial_callback=retry, skip_compatibility_check=True)
        try:
            _check_schema_version(storage)
        except BaseException:
            storage.engine.dispose()
            raise
        if create and not complete:
            epochs.create(storage.engine)
        return storage

    def make():  # a reader never adds a table (a plain Optuna file stays as it is)
        return _create_schema(url, build) if create and not complete else build()

    try:
        storage = retry.call(make, _what="opening the storage") if patient else make()
        if create:  # opened for writing: rows of deleted studies go before a new study can take their ids
            try:
                epochs.remove_orphans(storage.engine)
            except BaseException:
                storage.engine.dispose()
                raise
    except sa.exc.SQLAlchemyError as exc:
        raise BadInput(f"cannot open storage {urls.mask(url)}: {first_line(exc)}: {urls.FIX}") from None
    if storage.engine.dialect.name == "sqlite":
        _tune_sqlite(storage.engine, wal=create)
    return storage


def _check_schema_version(storage) -> None:
    """Optuna's schema check (RuntimeError: run `optuna storage upgrade`) without its second connection.

    Optuna's own check reads alembic's version on a second connection while its session's transaction
    is open, and parses alembic's scripts meanwhile (seconds on a busy machine). Behind PgBouncer in
    transaction mode that transaction holds a server connection: with 24 workers starting on a pool of
    10, nine were seen idle in that transaction, and other workers waited for a server connection until
    PgBouncer's query_wait_timeout (120 s) cut them off. Here the versions are compared first, one
    connection at a time; only an outdated schema runs Optuna's check, for its message.
    """
    manager = storage._version_manager
    if manager.get_current_version() != manager.get_head_version():
        manager.check_table_schema_compatibility()


def _create_schema(url: str, build):
    """`build()` while no other process creates the schema (PostgreSQL), or tried again (SQLite)."""
    for attempt in range(SCHEMA_TRIES):
        try:
            with _schema_lock(url):
                return build()
        except (sa.exc.IntegrityError, sa.exc.OperationalError, sa.exc.ProgrammingError):
            if attempt == SCHEMA_TRIES - 1:
                raise


@contextlib.contextmanager
def _schema_lock(url: str):
    """Held while this process creates the schema (storage.locks; on SQLite byte 0 of DB-lock: six
    processes on a fresh file collided more often than 3 tries cover)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, **{k: v for k, v in engine_kwargs(url).items()
                                                                      if k not in POOL})
    try:
        with locks.Lock(engine, SCHEMA_LOCK, 0, wait_s=SCHEMA_LOCK_WAIT_S):
            yield
    finally:
        engine.dispose()


def _engine(url: str, *, sqlite_wait_s: float | None = None) -> sa.Engine:
    """An engine on `url` (engine_kwargs); `sqlite_wait_s`: how long an SQLite connection waits for a lock."""
    kwargs = engine_kwargs(url)
    if sqlite_wait_s is not None and "timeout" in kwargs.get("connect_args", {}):
        kwargs = {**kwargs, "connect_args": {**kwargs["connect_args"], "timeout": sqlite_wait_s}}
    try:
        return sa.create_engine(url, **kwargs)
    except (sa.exc.NoSuchModuleError, sa.exc.ArgumentError, ImportError) as exc:
        raise BadInput(f"unsupported storage {urls.mask(url)}: {first_line(exc)}: {urls.FIX}") from None


def _tune_sqlite(engine: sa.Engine, *, wal: bool) -> None:
    """WAL lets readers (status, run's progress) and one writer work at once; NORMAL sync suits WAL.
    WAL is a lasting property of the file: set only by `create` (a file sweeper makes), never by
    a reader."""

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        if wal:
            cur.execute("pragma journal_mode=wal")
        cur.execute("pragma synchronous=normal")
        cur.close()

    engine.dispose()  # connections opened while Optuna created its tables get the pragmas too
