"""Optuna's RDBStorage (its lean reads, storage.lean) with every database call retried on transient errors."""

from __future__ import annotations

from optuna.exceptions import UpdateFinishedTrialError

from storage import retry
from storage.contract.errors import first_line
from storage.lean import LeanRDBStorage

# RDBStorage's methods that talk to the database. Each runs in one transaction, so a failed try
# changed nothing and trying again is safe; writes are upserts or checked (see set_trial_state_values).
_CALLS = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_trial_user_attrs", "get_trial_system_attrs", "get_all_studies", "create_new_trial", "set_trial_param",
    "get_trial_param", "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials", "get_best_trial",
    "_get_stale_trial_ids", "get_n_trials", "get_trial_number_from_id",
    "set_trial_user_attrs",  # storage.lean's
    # the private ones that Optuna's _CachedStorage (what a Study wraps an RDBStorage in) calls
    "_create_new_trial", "_set_trial_param", "_get_best_trial_id", "_get_trials",
)


def retried(*names: str):
    """A class decorator: wrap each of `names` (methods of LeanRDBStorage) with retries; a name the
    installed Optuna lacks is an error at import rather than a call that silently goes unretried."""

    def install(cls):
        missing = [name for name in names if not callable(getattr(LeanRDBStorage, name, None))]
        if missing:
            import optuna

            raise ImportError(f"Optuna {optuna.__version__}'s RDBStorage has no {', '.join(missing)}: "
                              "storage/resilient.py retries them; update its _CALLS for this Optuna")
        for name in names:
            setattr(cls, name, _wrap(name))
        return cls

    return install


def _wrap(name: str):
    """LeanRDBStorage's method `name`, called through storage.retry."""
    method = getattr(LeanRDBStorage, name)

    def wrapper(self, *args, **kwargs):
        return retry.call(method, self, *args, _what=name, **kwargs)

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = method.__doc__
    return wrapper


@retried(*_CALLS)
class ResilientRDBStorage(LeanRDBStorage):
    """RDBStorage whose calls survive a database restart, a dropped connection or a busy SQLite file."""

    _heartbeat_failing = False  # one log line per outage of the heartbeat, not one per beat

    def set_trial_state_values(self, trial_id, state, values=None) -> bool:
        tries = [0]

        def attempt() -> bool:
            tries[0] += 1
            try:
                return LeanRDBStorage.set_trial_state_values(self, trial_id, state, values)
            except UpdateFinishedTrialError:
                # A try whose commit went through but whose answer was lost: the trial already
                # holds this state (and values); anything else is a real conflict.
                if tries[0] > 1 and state.is_finished():
                    frozen = LeanRDBStorage.get_trial(self, trial_id)
                    if frozen.state == state and (values is None or list(frozen.values or []) == list(values)):
                        return True
                raise

        return retry.call(attempt, _what="set_trial_state_values")

    def record_heartbeat(self, trial_id: int) -> None:
        """Optuna's heartbeat thread calls this every `heartbeat` seconds: a failure (retried first) is
        logged, not raised, so the thread lives on, beats again once the database answers, and the
        trial itself decides what a lasting failure means (storage.retry.outage)."""
        try:
            retry.call(LeanRDBStorage.record_heartbeat, self, trial_id, _what="record_heartbeat")
        except Exception as exc:  # noqa: BLE001 - raised, it would end the thread with a traceback
            if not self._heartbeat_failing:
                retry.log.warning("heartbeat of trial id %d not recorded: %s", trial_id, first_line(exc)[:200])
            self._heartbeat_failing = True
        else:
            self._heartbeat_failing = False

