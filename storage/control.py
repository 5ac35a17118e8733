"""Stop and resume a study's workers everywhere: a flag in the study (system attr) read between trials.

Readers get it with the budget count (storage.budget.Counts.stopped): one statement per trial.
"""

from __future__ import annotations

ATTR = "sweeper_stop"  # study system attr: true while `sweeper stop` holds the workers back


def set_stopped(storage, study_id: int, stopped: bool) -> None:
    """Raise (`sweeper stop`) or lift (`sweeper resume`) the study's stop flag."""
    storage.set_study_system_attr(study_id, ATTR, bool(stopped))

