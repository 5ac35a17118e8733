"""A study's stop flag (`sweeper stop`, lifted by `sweeper resume`): a study system attr its workers read between
trials, with the budget count (storage.budget.Counts.stopped), so that workers everywhere stop."""

from __future__ import annotations

ATTR = "sweeper_stop"  # study system attr: true while `sweeper stop` holds the workers back


def set_stopped(storage, study_id: int, stopped: bool) -> None:
    """Raise (`sweeper stop`) or lift (`sweeper resume`) the study's stop flag."""
    storage.set_study_system_attr(study_id, ATTR, bool(stopped))
