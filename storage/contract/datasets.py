"""Data set names both sides accept: digits, mnist, xor, or idx:DIR (checked here without reading any data)."""

from __future__ import annotations

from pathlib import Path

from storage.contract.errors import BadInput, did_you_mean

NAMES = ("digits", "mnist", "xor")
FIX = "use digits, mnist, xor or idx:DIR (a folder with the four MNIST IDX files)"


def check(spec) -> str:
    """Return `spec` or raise BadInput; an idx:DIR folder must exist on this machine."""
    if not isinstance(spec, str):
        raise BadInput(f"dataset {spec!r} is not a name: {FIX}")
    if spec in NAMES:
        return spec
    if spec.startswith("idx:"):
        folder = Path(spec[4:].strip()).expanduser()
        if not spec[4:].strip():
            raise BadInput(f"dataset {spec!r} names no folder: {FIX}")
        if not folder.is_dir():
            raise BadInput(f"dataset {spec!r}: no folder {folder}: fix the path, {FIX}")
        return spec
    hint = did_you_mean(spec, NAMES, otherwise="")
    raise BadInput(f"unknown dataset {spec!r}: " + (f"{hint} " if hint else "") + FIX)
