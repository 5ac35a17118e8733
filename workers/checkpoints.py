"""A running trial's training state on disk: written every few epochs, read by its retry, removed when the trial ends.

One .npz per trial, `checkpoints/STUDY-NUMBER.npz` in the study's artifact folder
(storage.artifacts; STUDY: storage.studies.uid): the arrays (weights, moving averages, optimizer
state, the kept epoch's weights, the JAX generator key) and `state.json` with the rest (the compile
mode, epoch, the shuffling generator's state, patience's best and limit, the dropout generator's
state). Written whole or not at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from storage import artifacts
from storage.contract import files

GROUPS = ("params", "shadows", "state")
META = "state.json"


def path(folder: Path, study: str, number: int) -> Path:
    """Where trial `number`'s checkpoint lives under the artifact `folder`; `study` is the study's
    key (storage.studies.uid), unique across databases and deleted studies."""
    return Path(folder) / artifacts.CHECKPOINTS / f"{study}-{number}.npz"


def save(state: dict, where: Path) -> None:
    """Write a workers.train checkpoint `state` to `where` (a temporary file, then renamed)."""
    where.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{g}/{i}": a for g in GROUPS for i, a in enumerate(state["net"][g])}
    arrays.update({f"kept/{i}": a for i, a in enumerate(state["kept"] or [])})
    rng = state["net"]["rng"]
    if rng is not None and rng["kind"] == "jax":
        arrays["rng/jax_state"], rng = rng["jax_state"], dict(kind="jax")
    meta = dict(mode=state.get("mode"), epoch=state["epoch"], shuffle=state["shuffle"], best=state["best"],
                limit=state["limit"],
                kept=None if state["kept"] is None else len(state["kept"]), rng=rng,
                sizes={g: len(state["net"][g]) for g in GROUPS})

    def write(tmp: str) -> None:
        with open(tmp, "wb") as out:  # a file object: given a name, np.savez would append .npz to it
            np.savez(out, **arrays, **{META: np.asarray(json.dumps(meta, default=int))})

    files.replace_atomically(where, write)


def load(where: Path) -> dict:
    """The state `save` wrote (as workers.train's `resume` takes it)."""
    with np.load(where, allow_pickle=False) as archive:
        meta = json.loads(str(archive[META]))
        net = {g: [archive[f"{g}/{i}"] for i in range(meta["sizes"][g])] for g in GROUPS}
        rng = meta["rng"]
        if rng is not None and rng["kind"] == "jax":
            rng = dict(kind="jax", jax_state=archive["rng/jax_state"])
        net["rng"] = rng
        kept = None if meta["kept"] is None else [archive[f"kept/{i}"] for i in range(meta["kept"])]
    return dict(mode=meta.get("mode"), epoch=meta["epoch"], net=net, shuffle=meta["shuffle"], best=meta["best"],
                limit=meta["limit"],
                kept=kept)
