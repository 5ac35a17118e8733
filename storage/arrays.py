"""The worker arrays `sweeper submit` gave an engine (Slurm), kept with the study as a study system attr."""

from __future__ import annotations

ATTR = "sweeper_arrays"  # study system attr: the worker arrays `sweeper submit` gave an engine, oldest first


def add(storage, study_id: int, record: dict) -> None:
    """Remember one submitted array of workers (engine, job id, size, script) with the study."""
    before = storage.get_study_system_attrs(study_id).get(ATTR, [])
    storage.set_study_system_attr(study_id, ATTR, [*before, record])


def submitted(storage, study_id: int) -> list[dict]:
    """The arrays of workers submitted for the study, oldest first."""
    return list(storage.get_study_system_attrs(study_id).get(ATTR, []))
