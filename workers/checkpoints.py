"""A running trial's training state on disk: written every few epochs, read by its retry, removed when the trial ends.

One .npz per trial, named by storage.artifacts.checkpoint (`checkpoints/STUDY-NUMBER.npz` in the
study's artifact folder; STUDY: storage.studies.uid): the arrays (weights, moving averages, optimizer
state, the kept epoch's weights, the JAX generator key) and `state.json` with the rest of the
workers.state.TrainingState (the compile mode, epoch, the shuffling generator's state, patience's best
and limit, the dropout generator's state). Written whole or not at all. A file read back is resumed
only when `mismatch` finds nothing wrong with it: a damaged or foreign state costs the epochs it
held, not the trial. `Checkpoints` is one study's: naming, writing, finding and removing them.
"""

from __future__ import annotations

import json
import logging
import numbers
from pathlib import Path

import numpy as np

from storage import artifacts
from storage.contract import files
from storage.contract.errors import BadInput
from workers.state import TrainingState

GROUPS = ("params", "shadows", "state")
META = "state.json"
log = logging.getLogger("sweeper.worker")


class Checkpoints:
    """One study's checkpoints in the artifact `folder` (`study`: its key, storage.studies.uid): each
    running trial's training state every `every` epochs, from which a retry of it resumes."""

    def __init__(self, folder: Path, study: str, every: int):
        self.folder, self.study, self.every = Path(folder), study, every

    def path(self, number: int) -> Path:
        """Where trial `number`'s checkpoint lives."""
        return artifacts.checkpoint(self.folder, self.study, number)

    def left(self, retried: list[int]) -> list[tuple[int, Path]]:
        """[(number, path)] of the `retried` trials (the oldest first) that left a checkpoint, the latest
        first: a retry killed before its first checkpoint leaves none."""
        return [(n, self.path(n)) for n in reversed(retried) if self.path(n).exists()]

    def saver(self, number: int, before):
        """train()'s on_checkpoint for trial `number`: call `before()` (the epoch rows the state covers are
        committed), then write the state. One that cannot be written is one log line, and no more are."""
        failed = []

        def save_state(state: TrainingState) -> None:
            try:
                before()
                if not failed:
                    save(state, self.path(number))
            except (OSError, BadInput) as exc:  # BadInput: a read-only file where it goes
                failed.append(exc)
                log.warning("trial %d: no more checkpoints: %s", number, exc)

        return save_state

    def usable(self, number: int, left: list, like, epochs: int | None):
        """Each (source, path, state) of `left` (see `left`) that trial `number` can resume from, in
        turn; `like()` is its fresh network's training_state() (see `mismatch`). Each passed over is one
        log line."""
        fresh = None
        for source, path in left:
            state = _read(number, path)
            if state is not None and state.mode != _mode():
                log.warning("trial %d: checkpoint %s is of another backend (%s)", number, path, state.mode)
            elif state is not None:
                fresh = like() if fresh is None else fresh
                why = mismatch(state, fresh, epochs)
                if why is None:
                    yield source, path, state
                else:
                    log.warning("trial %d: checkpoint %s does not match this trial: %s", number, path, why)

    def remove(self, *numbers: int) -> None:
        """Remove the checkpoints of trials that ended (kept for a retry when one was cut short). What is
        not a file there (a folder: passed over when read) is left; a file that cannot be removed is
        one log line, never the trial's failure."""
        for path in map(self.path, numbers):
            if path.is_dir():
                continue
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("checkpoint %s not removed (%s): remove it by hand", path, exc.strerror or exc)


def fresh(model: str, params: dict, data) -> dict:
    """The training state of the network train() builds for `params` on `data` (compiled once per
    architecture, as train() would): the shapes, types and generator a checkpoint must match."""
    from workers import compiled
    from workers.entries import resolved

    config = resolved(model, params)
    return compiled.network(model, config, data.image_shape, data.n_classes).training_state()


def _read(number: int, path: Path) -> TrainingState | None:
    """The state in `path`, or None (one log line) when it is not a file or cannot be read."""
    if not path.is_file():
        log.warning("trial %d: checkpoint %s is not a file: passed over (remove it)", number, path)
        return None
    try:
        return load(path)
    except Exception as exc:  # noqa: BLE001 - a damaged file costs the epochs it held, not the trial
        log.warning("trial %d: checkpoint %s cannot be read (%s)", number, path, exc)
        return None


def _mode() -> str:
    """The compile mode of this process (a checkpoint of another backend is not resumed)."""
    from workers import runtime

    return runtime.compile_mode()


def save(state: TrainingState, where: Path) -> None:
    """Write a training `state` to `where` (a temporary file, then renamed)."""
    where.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{g}/{i}": a for g in GROUPS for i, a in enumerate(state.net[g])}
    arrays.update({f"kept/{i}": a for i, a in enumerate(state.kept or [])})
    rng = state.net["rng"]
    if rng is not None and rng["kind"] == "jax":
        arrays["rng/jax_state"], rng = rng["jax_state"], dict(kind="jax")
    meta = dict(mode=state.mode, epoch=state.epoch, shuffle=state.shuffle, best=state.best, limit=state.limit,
                kept=None if state.kept is None else len(state.kept), rng=rng,
                sizes={g: len(state.net[g]) for g in GROUPS})

    def write(tmp: str) -> None:
        with open(tmp, "wb") as out:  # a file object: given a name, np.savez would append .npz to it
            np.savez(out, **arrays, **{META: np.asarray(json.dumps(meta, default=int))})

    files.replace_atomically(where, write)


def load(where: Path) -> TrainingState:
    """The state `save` wrote (as workers.train's `resume` takes it)."""
    with np.load(where, allow_pickle=False) as archive:
        meta = json.loads(str(archive[META]))
        net = {g: [archive[f"{g}/{i}"] for i in range(meta["sizes"][g])] for g in GROUPS}
        rng = meta["rng"]
        if rng is not None and rng["kind"] == "jax":
            rng = dict(kind="jax", jax_state=archive["rng/jax_state"])
        net["rng"] = rng
        kept = None if meta["kept"] is None else [archive[f"kept/{i}"] for i in range(meta["kept"])]
    return TrainingState(epoch=meta["epoch"], net=net, shuffle=meta["shuffle"], best=meta["best"],
                         limit=meta["limit"], kept=kept, mode=meta.get("mode"))


def mismatch(state: TrainingState, like: dict, epochs: int | None = None) -> str | None:
    """Why `state` (as `load` reads it) cannot be resumed by the trial whose network's fresh
    `training_state()` is `like` and whose run has `epochs` epochs (None: not known); None when it can.

    Checked: the fields' types, the arrays' count, shape and float type against `like`'s, that the
    weights, averages, optimizer state and kept weights are finite, the generators' states.
    """
    epoch = state.epoch
    if not _integer(epoch) or epoch < 1:
        return f"its epoch {epoch!r} is not a whole number of 1 or more"
    if epochs is not None and epoch >= epochs:
        return f"it is at epoch {epoch}, not before this trial's last ({epochs})"
    for name, value in (("best", state.best), ("limit", state.limit)):
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or value != value:
            return f"its {name} {value!r} is not a number"
    why = _generator(state.shuffle, "shuffle")
    if why:
        return why
    net = state.net if isinstance(state.net, dict) else {}
    evaluated = like["shadows"] or like["params"]
    kept = state.kept
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
