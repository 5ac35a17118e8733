"""Data set names both sides accept: digits, mnist, xor, or idx:DIR (checked here without reading any data)."""

from __future__ import annotations

from pathlib import Path

from storage.errors import BadInput

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
    import difflib

    near = difflib.get_close_matches(spec, NAMES, n=1)
    raise BadInput(f"unknown dataset {spec!r}: " + (f"did you mean '{near[0]}'? " if near else "") + FIX)
