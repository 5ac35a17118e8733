"""Test-set figures: error, the per-class report (scikit-learn's layout), the confident precision."""

from __future__ import annotations

import numpy as np


def error(probs: np.ndarray, y: np.ndarray) -> float:
    """The share of images whose most probable class is not their label."""
    return float(np.mean(probs.argmax(axis=1) != y))


def confident_precision(probs: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> dict:
    """Of the predictions whose top probability exceeds `threshold`: how many, and what share is right.

    probs: (N, K) class probabilities, y: (N,) labels -> {"n": int, "precision": float (nan if n == 0)}.
    """
    confident = probs.max(axis=1) > threshold
    n = int(confident.sum())
    right = (probs.argmax(axis=1) == y) & confident
    return {"n": n, "precision": float(right.sum() / n) if n else float("nan")}


def report(probs: np.ndarray, y: np.ndarray) -> dict:
    """Per-class precision/recall/F1/support and averages, as scikit-learn's classification_report gives them.

    The dict of ``classification_report(y, probs.argmax(1), output_dict=True, zero_division=0)``
    (tests/workers/test_metrics.py checks it against scikit-learn), computed with NumPy: importing
    sklearn.metrics costs every worker process a second at start-up.
    """
    pred = probs.argmax(axis=1)
    labels = np.union1d(y, pred)
    tp = np.array([np.sum((pred == c) & (y == c)) for c in labels], dtype=np.float64)
    predicted = np.array([np.sum(pred == c) for c in labels], dtype=np.float64)
    support = np.array([np.sum(y == c) for c in labels], dtype=np.float64)
    precision, recall = _ratio(tp, predicted), _ratio(tp, support)
    f1 = _ratio(2 * tp, predicted + support)  # 2tp / (2tp + fp + fn), as scikit-learn computes it
    rep = {str(c): _row(precision[i], recall[i], f1[i], support[i]) for i, c in enumerate(labels)}
    rep["accuracy"] = float(tp.sum() / len(y))
    rep["macro avg"] = _row(precision.mean(), recall.mean(), f1.mean(), support.sum())
    weights = support / support.sum()
    rep["weighted avg"] = _row(precision @ weights, recall @ weights, f1 @ weights, support.sum())
    return rep


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (scikit-learn's zero_division=0)."""
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _row(precision, recall, f1, support) -> dict:
    return {"precision": float(precision), "recall": float(recall), "f1-score": float(f1), "support": float(support)}


def report_text(rep: dict) -> str:
    """The per-class report as scikit-learn prints it, rebuilt from the dict."""
    lines = [f"{'':>12} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"]
    for label, row in rep.items():
        if isinstance(row, dict):
            lines.append(f"{label:>12} {row['precision']:9.4f} {row['recall']:9.4f} {row['f1-score']:9.4f}"
                         f" {int(row['support']):9d}")
        else:
            lines.append(f"{label:>12} {'':9} {'':9} {row:9.4f}")
    return "\n".join(lines)
