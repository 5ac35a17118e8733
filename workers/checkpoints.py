"""A running trial's training state on disk: written every few epochs, read by its retry, removed when the trial ends.

One .npz per trial, `checkpoints/STUDY-NUMBER.npz` in the study's artifact folder
(storage.artifacts; STUDY: storage.studies.uid): the arrays (weights, moving averages, optimizer
state, the kept epoch's weights, the JAX generator key) and `state.json` with the rest (the compile
mode, epoch, the shuffling generator's state, patience's best and limit, the dropout generator's
state). Written whole or not at all. A file read back is resumed only when `mismatch` finds nothing
wrong with it: a damaged or foreign state costs the epochs it held, not the trial.
"""

from __future__ import annotations

import json
import numbers
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


def mismatch(state: dict, like: dict, epochs: int | None = None) -> str | None:
    """Why `state` (as `load` reads it) cannot be resumed by the trial whose network's fresh
    `training_state()` is `like` and whose run has `epochs` epochs (None: not known); None when it can.

    Checked: the fields' types, the arrays' count, shape and float type against `like`'s, that the
    weights, averages, optimizer state and kept weights are finite, the generators' states.
    """
    epoch = state.get("epoch")
    if not _integer(epoch) or epoch < 1:
        return f"its epoch {epoch!r} is not a whole number of 1 or more"
    if epochs is not None and epoch >= epochs:
        return f"it is at epoch {epoch}, not before this trial's last ({epochs})"
    for name in ("best", "limit"):
        if not isinstance(state.get(name), numbers.Real) or isinstance(state[name], bool) or state[name] != state[name]:
            return f"its {name} {state.get(name)!r} is not a number"
    why = _generator(state.get("shuffle"), "shuffle")
    if why:
        return why
    net = state.get("net") or {}
    evaluated = like["shadows"] or like["params"]
    kept = state.get("kept")
    for group, want in ((g, like[g]) for g in GROUPS):
        why = _arrays(net.get(group), want, group)
        if why:
            return why
    if kept is not None:
        why = _arrays(kept, evaluated, "kept")
        if why:
            return why
    return _dropout(net.get("rng"), like["rng"])


def _integer(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _arrays(got, want: list, group: str) -> str | None:
    """Why the arrays `got` do not stand in for `want` (count, shape, float type, finite values)."""
    if not isinstance(got, list) or len(got) != len(want):
        return f"it holds {len(got) if isinstance(got, list) else got!r} {group} arrays, not {len(want)}"
    for i, (a, w) in enumerate(zip(got, want)):
        if not isinstance(a, np.ndarray) or a.shape != w.shape:
            return f"{group}/{i} has shape {getattr(a, 'shape', None)}, not {w.shape}"
        if not np.issubdtype(a.dtype, np.floating) or not np.can_cast(a.dtype, w.dtype, "same_kind"):
            return f"{group}/{i} holds {a.dtype} values, not {w.dtype}"
        if not np.isfinite(a).all():
            return f"{group}/{i} holds NaN or infinite values"
    return None


def _generator(state, name: str) -> str | None:
    """Why `state` is not a NumPy bit generator's state (the one `name` names)."""
    try:
        kind = getattr(np.random, state["bit_generator"])
        kind().state = state
    except Exception:  # noqa: BLE001 - any failure: not a generator's state
        return f"its {name} generator state is not one NumPy can take"
    return None


def _dropout(got, want) -> str | None:
    """Why `got` is not the state of the dropout generator `want` describes."""
    if want is None or got is None:
        return None if want is got else f"its dropout generator {'is missing' if got is None else 'is not expected'}"
    if not isinstance(got, dict) or got.get("kind") != want["kind"]:
        return f"its dropout generator is not of kind {want['kind']}"
    if want["kind"] == "numpy":
        return _generator(got.get("state"), "dropout")
    key, wanted = got.get("jax_state"), want["jax_state"]
    if not isinstance(key, np.ndarray) or key.shape != wanted.shape or key.dtype.kind not in "ui":
        return "its dropout generator's key is not a JAX key"
    return None
