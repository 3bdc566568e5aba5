"""Scores of 0/1 forecasts and of probabilities, shared by the model's reliability figure and the
baselines, so that both are scored by one definition."""

from __future__ import annotations

import numpy as np


def binary_scores(predicted: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Accuracy and F1 (of class 1) of 0/1 predictions."""
    predicted, labels = predicted.astype(bool), labels.astype(bool)
    true_pos = float(np.sum(predicted & labels))
    denominator = float(predicted.sum() + labels.sum())
    return float(np.mean(predicted == labels)), 2 * true_pos / denominator if denominator else 0.0


def probability_scores(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """acc and F1 of both classes (`f1` of 1, `f1_neg` of 0) at p >= 0.5, AUROC (a constant
    forecast scores 0.5; a 0/1 forecast its balanced accuracy) and the Brier score (mean squared error
    of the probability; a 0/1 forecast scores its error rate). AUROC is left out when the labels hold
    one class only."""
    from sklearn.metrics import roc_auc_score

    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels, np.float64)
    predicted = probabilities >= 0.5
    acc, f1 = binary_scores(predicted, labels)
    _, f1_neg = binary_scores(~predicted, labels == 0)
    out = {"acc": acc, "f1": f1, "f1_neg": f1_neg, "brier": float(np.mean((probabilities - labels) ** 2))}
    if len(np.unique(labels)) == 2:
        out["auroc"] = float(roc_auc_score(labels, probabilities))
    return out
