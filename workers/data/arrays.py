"""A user's own data set (an .npz file, or what a loader function returns), checked array by array."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from storage.contract.errors import BadInput

NEEDED = ("x_train", "y_train", "x_test", "y_test")
VALID = ("x_valid", "y_valid")  # optional: a validation pair of its own (the study's split is then not used)
FORM = ("images as (N, H, W) or feature rows as (N, D), uint8 (scaled to [0, 1]) or float; labels as (N,) "
        "integers from 0")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz file; BadInput when it is not one or lacks an array."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise BadInput(f"dataset npz:{path}: no such file: fix the path") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise BadInput(f"dataset npz:{path}: not a readable .npz file ({exc}): write it with numpy.savez") from None


def checked(arrays, where: str) -> dict[str, np.ndarray]:
    """The arrays of a user's data set as sweeper trains on them: images (N, H, W) (rows of D features
    become (N, 1, D)), float32 or uint8; labels int32. BadInput naming the array and the fix."""
    if not hasattr(arrays, "keys"):
        raise BadInput(f"dataset {where} gave {type(arrays).__name__}, not a dict of arrays: return "
                       f"{{'x_train': ..., 'y_train': ..., 'x_test': ..., 'y_test': ...}}")
    missing = [k for k in NEEDED if k not in arrays]
    if missing:
        raise BadInput(f"dataset {where} has no {', '.join(missing)}: give {', '.join(NEEDED)} "
                       "(and optionally x_valid, y_valid)")
    parts = ["train", "test"] + (["valid"] if any(k in arrays for k in VALID) else [])
    out = {}
    for part in parts:
        x, y = (_array(arrays, f"{c}_{part}", where) for c in "xy")
        out[f"x_{part}"], out[f"y_{part}"] = _images(x, f"x_{part}", where), _labels(y, f"y_{part}", where)
        if len(out[f"y_{part}"]) != len(out[f"x_{part}"]):
            raise BadInput(f"dataset {where}: x_{part} has {len(x)} rows but y_{part} {len(y)} labels: give one "
                           "label per image")
        if len(y) == 0:
            raise BadInput(f"dataset {where}: {part} set is empty: give it images")
    kinds = {"uint8" if out[k].dtype == np.uint8 else "float" for k in out if k.startswith("x_")}
    if len(kinds) > 1:
        raise BadInput(f"dataset {where}: some of its images are uint8 and some float: give every set the same "
                       "type (uint8 0-255, or floats in the range you want trained)")
    shapes = {out[k].shape[1:] for k in out if k.startswith("x_")}
    if len(shapes) > 1:
        raise BadInput(f"dataset {where}: its images differ in shape ({', '.join(map(str, sorted(shapes)))}): "
                       "give every set images of one shape")
    return out


def _array(arrays, key: str, where: str) -> np.ndarray:
    if key not in arrays:
        partner = ("y" if key[0] == "x" else "x") + key[1:]
        raise BadInput(f"dataset {where} has {partner} but no {key}: give both or neither")
    value = arrays[key]
    if not isinstance(value, np.ndarray):
        raise BadInput(f"dataset {where}: {key} is a {type(value).__name__}, not a NumPy array: give {FORM}")
    return value


def _images(x: np.ndarray, key: str, where: str) -> np.ndarray:
    if x.ndim not in (2, 3):
        raise BadInput(f"dataset {where}: {key} has shape {x.shape}: give {FORM}")
    if x.dtype != np.uint8 and x.dtype.kind != "f":
        raise BadInput(f"dataset {where}: {key} is {x.dtype}: give {FORM}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise BadInput(f"dataset {where}: {key} holds NaN or infinite values: clean them first")
    x = x.reshape(len(x), 1, x.shape[1]) if x.ndim == 2 else x
    return np.ascontiguousarray(x) if x.dtype == np.uint8 else np.ascontiguousarray(x, dtype=np.float32)


def _labels(y: np.ndarray, key: str, where: str) -> np.ndarray:
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise BadInput(f"dataset {where}: {key} is {y.dtype} of shape {y.shape}: give {FORM}")
    if len(y) and y.min() < 0:
        raise BadInput(f"dataset {where}: {key} has a negative label ({y.min()}): number the classes from 0")
    if len(y) and y.max() >= 2**31:
        raise BadInput(f"dataset {where}: {key} has a label of {y.max()}: number the classes from 0")
    return y.astype(np.int32)
