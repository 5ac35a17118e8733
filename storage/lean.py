"""Optuna's RDBStorage in fewer statements: trial reads in two instead of six, user attrs in one transaction.

RDBStorage builds a trial through the ORM: one query for the trials, then one per child table
(params, values, user and system attrs, intermediate values), plus one to check the study. A
worker reads trials several times per trial (Trial.__init__, tell, the samplers through Optuna's
cache), and on a 2-core machine each statement costs ~1 ms of SQLAlchemy in Python: most of what
a sweep spends outside training (bench/sweep_overhead.py). Here one Core query reads the trials and
one UNION ALL reads all their children. tests/storage/test_lean.py compares every read with
RDBStorage's own on SQLite and PostgreSQL. `set_trial_user_attrs` writes several attrs in one
transaction (Optuna has one call, and one transaction, per attr); the stale-trial check that
Optuna runs before every trial is one statement.
"""

from __future__ import annotations

import json
import time
from collections.abc import Container, Iterable
from datetime import timedelta

import sqlalchemy as sa
from optuna import distributions
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.dialects import postgresql, sqlite

_T = models.TrialModel.__table__
_COLUMNS = (_T.c.trial_id, _T.c.number, _T.c.state, _T.c.datetime_start, _T.c.datetime_complete)
MAX_ID_LIST = 500  # more unfinished trial ids than this are matched by range and filtered here
PARAM, VALUE, USER, SYSTEM, INTERMEDIATE = range(5)
_UPSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}  # INSERT .. ON CONFLICT DO UPDATE


class LeanRDBStorage(RDBStorage):
    """RDBStorage whose get_trial and trial lists (what Optuna's cache reads) take two statements."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._unbeaten: dict[int, float] = {}  # running trial id -> when first seen without a heartbeat

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """Optuna's stale trials (running, heartbeat older than the grace period) in one statement.

        Also a running trial with no heartbeat at all, once this process has seen it so for the
        grace period: its worker died between taking the trial and its first beat (Optuna would
        leave it RUNNING forever). Timed on this process's clock, so no two machines' clocks meet.
        """
        assert self.heartbeat_interval is not None
        grace = self.grace_period if self.grace_period is not None else 2 * self.heartbeat_interval
        with self.engine.connect() as conn:
            rows = conn.execute(_HEARTBEATS, {"study_id": study_id}).all()
        now_s = time.monotonic()
        self._unbeaten = {trial_id: self._unbeaten.get(trial_id, now_s) for _, trial_id, beat in rows if beat is None}
        # Optuna compares the server's now() without its time zone, as here.
        return [trial_id for now, trial_id, beat in rows
                if (now.replace(tzinfo=None) - beat > timedelta(seconds=grace) if beat is not None
                    else now_s - self._unbeaten[trial_id] > grace)]

    def set_trial_user_attrs(self, trial_id: int, attrs: dict) -> None:
        """set_trial_user_attr for each item, in one transaction: on SQLite and PostgreSQL, one upsert."""
        upsert = _UPSERTS.get(self.engine.name)
        with _create_scoped_session(self.scoped_session, True) as session:
            if upsert is None or not attrs:
                for key, value in attrs.items():
                    self._set_trial_attr_without_commit(session, models.TrialUserAttributeModel, trial_id, key, value)
                return
            trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
            self.check_trial_is_updatable(trial_id, trial.state)
            table = models.TrialUserAttributeModel.__table__
            insert = upsert(table).values([{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)}
                                           for k, v in attrs.items()])
            session.execute(insert.on_conflict_do_update(index_elements=[table.c.trial_id, table.c.key],
                                                         set_={"value_json": insert.excluded.value_json}))

    def get_trial(self, trial_id: int) -> FrozenTrial:
        condition = _T.c.trial_id == trial_id
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*_COLUMNS).where(condition)).all()
            if not rows:
                raise KeyError(models.NOT_FOUND_MSG)
            return _frozen(conn, rows)[0]

    def _get_trials(self, study_id: int, states: Container | None, included_trial_ids: set[int],
                    trial_id_greater_than: int) -> list[FrozenTrial]:
        included = {i for i in included_trial_ids if i <= trial_id_greater_than}
        condition = _T.c.study_id == study_id
        if states is not None:
            assert isinstance(states, Iterable)
            condition &= _T.c.state.in_(list(states))
        if included and trial_id_greater_than > -1:
            # A long id list (a grid's thousands of WAITING trials) would pass SQLite's variable limit.
            ids = (_T.c.trial_id.in_(sorted(included)) if len(included) <= MAX_ID_LIST
                   else _T.c.trial_id >= min(included))
            condition &= sa.or_(ids, _T.c.trial_id > trial_id_greater_than)
        elif trial_id_greater_than > -1:
            condition &= _T.c.trial_id > trial_id_greater_than
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*_COLUMNS).where(condition).order_by(_T.c.trial_id)).all()
            if len(included) > MAX_ID_LIST:
                rows = [r for r in rows if r.trial_id in included or r.trial_id > trial_id_greater_than]
            if not rows:
                study = models.StudyModel.__table__
                if conn.execute(sa.select(study.c.study_id).where(study.c.study_id == study_id)).first() is None:
                    raise KeyError(models.NOT_FOUND_MSG)
                return []
            return _frozen(conn, rows, sa.select(_T.c.trial_id).where(condition))


def _frozen(conn, rows, ids=None) -> list[FrozenTrial]:
    """FrozenTrials of trial `rows`, their children read in one statement (a long list: by `ids`, a select)."""
    children = {row.trial_id: ([], [], {}, {}, {}) for row in rows}
    if ids is None or len(rows) <= MAX_ID_LIST:
        found = conn.execute(_BY_IDS, {"ids": list(children)})
    else:
        found = conn.execute(_children(lambda trial_id: trial_id.in_(ids)))
    for kind, trial_id, _id, pos, key, num, text, kind_of_value in found:
        if trial_id not in children:  # a trial created between the two statements
            continue
        params, values, user, system, intermediate = children[trial_id]
        if kind == PARAM:
            params.append((key, num, text))
        elif kind == VALUE:
            values.append((pos, models.TrialValueModel.stored_repr_to_value(
                num, models.TrialValueModel.TrialValueType[kind_of_value])))
        elif kind == USER:
            user[key] = json.loads(text)
        elif kind == SYSTEM:
            system[key] = json.loads(text)
        else:
            intermediate[pos] = models.TrialIntermediateValueModel.stored_repr_to_intermediate_value(
                num, models.TrialIntermediateValueModel.TrialIntermediateValueType[kind_of_value])
    trials = []
    for row in rows:
        params, values, user, system, intermediate = children[row.trial_id]
        dists = {name: distributions.json_to_distribution(dist) for name, _, dist in params}
        ordered = [0.0] * len(values)
        for objective, value in values:
            ordered[objective] = value
        trials.append(FrozenTrial(
            number=row.number, state=row.state, value=None, values=ordered or None,
            datetime_start=row.datetime_start, datetime_complete=row.datetime_complete,
            params={name: dists[name].to_external_repr(value) for name, value, _ in params},
            distributions=dists, user_attrs=user, system_attrs=system, intermediate_values=intermediate,
            trial_id=row.trial_id))
    return trials


def _children(which):
    """One UNION ALL over the five child tables: (kind, trial_id, id, pos, key, num, text, type).

    `which(trial_id_column)` is the condition on each table's trial_id.
    """
    integer, number, text = sa.Integer, sa.Float(precision=53), sa.Text

    def part(kind, model, row_id, pos=None, key=None, num=None, body=None, value_type=None):
        table = model.__table__

        def typed(column, type_):
            return sa.cast(sa.null() if column is None else table.c[column], type_)

        return (sa.select(sa.literal(kind, integer).label("kind"), table.c.trial_id, table.c[row_id].label("id"),
                          typed(pos, integer).label("pos"), typed(key, text).label("key"),
                          typed(num, number).label("num"), typed(body, text).label("text"),
                          typed(value_type, text).label("type"))
                .where(which(table.c.trial_id)))

    return sa.union_all(
        part(PARAM, models.TrialParamModel, "param_id", key="param_name", num="param_value",
             body="distribution_json"),
        part(VALUE, models.TrialValueModel, "trial_value_id", pos="objective", num="value", value_type="value_type"),
        part(USER, models.TrialUserAttributeModel, "trial_user_attribute_id", key="key", body="value_json"),
        part(SYSTEM, models.TrialSystemAttributeModel, "trial_system_attribute_id", key="key", body="value_json"),
        part(INTERMEDIATE, models.TrialIntermediateValueModel, "trial_intermediate_value_id", pos="step",
             num="intermediate_value", value_type="intermediate_value_type"),
    ).order_by("kind", "trial_id", "id")


# Built once: SQLAlchemy's statement cache still spends ~1 ms building a five-part union per call.
_BY_IDS = _children(lambda trial_id: trial_id.in_(sa.bindparam("ids", expanding=True)))
_BEATS = models.TrialHeartbeatModel.__table__
_HEARTBEATS = (sa.select(sa.func.now(), _T.c.trial_id, _BEATS.c.heartbeat)
               .outerjoin_from(_T, _BEATS, _BEATS.c.trial_id == _T.c.trial_id)
               .where(_T.c.study_id == sa.bindparam("study_id"), _T.c.state == TrialState.RUNNING))
