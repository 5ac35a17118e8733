"""workers.metrics against scikit-learn's classification_report and a direct count."""

import numpy as np
import pytest
from sklearn.metrics import classification_report

from workers import metrics


def _probs(pred: np.ndarray, k: int, rng) -> np.ndarray:
    """Class probabilities whose argmax is `pred`."""
    p = rng.uniform(0, 0.5, size=(len(pred), k))
    p[np.arange(len(pred)), pred] = 1.0
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("case", ["mostly right", "random", "class never predicted", "class never true"])
def test_report_matches_scikit_learn(case):
    rng = np.random.default_rng(7)
    y = rng.integers(0, 10, size=997)
    pred = {"mostly right": np.where(rng.uniform(size=997) < 0.9, y, rng.integers(0, 10, size=997)),
            "random": rng.integers(0, 10, size=997),
            "class never predicted": np.where(y == 3, 4, y),
            "class never true": np.where(rng.uniform(size=997) < 0.1, 11, y)}[case]
    ours = metrics.report(_probs(pred, 12, rng), y)
    theirs = classification_report(y, pred, output_dict=True, zero_division=0)
    assert list(ours) == list(theirs)
    for key, row in theirs.items():
        if isinstance(row, dict):
            assert list(ours[key]) == list(row)
            for column, value in row.items():
                assert ours[key][column] == pytest.approx(value, rel=1e-12, abs=1e-15), (key, column)
        else:
            assert ours[key] == pytest.approx(row, rel=1e-12)


def test_report_text_has_a_line_per_class_and_average():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=50)
    text = metrics.report_text(metrics.report(_probs(y, 3, rng), y))
    lines = text.splitlines()
    assert len(lines) == 1 + 3 + 3  # header, classes 0-2, accuracy, macro, weighted
    assert lines[1].split() == ["0", "1.0000", "1.0000", "1.0000", str(int((y == 0).sum()))]


def test_confident_precision_counts_only_confident_predictions():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.55, 0.45], [0.5, 0.5]])
    y = np.array([0, 0, 1, 1])
    got = metrics.confident_precision(probs, y)
    assert got == {"n": 3, "precision": pytest.approx(1 / 3)}  # rows 0-2 exceed 0.5; only row 0 is right
    assert np.isnan(metrics.confident_precision(np.full((2, 2), 0.5), np.array([0, 1]))["precision"])
