"""Keep a complete trial's evaluated weights as an Optuna artifact of the trial, by the study's `keep` policy."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path

from storage.artifacts import NAME
from workers import weights

log = logging.getLogger("sweeper.worker")


class Keeper:
    """Callable(trial, result, value): upload the trial's weights (workers.weights' .npz) to `store`
    when `policy` says so: "all", or "best" (the trial is the study's best when it finishes); not
    with "none" or without a store. A write that fails is one log line: the trial's result stands."""

    def __init__(self, policy: str, store, study_name: str):
        self.policy, self.store, self.study_name = policy, store, study_name

    def __call__(self, trial, result, value: float) -> bool:
        if self.store is None or self.policy == "none" or result.weights is None:
            return False
        if self.policy == "best" and not _best_so_far(trial.study, value):
            return False
        import optuna

        kept = result.weights
        kept = replace(kept, meta={**kept.meta, "figures": {**kept.meta["figures"], "study": self.study_name,
                                                            "trial": trial.number}})
        try:
            with tempfile.TemporaryDirectory(prefix="sweeper-weights-") as tmp:
                path = weights.save(kept, Path(tmp) / NAME)
                optuna.artifacts.upload_artifact(artifact_store=self.store, file_path=str(path), study_or_trial=trial,
                                                 mimetype="application/octet-stream")
        except Exception as exc:  # noqa: BLE001 - the weights are extra; the trial's figures are stored
            log.warning("trial %d: weights not kept: %s", trial.number, exc)
            return False
        return True


def _best_so_far(study, value: float) -> bool:
    """Whether `value` beats (or ties) every complete trial of `study` (True for the first)."""
    try:
        best = study.best_value
    except ValueError:  # no complete trial yet
        return True
    return value <= best if study.direction.name == "MINIMIZE" else value >= best
