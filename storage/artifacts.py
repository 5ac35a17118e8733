"""Where kept weights live: Optuna's file-system artifact store beside an SQLite file, or in $SWEEPER_ARTIFACTS."""

from __future__ import annotations

import os
import re
from pathlib import Path

from storage import urls
from storage.contract.errors import BadInput

ENV = "SWEEPER_ARTIFACTS"
KEEP = ("best", "all", "none")  # [study] keep: each trial that was the best when it finished, every one, none
NAME = "weights.npz"  # the artifact's file name (optuna-dashboard shows it)
CHECKPOINTS = "checkpoints"  # the artifact folder's subfolder of running trials' states (workers/checkpoints.py)
CHECKPOINT = "{study}-{number}.npz"  # a trial's checkpoint in CHECKPOINTS (see `checkpoint`)
ARTIFACT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")  # a plain file name (Optuna writes UUIDs)


def checkpoint(folder: Path, study: str, number: int) -> Path:
    """Where trial `number`'s checkpoint lives under the artifact `folder` (workers.checkpoints writes
    it); `study` is the study's key (storage.studies.uid), unique across databases and deleted studies."""
    return Path(folder) / CHECKPOINTS / CHECKPOINT.format(study=study, number=number)


def checkpoints(folder: Path, study: str) -> list[Path]:
    """The checkpoints under the artifact `folder` that `checkpoint` names, of the study keyed `study`."""
    return sorted((Path(folder) / CHECKPOINTS).glob(CHECKPOINT.format(study=study, number="*")))


def folder(url: str) -> Path | None:
    """The artifact folder for the database at `url`: $SWEEPER_ARTIFACTS, else `NAME-artifacts` beside
    an SQLite file NAME; None for a server database without $SWEEPER_ARTIFACTS (nothing is kept)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser().resolve()
    path = urls.sqlite_path(url)
    if path is None:
        return None
    return path.resolve().with_name(f"{path.name}-artifacts")


def store(url: str, *, create: bool = False):
    """Optuna's FileSystemArtifactStore for `url`, or None (see `folder`). `create`: make the folder
    (a worker about to keep weights); else BadInput if it is missing (nothing was kept)."""
    from optuna.artifacts import FileSystemArtifactStore

    where = folder(url)
    if where is None:
        return None
    if create:
        try:
            where.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(f"cannot create the artifact folder {where}: {exc.strerror or exc}: set {ENV} to a "
                           "folder you can write") from None
    elif not where.is_dir():
        raise BadInput(f"no artifact folder {where}: no weights were kept for this database (set {ENV} to "
                       "where its workers kept them)")
    return _Checked(FileSystemArtifactStore(str(where)))


class _Checked:
    """An artifact store whose every artifact id (read from the database, whoever wrote it) is checked
    first: BadInput unless it is a plain file name in the store's folder (`ARTIFACT_ID`)."""

    def __init__(self, inner):
        self.inner = inner

    def open_reader(self, artifact_id: str):
        return self.inner.open_reader(checked_id(artifact_id))

    def write(self, artifact_id: str, content_body) -> None:
        self.inner.write(checked_id(artifact_id), content_body)

    def remove(self, artifact_id: str) -> None:
        self.inner.remove(checked_id(artifact_id))


def checked_id(artifact_id) -> str:
    """`artifact_id` if it is a plain file name (Optuna's are UUIDs), else BadInput: one like '../x'
    or '' would read, replace or remove a file that is not a kept artifact."""
    if not isinstance(artifact_id, str) or not ARTIFACT_ID.fullmatch(artifact_id):
        raise BadInput(f"artifact id {artifact_id!r} in the database is not a plain file name (Optuna writes "
                       "UUIDs): the database was edited; re-run the trial to keep its weights again")
    return artifact_id


def existing(url: str):
    """The store for `url` if its folder exists (something was kept), else None; never creates it."""
    where = folder(url)
    return store(url) if where is not None and where.is_dir() else None


def not_kept_reason(url: str) -> str:
    """Why nothing is kept at `url` (a server database without a folder), with the fix."""
    return (f"weights and checkpoints are not kept for {urls.mask(url)}: set {ENV}=DIR (a folder every "
            "worker and sweeper export can reach) to keep them")
