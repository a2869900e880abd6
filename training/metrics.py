"""Classification metrics and calibration with numpy only (no scikit-learn in the image)."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return matrix


def expected_calibration_error(
    probabilities: np.ndarray, true: np.ndarray, n_bins: int = 10
) -> float:
    """Top-label ECE with equal-width confidence bins: sum over bins of |acc - conf| * share."""
    if len(true) == 0:
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == true
    bin_index = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    error = 0.0
    for b in range(n_bins):
        in_bin = bin_index == b
        if in_bin.any():
            error += abs(correct[in_bin].mean() - confidence[in_bin].mean()) * in_bin.mean()
    return float(error)


def negative_log_likelihood(probabilities: np.ndarray, true: np.ndarray) -> float:
    picked = probabilities[np.arange(len(true)), true]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def classification_report(
    probabilities: np.ndarray, true: np.ndarray, labels: tuple[str, ...]
) -> dict[str, Any]:
    """The figures `make eval` prints and the model card quotes."""
    n_classes = len(labels)
    predicted = probabilities.argmax(axis=1) if len(true) else np.zeros(0, dtype=np.int64)
    matrix = confusion_matrix(true, predicted, n_classes)
    per_class: dict[str, dict[str, float | int]] = {}
    f1_scores = []
    for index, label in enumerate(labels):
        true_positive = int(matrix[index, index])
        predicted_count = int(matrix[:, index].sum())
        support = int(matrix[index, :].sum())
        precision = true_positive / predicted_count if predicted_count else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1_scores.append(f1)
        per_class[label] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": support,
        }
    n = len(true)
    return {
        "n": n,
        "accuracy": round(float((predicted == true).mean()) if n else 0.0, 4),
        "macro_f1": round(float(np.mean(f1_scores)), 4),
        "ece": round(expected_calibration_error(probabilities, true), 4),
        "per_class": per_class,
        "confusion": {"labels": list(labels), "rows_true_columns_predicted": matrix.tolist()},
    }


def fit_temperature(mean_log_probabilities: np.ndarray, true: np.ndarray) -> float:
    """Temperature minimising the NLL of softmax(log_p / T), by a 1-D grid then a finer grid.

    A grid is enough for one parameter, needs no optimiser, and cannot diverge.
    """

    def nll(temperature: float) -> float:
        scaled = mean_log_probabilities / temperature
        scaled = scaled - scaled.max(axis=1, keepdims=True)
        log_softmax = scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))
        return float(-log_softmax[np.arange(len(true)), true].mean())

    coarse = np.exp(np.linspace(np.log(0.25), np.log(4.0), 81))
    best = float(min(coarse, key=nll))
    fine = np.linspace(best * 0.95, best * 1.05, 41)
    return round(float(min(fine, key=nll)), 4)
