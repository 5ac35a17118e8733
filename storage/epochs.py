"""The per-epoch metrics table beside Optuna's: one row per (trial, epoch), written idempotently."""

from __future__ import annotations

import functools
import math

import sqlalchemy as sa

from storage import retry

metadata = sa.MetaData()

COLUMNS = ("train_loss", "train_error", "valid_error", "lr", "seconds")

# Keyed to Optuna's trial_id; study_id and the trial number are copied so that reading one study's
# epochs is a single indexed query that needs none of Optuna's tables.
table = sa.Table(
    "sweeper_epochs",
    metadata,
    sa.Column("trial_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("epoch", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("study_id", sa.Integer, nullable=False, index=True),
    sa.Column("trial", sa.Integer, nullable=False),
    *(sa.Column(name, sa.Float) for name in COLUMNS),
)


def create(engine: sa.Engine) -> None:
    """Create the table if it is missing (safe to call from every process)."""
    metadata.create_all(engine, checkfirst=True)


def write(engine: sa.Engine, *, study_id: int, trial_id: int, trial: int, epoch: int, while_running: bool = False,
          **values: float) -> bool:
    """Insert one epoch's row; a second write of the same (trial_id, epoch) changes nothing.

    `while_running`: only while Optuna's trial is RUNNING, checked in the same statement, so that a
    worker whose trial was taken from it (failed as stale while the worker was stopped) writes
    nothing into it; False then (else True). Tried again on transient errors (storage.retry): the
    insert ignores a row already there, so a try whose commit went through but whose answer was
    lost adds nothing twice.
    """
    row = dict(trial_id=trial_id, epoch=epoch, study_id=study_id, trial=trial,
               **{k: _finite(values[k]) for k in COLUMNS})

    def insert() -> bool:
        with engine.begin() as conn:
            if not while_running:
                conn.execute(_insert_ignore(engine.dialect.name), row)
                return True
            if conn.execute(_insert_while_running(engine.dialect.name), row).first() is not None:
                return True
            state = conn.execute(sa.select(_trials.c.state).where(_trials.c.trial_id == trial_id)).scalar()
            return state is not None and str(getattr(state, "name", state)) == "RUNNING"  # else the row was there

    return retry.call(insert, _what="epochs.write")


def read(engine: sa.Engine, study_id: int):
    """One study's epochs as a DataFrame (trial, epoch, train_loss, ..., seconds), ordered."""
    import pandas as pd

    query = (sa.select(table.c.trial, table.c.epoch, *(table.c[k] for k in COLUMNS))
             .where(table.c.study_id == study_id).order_by(table.c.trial, table.c.epoch))
    if not sa.inspect(engine).has_table(table.name):
        return pd.DataFrame({"trial": pd.Series(dtype="int64"), "epoch": pd.Series(dtype="int64"),
                             **{k: pd.Series(dtype="float64") for k in COLUMNS}})
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    return frame.astype({"trial": "int64", "epoch": "int64", **{k: "float64" for k in COLUMNS}})


def last_epochs(engine: sa.Engine, study_id: int, trials: list[int]) -> dict[int, int]:
    """The highest epoch written for each of the trial numbers `trials` (trials with no row left out)."""
    if not trials or not sa.inspect(engine).has_table(table.name):
        return {}
    query = (sa.select(table.c.trial, sa.func.max(table.c.epoch))
             .where(table.c.study_id == study_id, table.c.trial.in_(trials)).group_by(table.c.trial))
    with engine.connect() as conn:
        return dict(conn.execute(query).all())


def carry(engine: sa.Engine, *, study_id: int, source: int, trial_id: int, trial: int, up_to: int) -> list[tuple]:
    """Copy trial number `source`'s rows up to epoch `up_to` to trial `trial` (id `trial_id`), whose
    training resumes from there (a retry from its predecessor's checkpoint); [(epoch, valid_error)]."""
    rows = (sa.select(sa.literal(trial_id).label("trial_id"), table.c.epoch, sa.literal(study_id).label("study_id"),
                      sa.literal(trial).label("trial"), *(table.c[k] for k in COLUMNS))
            .where(table.c.study_id == study_id, table.c.trial == source, table.c.epoch <= up_to))

    def copy() -> list[tuple]:  # insert-or-ignore: a try whose commit went through adds nothing twice
        with engine.begin() as conn:
            conn.execute(_insert_ignore.__wrapped__(engine.dialect.name, rows))  # not cached: one per resume
            return conn.execute(sa.select(table.c.epoch, table.c.valid_error).where(table.c.trial_id == trial_id)
                                .order_by(table.c.epoch)).all()

    return retry.call(copy, _what="epochs.carry")


def drop_trial(engine: sa.Engine, trial_id: int) -> None:
    """Delete one trial's rows (a resume that found its checkpoint ahead of them starts over)."""
    def drop() -> None:
        with engine.begin() as conn:
            conn.execute(sa.delete(table).where(table.c.trial_id == trial_id))

    retry.call(drop, _what="epochs.drop_trial")


def remove(engine: sa.Engine, study_id: int) -> int:
    """Delete a study's rows (with the study: `sweeper delete`); how many there were."""
    with engine.begin() as conn:
        return conn.execute(sa.delete(table).where(table.c.study_id == study_id)).rowcount


def remove_orphans(engine: sa.Engine) -> int:
    """Delete the rows whose trial is not in Optuna's tables (its study deleted by another tool, or a
    delete cut short); how many. Run before a study is created: SQLite gives a new study the ids of
    a deleted one, and rows left behind would then stand for the new study's trials."""
    if not sa.inspect(engine).has_table(table.name):
        return 0
    mine = sa.exists().where(_trials.c.trial_id == table.c.trial_id, _trials.c.study_id == table.c.study_id)
    with engine.begin() as conn:
        return conn.execute(sa.delete(table).where(~mine)).rowcount


# Optuna's trials table, only the columns read here.
_trials = sa.table("trials", sa.column("trial_id"), sa.column("study_id"), sa.column("state"))


@functools.cache
def _insert_while_running(dialect: str):
    """Insert-or-ignore of one row, from a SELECT of its values that finds nothing unless the trial is RUNNING."""
    running = sa.exists().where(_trials.c.trial_id == sa.bindparam("trial_id"),
                                sa.cast(_trials.c.state, sa.Text) == "RUNNING")
    insert = _insert_ignore(dialect, sa.select(*(sa.bindparam(c.name, type_=c.type) for c in table.columns))
                            .where(running))
    return insert.returning(table.c.epoch)  # the row when it was inserted (rowcount is -1 with psycopg here)


@functools.cache
def _insert_ignore(dialect: str, values=None):
    """The insert-or-ignore statement of a dialect (of the SELECT `values` if given), built once."""
    if dialect in ("postgresql", "sqlite"):
        from sqlalchemy.dialects import postgresql, sqlite

        insert = (postgresql if dialect == "postgresql" else sqlite).insert(table)
        insert = insert if values is None else insert.from_select([c.name for c in table.columns], values)
        return insert.on_conflict_do_nothing(index_elements=["trial_id", "epoch"])
    if dialect in ("mysql", "mariadb"):
        insert = sa.insert(table) if values is None else sa.insert(table).from_select([c.name for c in table.columns],
                                                                                      values)
        return insert.prefix_with("IGNORE")
    raise NotImplementedError(f"epoch rows need an insert-or-ignore for {dialect}")


def _finite(x: float) -> float | None:
    """NaN and infinities become NULL (SQLite cannot store NaN; a diverged loss is 'no value')."""
    x = float(x)
    return x if math.isfinite(x) else None
