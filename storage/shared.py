"""Runs trained once for several studies: the COMPLETE trial of another study with the same training key
(storage.contract.runkey), read from Optuna's tables with its epoch rows, for a trial to copy."""

from __future__ import annotations

import json
import math
from collections import namedtuple
from dataclasses import dataclass

import sqlalchemy as sa
from optuna.storages._rdb import models
from optuna.study import StudyDirection
from optuna.trial import TrialState

from storage import epochs, retry
from storage.contract.outcome import RESULT, RUN_KEY

Epoch = namedtuple("Epoch", ("epoch", *epochs.COLUMNS))  # one epoch row, NaN for a missing figure

_TRIALS, _ATTRS = models.TrialModel.__table__, models.TrialUserAttributeModel.__table__
_STUDIES, _VALUES = models.StudyModel.__table__, models.TrialValueModel.__table__
_DIRECTIONS = models.StudyDirectionModel.__table__


@dataclass(frozen=True)
class Source:
    """A trial whose training run another trial takes instead of training it again."""

    study: str  # its study's name
    number: int  # its number in that study
    valid_error: float  # the validation error of its result (whatever metric its study optimised)
    attrs: dict  # the user attrs of its result (storage.contract.outcome.RESULT), those it has
    epochs: list  # its epoch rows, [Epoch], in order

    @property
    def origin(self) -> dict:
        """What a copy stores as its `shared_from` attr."""
        return {"study": self.study, "trial": self.number}


def find(engine: sa.Engine, key: str, study_id: int) -> Source | None:
    """The earliest COMPLETE trial, of any study but `study_id`, whose run_key is `key` (the earliest is
    one that trained, not a copy, while it exists); None when there is none."""
    trial = (sa.select(_TRIALS.c.trial_id, _TRIALS.c.number, _STUDIES.c.study_name, _VALUES.c.value,
                       _VALUES.c.value_type, _DIRECTIONS.c.direction)
             .join(_ATTRS, _ATTRS.c.trial_id == _TRIALS.c.trial_id)
             .join(_STUDIES, _STUDIES.c.study_id == _TRIALS.c.study_id)
             .join(_VALUES, sa.and_(_VALUES.c.trial_id == _TRIALS.c.trial_id, _VALUES.c.objective == 0))
             .join(_DIRECTIONS, sa.and_(_DIRECTIONS.c.study_id == _TRIALS.c.study_id, _DIRECTIONS.c.objective == 0))
             .where(_ATTRS.c.key == RUN_KEY, _ATTRS.c.value_json == json.dumps(key),
                    _TRIALS.c.state == TrialState.COMPLETE, _TRIALS.c.study_id != study_id)
             .order_by(_TRIALS.c.trial_id).limit(1))

    def read() -> Source | None:
        with engine.connect() as conn:
            row = conn.execute(trial).first()
            if row is None:
                return None
            attrs = conn.execute(sa.select(_ATTRS.c.key, _ATTRS.c.value_json)
                                 .where(_ATTRS.c.trial_id == row.trial_id, _ATTRS.c.key.in_(RESULT))).all()
            rows = _epochs(conn, row.trial_id)
        value = models.TrialValueModel.stored_repr_to_value(row.value, row.value_type)
        # METRICS: a study that maximises optimises the validation accuracy, 1 - valid_error.
        valid_error = value if row.direction == StudyDirection.MINIMIZE else 1.0 - value
        return Source(row.study_name, row.number, valid_error, {k: json.loads(v) for k, v in attrs}, rows)

    return retry.call(read, _what="shared.find")


def _epochs(conn, trial_id: int) -> list[Epoch]:
    """A trial's epoch rows in order (none when the epoch table is not there yet)."""
    if not sa.inspect(conn).has_table(epochs.table.name):
        return []
    rows = conn.execute(sa.select(epochs.table.c.epoch, *(epochs.table.c[k] for k in epochs.COLUMNS))
                        .where(epochs.table.c.trial_id == trial_id).order_by(epochs.table.c.epoch)).all()
    return [Epoch(row[0], *(math.nan if x is None else x for x in row[1:])) for row in rows]
