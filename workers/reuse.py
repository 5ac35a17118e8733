"""The shared-baseline copy: a trial whose run another study already trained takes it instead of training."""

from __future__ import annotations

import os
from dataclasses import replace

from storage import shared
from storage.contract import datasets, runkey
from storage.contract.errors import BadInput
from storage.contract.outcome import COMPLETE, Outcome
from storage.contract.params import is_user_model


def enabled() -> bool:
    """$SWEEPER_REUSE: 1 (or unset) copies a run another study trained; 0 trains every trial."""
    text = os.environ.get("SWEEPER_REUSE", "1").strip()
    if text not in ("0", "1"):
        raise BadInput(f"SWEEPER_REUSE={text!r} is not 0 or 1: set 0 to train every trial, or unset it to "
                       "reuse runs that other studies trained")
    return text == "1"


def find(spec, storage, study_id: int, params: dict, seed: int, reuse: bool) -> tuple:
    """(the trial's training key, the COMPLETE trial of another study that trained the same run, or None
    when there is none or not `reuse`); the key is None for parameters that train() refuses (it fails
    the trial with the reason)."""
    try:
        key = runkey.key(spec, params, seed)
    except BadInput:
        return None, None
    if is_user_model(spec.model) or datasets.is_users(spec.dataset):
        reuse = False  # a user's code or file may change under the same name: the key cannot tell
    return key, shared.find(storage.engine, key, study_id) if reuse else None


def replay(source: shared.Source, on_epoch) -> None:
    """`source`'s epochs through `on_epoch`, as if they were trained now (rows, reports, the pruner)."""
    for record in source.epochs:
        on_epoch(record)


def copied(source: shared.Source, started: Outcome) -> Outcome:
    """The outcome of the trial `started` that took `source`'s run: its result, as the source stored it."""
    taken = Outcome.from_attrs(source.attrs, COMPLETE)
    return replace(taken, worker=started.worker, run_key=started.run_key, shared_from=started.shared_from)
