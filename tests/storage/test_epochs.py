"""The epoch table on every backend: idempotent writes, reads as a DataFrame, last epoch per trial."""

from __future__ import annotations

import math

import optuna
import sqlalchemy as sa

from storage import epochs, rdb


def _row(epoch, **over):
    values = dict(train_loss=1.0 / epoch, train_error=0.5 / epoch, valid_error=0.4 / epoch, lr=0.1, seconds=0.01)
    values.update(over)
    return values


def test_a_second_write_of_one_epoch_adds_no_row(db_url):
    engine = rdb.open_storage(db_url, create=True).engine
    epochs.create(engine)
    epochs.create(engine)  # every worker calls it: must be harmless
    for _ in range(3):
        epochs.write(engine, study_id=1, trial_id=7, trial=0, epoch=1, **_row(1))
    epochs.write(engine, study_id=1, trial_id=7, trial=0, epoch=1, **_row(1, valid_error=0.99))
    epochs.write(engine, study_id=1, trial_id=7, trial=0, epoch=2, **_row(2))
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(epochs.table)).scalar_one() == 2
    frame = epochs.read(engine, 1)
    assert list(frame.columns) == ["trial", "epoch", *epochs.COLUMNS]
    assert frame["epoch"].tolist() == [1, 2]
    assert frame.loc[0, "valid_error"] == 0.4  # the first write wins


def test_read_is_per_study_and_ordered(db_url):
    engine = rdb.open_storage(db_url, create=True).engine
    epochs.create(engine)
    for trial_id, trial, study in [(12, 1, 1), (11, 0, 1), (20, 0, 2)]:
        for epoch in (2, 1):
            epochs.write(engine, study_id=study, trial_id=trial_id, trial=trial, epoch=epoch, **_row(epoch))
    frame = epochs.read(engine, 1)
    assert frame[["trial", "epoch"]].values.tolist() == [[0, 1], [0, 2], [1, 1], [1, 2]]
    assert epochs.last_epochs(engine, 1, [0, 1, 5]) == {0: 2, 1: 2}
    assert epochs.read(engine, 3).empty


def test_non_finite_values_are_stored_as_null(db_url):
    engine = rdb.open_storage(db_url, create=True).engine
    epochs.create(engine)
    epochs.write(engine, study_id=1, trial_id=1, trial=0, epoch=1, **_row(1, train_loss=math.inf))
    epochs.write(engine, study_id=1, trial_id=1, trial=0, epoch=2, **_row(2, train_loss=math.nan))
    assert epochs.read(engine, 1)["train_loss"].isna().all()


def test_reading_before_any_write_gives_an_empty_typed_frame(db_url):
    engine = rdb.open_storage(db_url, create=True).engine
    frame = epochs.read(engine, 1)
    assert frame.empty and list(frame.columns) == ["trial", "epoch", *epochs.COLUMNS]
    assert epochs.last_epochs(engine, 1, [0]) == {}


def test_rows_without_their_trial_are_removed_when_the_database_is_opened_for_writing(db_url):
    """Optuna's delete-study leaves them; on SQLite a study created next takes their ids."""
    storage = rdb.open_storage(db_url, create=True)
    study = optuna.create_study(storage=storage, study_name="kept")
    trial = study.ask()
    sid = storage.get_study_id_from_name("kept")
    for trial_id, study_id, epoch in ((trial._trial_id, sid, 1), (trial._trial_id, sid + 1, 2),
                                      (trial._trial_id + 1, sid, 1)):  # theirs; another study's; no trial's
        epochs.write(storage.engine, study_id=study_id, trial_id=trial_id, trial=0, epoch=epoch,
                     train_loss=1, train_error=1, valid_error=1, lr=1, seconds=1)
    storage.engine.dispose()

    def rows() -> int:
        engine = sa.create_engine(db_url)
        try:
            with engine.connect() as conn:
                return conn.execute(sa.select(sa.func.count()).select_from(epochs.table)).scalar()
        finally:
            engine.dispose()

    rdb.open_storage(db_url).engine.dispose()  # a reader removes nothing
    assert rows() == 3
    engine = rdb.open_storage(db_url, create=True).engine
    assert rows() == 1 and epochs.read(engine, sid)["epoch"].tolist() == [1]
    engine.dispose()
