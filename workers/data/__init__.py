"""Data sets for the compute side: ``load("digits" | "mnist" | "idx:DIR" | "xor" | "npz:FILE" | "pkg.mod:fn")``."""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass

import numpy as np

from storage.contract import datasets
from storage.contract.errors import BadInput, first_line
from storage.contract.params import VALID_SIZE
from workers.data import arrays, digits, mnist, xor

__all__ = ["Dataset", "load", "SPLIT_SEED"]

SPLIT_SEED = 0  # the train/validation permutation; independent of any training seed


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Images and labels split into training, validation and test sets.

    Attributes
    ----------
    name : str
        The spec it was loaded from, e.g. ``"digits"``.
    x_train, x_valid, x_test : np.ndarray
        float32, shape ``(N, H, W)``, values in [0, 1], C-contiguous, read-only.
    y_train, y_valid, y_test : np.ndarray
        int32, shape ``(N,)``, values ``0 .. n_classes - 1``, read-only.
    n_classes : int
        10 (2 for the generated ``xor`` toy problem; a user's data set: its largest label + 1, at least 2).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int = 10

    def __post_init__(self):
        for part in ("train", "valid", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if x.ndim != 3 or y.shape != x.shape[:1]:
                raise ValueError(f"{part}: images {x.shape} and labels {y.shape} must be (N, H, W) and (N,)")

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(H, W)``: (28, 28) for MNIST, (8, 8) for digits."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        sizes = ", ".join(f"{p}={len(getattr(self, 'y_' + p))}" for p in ("train", "valid", "test"))
        return f"Dataset({self.name!r}, {sizes}, image_shape={self.image_shape})"


def load(spec: str, valid_size: float | int = VALID_SIZE, split: str = "random",
         split_seed: int | None = None) -> Dataset:
    """Load a data set once per process (later calls with the same arguments return the cache).

    Parameters
    ----------
    spec : str
        ``"digits"`` (scikit-learn's bundled 8x8 digits), ``"mnist"`` (``$SWEEPER_DATA_DIR/mnist``,
        downloaded when missing), ``"idx:DIR"`` (the four MNIST IDX files in DIR), ``"xor"`` (a
        generated toy problem: 125 random 2-D points with XOR-like labels, as 1x2 images; 2 classes),
        ``"npz:FILE"`` (arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``, optionally ``x_valid``,
        ``y_valid``: workers/data/arrays.py) or ``"package.module:function"`` (a loader returning such
        a dict). A data set with its own validation pair validates on it: no split is made.
    valid_size : float or int
        Below 1: the share of the training file held out for validation; 1 or more: a count of
        images. The split is a fixed permutation (seed `SPLIT_SEED`); the test set is separate.
    split : str
        ``"random"``: ``valid_size`` held out by that permutation; ``"first"``, ``"last"``: the first or
        last ``valid_size`` images of the file validate. ``"tensorflow"``: the first 5,000 images
        of the training file validate, the rest train (TensorFlow's 55,000 / 5,000 of MNIST's 60,000);
        ``"theano"``: the last 10,000 validate, the first ones train (the Theano tutorial's 50,000 /
        10,000). A smaller file keeps the validation size and trains on what is left (19,000 and 14,000
        of a 24,000-image file); ``valid_size`` is then not used. A file of fewer than twice the
        validation count (the bundled digits) validates on the share a 60,000-image file would (a
        twelfth, a sixth; ``first``/``last`` with a count N: N / 60,000).
    split_seed : int or None
        None: the split above. A seed: as many images validate as the split gives, but which ones the
        seed draws (a replicate that varies its split; ``[study] seed_draws`` with ``"split"``).

    Returns
    -------
    Dataset
        Read-only arrays; images float32 ``(N, H, W)`` in [0, 1], labels int32 ``(N,)``.

    Raises
    ------
    BadInput
        An unknown spec, an impossible ``valid_size``, missing or corrupt files.
    """
    if not isinstance(spec, str):
        raise BadInput(f"dataset spec must be a string, got {spec!r}: {datasets.FIX}")
    return _load(spec, valid_size, split, split_seed)


def _files(spec: str) -> tuple:
    """(x_train, y_train, x_test, y_test, scale, n_classes, validation pair or None) of a data set, read from
    its files (or made)."""
    if datasets.is_users(spec):
        return _users(spec)
    scale = _scale
    n_classes = 10
    if spec == "digits":
        x_train, y_train, x_test, y_test = digits.read()
        scale = None  # already float32 in [0, 1]
    elif spec == "xor":
        x_train, y_train, x_test, y_test = xor.read()
        scale, n_classes = None, 2
    elif spec == "mnist":
        directory = mnist.data_dir()
        mnist.download(directory)  # only the files that are missing
        x_train, y_train, x_test, y_test = mnist.read(directory)
    elif spec.startswith("idx:"):
        x_train, y_train, x_test, y_test = mnist.read(datasets.idx_path(spec))
    else:
        raise BadInput(f"unknown dataset {spec!r}: {datasets.FIX}")
    return x_train, y_train, x_test, y_test, scale, n_classes, None


def _users(spec: str) -> tuple:
    """A user's data set: an .npz file or what a package.module:function loader returns, checked."""
    if spec.startswith("npz:"):
        found = arrays.read_npz(datasets.npz_path(spec))
    else:
        from workers.entries import imported

        loader = imported(spec, "dataset")
        try:
            found = loader()
        except Exception as exc:  # noqa: BLE001 - the user's loader raised: its own words, on one line
            why = f"{type(exc).__name__}: {first_line(exc)}"
            raise BadInput(f"dataset {spec}: the loader raised {why}: fix it") from None
    got = arrays.checked(found, spec)
    labels = [got[k] for k in got if k.startswith("y_")]
    n_classes = max(2, max(int(y.max()) for y in labels) + 1)
    scale = _scale if got["x_train"].dtype == np.uint8 else None
    pair = (got["x_valid"], got["y_valid"]) if "x_valid" in got else None
    return got["x_train"], got["y_train"], got["x_test"], got["y_test"], scale, n_classes, pair


def has_own_validation(spec: str) -> bool:
    """Whether a user's data set brings its own validation pair (its files read again)."""
    return _files(spec)[6] is not None


@functools.lru_cache(maxsize=4)
def _load(spec: str, valid_size: float | int, split: str = "random", split_seed: int | None = None) -> Dataset:
    x_train, y_train, x_test, y_test, scale, n_classes, pair = _files(spec)
    if pair is not None:  # the data set's own validation pair: no split of the training images
        if split_seed is not None:
            raise BadInput(f"dataset {spec} brings its own validation set, so a seed cannot draw one: remove "
                           "\"split\" from [study] seed_draws")
        arrays = [x_train, y_train, pair[0], pair[1], x_test, y_test]
    else:
        valid, train = split_indices(len(y_train), valid_size, split, split_seed)
        arrays = [x_train[train], y_train[train], x_train[valid], y_train[valid], x_test, y_test]
    if scale is not None:  # split the uint8 images first: a quarter of the bytes to gather
        arrays[0::2] = [scale(x) for x in arrays[0::2]]
    for a in arrays:
        a.setflags(write=False)
    return Dataset(spec, *arrays, n_classes=n_classes)


load.cache_clear = _load.cache_clear  # for tests that change SWEEPER_DATA_DIR and the like


def _scale(images: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [0, 1] (cast, then divide in place: 10x np.divide(x, 255, dtype=float32))."""
    out = images.astype(np.float32)
    out /= np.float32(255)
    return out


FIXED_SPLITS = {"tensorflow": ("first", 5_000), "theano": ("last", 10_000)}  # which images validate, how many
MNIST_TRAIN = 60_000  # the training file the posts' split counts are of


def split_indices(n: int, valid_size: float | int, split: str = "random",
                  seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(validation, training) indices into a training file of `n` images, each in file order. `seed`: as
    many validate as `split` says, drawn at random by that seed (a stream of its own: [seed, 2])."""
    if split == "random":
        n_valid = _n_valid(valid_size, n)
        order = np.random.default_rng(SPLIT_SEED if seed is None else [seed, 2]).permutation(n)
        return np.sort(order[:n_valid]), np.sort(order[n_valid:])
    if split in ("first", "last") and valid_size < 1:
        where, n_valid = split, _n_valid(valid_size, n)
    elif split in ("first", "last") or split in FIXED_SPLITS:
        where, n_valid = (split, valid_size) if split in ("first", "last") else FIXED_SPLITS[split]
        if n < 2 * n_valid:  # a small file (digits, a subset): the share MNIST's 60,000 would give
            n_valid = max(1, round(n * n_valid / MNIST_TRAIN))
        n_valid = _n_valid(n_valid, n)
    else:
        raise BadInput(f"split={split!r} is invalid: use random, first, last, tensorflow or theano")
    if seed is not None:
        return split_indices(n, n_valid, "random", seed)
    index = np.arange(n)
    return (index[:n_valid], index[n_valid:]) if where == "first" else (index[n - n_valid:], index[:n - n_valid])


def _n_valid(valid_size: float | int, n: int) -> int:
    """The number of validation images out of ``n`` training-file images."""
    fix = "use a share in [0, 1) or a whole count that leaves at least one training image"
    if isinstance(valid_size, bool) or not isinstance(valid_size, numbers.Real) or not math.isfinite(valid_size):
        raise BadInput(f"valid_size={valid_size!r} is not a number: {fix}")
    if valid_size < 0:
        raise BadInput(f"valid_size={valid_size!r} is negative: {fix}")
    if valid_size < 1:
        k = max(1, round(valid_size * n)) if valid_size > 0 else 0
    elif float(valid_size).is_integer():
        k = int(valid_size)
    else:
        raise BadInput(f"valid_size={valid_size!r} is a count but not a whole number: {fix}")
    if k > n - 1:
        raise BadInput(f"valid_size={valid_size!r} takes {k} of {n} training images, leaving {max(n - k, 0)}: {fix}")
    return k
