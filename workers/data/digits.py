"""scikit-learn's bundled 8x8 digits (no download): the embedded default data set."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

TEST_SHARE = 0.2  # held out as the test set, before any train/validation split
TEST_SEED = 0


def read() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 1797 digits, a fixed 20% held out as the test set.

    Returns
    -------
    x_train : np.ndarray, float32, shape (1438, 8, 8), values in [0, 1] (pixel / 16)
    y_train : np.ndarray, int32, shape (1438,), values 0..9
    x_test : np.ndarray, float32, shape (359, 8, 8)
    y_test : np.ndarray, int32, shape (359,)
    """
    images, target = _bundled()
    x = (images / 16.0).astype(np.float32)
    y = target.astype(np.int32)
    order = np.random.default_rng(TEST_SEED).permutation(len(y))
    n_test = round(TEST_SHARE * len(y))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    return x[train], y[train], x[test], y[test]


def _bundled() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8), labels) from the CSV file scikit-learn ships, read without importing
    scikit-learn (a second of every worker's start-up); its load_digits() if the file moved."""
    spec = importlib.util.find_spec("sklearn")
    csv = Path(next(iter(spec.submodule_search_locations or [""]))) / "datasets" / "data" / "digits.csv.gz"
    if not csv.is_file():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.images, bunch.target
    with gzip.open(csv, "rt") as text:
        data = np.loadtxt(text, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
