"""A retry goes on from a checkpoint that the trial it retries left, with that trial's epoch rows."""

from __future__ import annotations

import logging

from storage import epochs

log = logging.getLogger("sweeper.worker")


class Resume:
    """What train() needs to checkpoint a study's trials (workers.checkpoints.Checkpoints, or None:
    off) and to resume their retries; each trial's `left` goes to `arguments`, then `remove`."""

    def __init__(self, checkpoints, storage, study_id: int, spec):
        self.checkpoints, self.storage, self.study_id, self.spec = checkpoints, storage, study_id, spec

    def left(self, trial) -> list | None:
        """[(number, path)] of the checkpoints the trials it retries left, the latest first; None when off."""
        if self.checkpoints is None:
            return None
        retried = self.storage.get_trial_system_attrs(trial._trial_id).get("retry_history") or []
        return self.checkpoints.left(retried)

    def arguments(self, trial, record, left: list | None, like) -> dict:
        """train()'s checkpoint arguments (none when off): how often, the callback, the state to go on
        from; `like()`: the trial's fresh network state (workers.checkpoints.fresh)."""
        if left is None:
            return {}
        saver = self.checkpoints.saver(trial.number, record.writes.wait)  # the rows first, then the file
        return dict(every=self.checkpoints.every, resume=self._state(trial, record, left, like),
                    on_checkpoint=record.timed(saver))

    def remove(self, trial, left: list | None) -> None:
        """Remove the trial's checkpoint and those of `left` (the trials it retries), when on."""
        if left is not None:
            self.checkpoints.remove(trial.number, *(number for number, _ in left))

    def _state(self, trial, record, left: list, like):
        """The state of the latest usable checkpoint in `left`, with their epoch rows and reports carried
        over into this trial; None when none can be used (the trial starts at epoch 1)."""
        engine = self.storage.engine
        for source, path, state in self.checkpoints.usable(trial.number, left, like, self.spec.epochs):
            rows = epochs.carry(engine, study_id=self.study_id, source=source, trial_id=trial._trial_id,
                                trial=trial.number, up_to=state.epoch)
            if [epoch for epoch, _ in rows] == list(range(1, state.epoch + 1)):
                for epoch, valid_error in rows:
                    trial.report(self.spec.metric_value(valid_error), epoch)
                record.reached(state.epoch, rows[-1][1])
                record.resumed = state.epoch
                log.info("trial %d resumes trial %d from its checkpoint at epoch %d", trial.number, source,
                         state.epoch)
                return state
            epochs.drop_trial(engine, trial._trial_id)
            log.warning("trial %d: checkpoint %s is ahead of its epoch rows", trial.number, path)
        if left:
            log.warning("trial %d starts at epoch 1: no checkpoint of its predecessors can be used",
                        trial.number)
        return None
