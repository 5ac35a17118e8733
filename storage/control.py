"""Steer a study's workers everywhere: a stop flag and a raised budget, study system attrs read between trials.

Readers get both with the budget count (storage.budget.Counts.stopped, .extended): one statement per trial.
"""

from __future__ import annotations

ATTR = "sweeper_stop"  # study system attr: true while `sweeper stop` holds the workers back
BUDGET = "sweeper_n_trials"  # study system attr: the budget set by `sweeper extend` (else the spec's n_trials)


def set_stopped(storage, study_id: int, stopped: bool) -> None:
    """Raise (`sweeper stop`) or lift (`sweeper resume`) the study's stop flag."""
    storage.set_study_system_attr(study_id, ATTR, bool(stopped))



def set_budget(storage, study_id: int, n_trials: int) -> None:
    """Set the study's trial budget (`sweeper extend`); running workers take it at their next trial."""
    storage.set_study_system_attr(study_id, BUDGET, int(n_trials))


ARRAYS = "sweeper_arrays"  # study system attr: the worker arrays `sweeper submit` gave an engine, oldest first


def add_array(storage, study_id: int, record: dict) -> None:
    """Remember one submitted array of workers (engine, job id, size, script) with the study."""
    before = storage.get_study_system_attrs(study_id).get(ARRAYS, [])
    storage.set_study_system_attr(study_id, ARRAYS, [*before, record])


def arrays(storage, study_id: int) -> list[dict]:
    """The arrays of workers submitted for the study, oldest first."""
    return list(storage.get_study_system_attrs(study_id).get(ARRAYS, []))
