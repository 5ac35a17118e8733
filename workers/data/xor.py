"""A toy problem, generated: random 2-D points with XOR-like labels (the optimizers' playground)."""

from __future__ import annotations

import numpy as np

N_TRAIN_FILE = 125  # 100 training points once the default 20 % validation share is held out
N_TEST = 1000
SEED = 0  # the data are the same on every machine; training seeds are separate


def read() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points uniform in the unit square, label 1 where exactly one coordinate exceeds 0.5.

    Returns
    -------
    x_train : np.ndarray, float32, shape (125, 1, 2), values in [0, 1] (a 1x2 "image": the MLP's flat input)
    y_train : np.ndarray, int32, shape (125,), values 0 or 1
    x_test : np.ndarray, float32, shape (1000, 1, 2)
    y_test : np.ndarray, int32, shape (1000,)
    """
    rng = np.random.default_rng(SEED)
    x = rng.random((N_TRAIN_FILE + N_TEST, 1, 2)).astype(np.float32)
    y = ((x[:, 0, 0] > 0.5) != (x[:, 0, 1] > 0.5)).astype(np.int32)
    return x[:N_TRAIN_FILE], y[:N_TRAIN_FILE], x[N_TRAIN_FILE:], y[N_TRAIN_FILE:]
