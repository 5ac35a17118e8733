"""Data set names both sides accept: digits, mnist, xor, idx:DIR, npz:FILE or a package.module:function loader."""

from __future__ import annotations

from pathlib import Path

from storage.contract.errors import BadInput, did_you_mean
from storage.contract.params import USER_MODEL

NAMES = ("digits", "mnist", "xor")
FIX = ("use digits, mnist, xor, idx:DIR (a folder with the four MNIST IDX files), npz:FILE (arrays x_train, "
       "y_train, x_test, y_test) or your loader as package.module:function")


def check(spec) -> str:
    """Return `spec` or raise BadInput; an idx:DIR folder must exist on this machine."""
    if not isinstance(spec, str):
        raise BadInput(f"dataset {spec!r} is not a name: {FIX}")
    if spec in NAMES:
        return spec
    if spec.startswith("idx:"):
        folder = idx_path(spec)
        if not folder.is_dir():
            raise BadInput(f"dataset {spec!r}: no folder {folder}: fix the path, {FIX}")
        return spec
    if spec.startswith("npz:"):
        path = npz_path(spec)
        if not path.is_file():
            raise BadInput(f"dataset {spec!r}: no file {path}: fix the path, {FIX}")
        return spec
    if is_loader(spec):
        return spec
    hint = did_you_mean(spec, NAMES, otherwise="")
    raise BadInput(f"unknown dataset {spec!r}: " + (f"{hint} " if hint else "") + FIX)


def idx_path(spec: str) -> Path:
    """The folder of an idx:DIR data set (`~` expanded); BadInput when it names none."""
    if not spec[4:].strip():
        raise BadInput(f"dataset {spec!r} names no folder: {FIX}")
    return Path(spec[4:].strip()).expanduser()


def npz_path(spec: str) -> Path:
    """The file of an npz:FILE data set (`~` expanded); BadInput when it names none."""
    if not spec[4:].strip():
        raise BadInput(f"dataset {spec!r} names no file: {FIX}")
    return Path(spec[4:].strip()).expanduser()


def is_users(spec: str) -> bool:
    """Whether `spec` is a user's own data set (npz:FILE or a loader), whose arrays a worker checks."""
    return isinstance(spec, str) and (spec.startswith("npz:") or is_loader(spec))


def is_loader(spec: str) -> bool:
    """Whether `spec` names a user's loader function (package.module:function) rather than files."""
    return USER_MODEL.fullmatch(spec) is not None and spec.partition(":")[0] not in ("idx", "npz")
