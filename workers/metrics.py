"""Test-set figures: error, scikit-learn's per-class report, and blog A's confident-prediction precision."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import classification_report


def confident_precision(probs: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> dict:
    """Of the predictions whose top probability exceeds `threshold`: how many, and what share is right.

    probs: (N, K) class probabilities, y: (N,) labels -> {"n": int, "precision": float (nan if n == 0)}.
    """
    confident = probs.max(axis=1) > threshold
    n = int(confident.sum())
    right = (probs.argmax(axis=1) == y) & confident
    return {"n": n, "precision": float(right.sum() / n) if n else float("nan")}


def report(probs: np.ndarray, y: np.ndarray) -> dict:
    """scikit-learn's classification_report as a dict (per class precision/recall/f1/support, averages)."""
    return classification_report(y, probs.argmax(axis=1), output_dict=True, zero_division=0)


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
