"""How many PostgreSQL connections workers take, and a one-line warning when the server has too few free."""

from __future__ import annotations

import sqlalchemy as sa

from storage import locks, rdb, urls

# The most connections one worker holds at once. Every engine of a worker is its storage's pool
# (storage.rdb.POOL: 3 kept, 6 at most), and the engines that open the storage before it (the probe,
# the first read of the spec) are closed first. At most four of its threads hold a connection at
# once: the loop's budget lock (its own connection, in a transaction: storage.locks), the loop's
# storage call (creating the trial, its parameters), Optuna's heartbeat thread and the background
# epoch writer. Measured 2026-12-05 on 2 cores, 24 workers on a study of 48 trials x 2 epochs
# (digits): straight to PostgreSQL, each worker's psycopg connections counted in the process (connect
# and close wrapped) and pg_stat_activity sampled every ~55 ms by application_name (PGAPPNAME per
# worker); through PgBouncer, its SHOW CLIENTS every ~0.1 s (tests/sweeper/test_pgbouncer.py). Both:
# at most 2 at once in every worker (6 opened over its life).
PER_WORKER = 4
FIX = ("put PgBouncer in transaction mode in front of PostgreSQL (docs/cluster.md), raise max_connections, "
       "or start fewer workers at once (--parallel)")
# One row: max_connections, the slots kept for superusers (and on PostgreSQL 16+ for
# pg_use_reserved_connections), and the client connections open now, this one included.
_FREE = sa.text("select current_setting('max_connections')::int, "
                "current_setting('superuser_reserved_connections')::int, "
                "coalesce(current_setting('reserved_connections', true), '0')::int, "
                "(select count(*) from pg_stat_activity where backend_type = 'client backend')::int")


def warning(url: str, workers: int) -> str | None:
    """A one-line warning when `workers` workers at once may need more connections than the PostgreSQL
    server at `url` has free; None for SQLite, behind a pooler (PgBouncer) or when they fit. BadInput
    (with its fix) when the database does not answer."""
    shown, url = urls.mask(url), urls.normalize(url)
    if sa.engine.make_url(url).get_backend_name() != "postgresql":
        return None
    found = _free(url)
    if found is None:
        return None
    free, limit, reserved, used = found
    need = workers * PER_WORKER
    if need <= free:
        return None
    return (f"{workers} workers may open {need} connections ({PER_WORKER} each) but {shown} has "
            f"{free} free (max_connections {limit}, {reserved} reserved, {used} in use): {FIX}")


def _free(url: str) -> tuple[int, int, int, int] | None:
    """(free, max_connections, reserved, in use) on the server, read over one short-lived connection;
    None when the connection goes through a pooler, whose clients do not each take a server slot."""
    kwargs = {k: v for k, v in rdb.engine_kwargs(url).items() if k not in rdb.POOL}
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, **kwargs)
    try:
        with engine.connect() as conn:
            if locks.behind_pooler(conn):
                return None
            limit, superuser, reserved, used = conn.execute(_FREE).one()
    except sa.exc.SQLAlchemyError as exc:
        raise rdb.unreachable(url, exc) from None
    finally:
        engine.dispose()
    reserved += superuser
    used -= 1  # this connection, closed by now
    return max(limit - reserved - used, 0), limit, reserved, used
